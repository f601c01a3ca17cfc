"""How PyTorch's spinning OpenMP threads slow the minidl step that follows a PyTorch step (issue 15).

    python -m benchmarks.torch_spin                      # LeNet-5 b64, 30 rounds a case (~1-2 minutes)
    python -m benchmarks.torch_spin --model resnet20 --rounds 5

Each case is one process that imports numpy and torch, then minidl (a notebook's order), at default threads,
and alternates one PyTorch and one minidl training step of the same shapes, as ``benchmarks.notebook_order``
does, except for what the case changes:

    at once        the minidl step starts as soon as PyTorch's ends (the notebook_order figure)
    pause 20 ms    20 ms of sleep before each minidl step: PyTorch's threads have stopped spinning
    minidl 1 thr   minidl.set_num_threads(1): minidl's second thread no longer competes
    passive        OMP_WAIT_POLICY=passive in the environment before torch is imported: PyTorch's OpenMP
                   threads sleep as soon as an op ends

and reports the median step times, the ratio minidl / PyTorch throughput (> 1: minidl faster) and, on Linux,
the CPU time the process's other threads (PyTorch's) ran in the 50 ms after a PyTorch step while this thread
slept. Writes ``benchmarks/results/torch_spin-<date>.json``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
CASES = {   # name: (environment, pause before each minidl step in s, minidl threads or None)
    "at once": ({}, 0.0, None),
    "pause 20 ms": ({}, 0.02, None),
    "minidl 1 thr": ({}, 0.0, 1),
    "passive": ({"OMP_WAIT_POLICY": "passive"}, 0.0, None),
}


def _other_threads_ms():
    """CPU time (ms) of every thread of this process but the calling one, from /proc (Linux), or None."""
    import threading
    me, total = str(threading.get_native_id()), 0.0
    try:
        for tid in os.listdir("/proc/self/task"):
            if tid != me:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e6
    except OSError:
        return None
    return total


def _worker(spec):
    import numpy as np  # noqa: F401  (a notebook's order)
    import torch  # noqa: F401
    import minidl
    minidl.set_performance_defaults()
    if spec["minidl_threads"]:
        minidl.set_num_threads(spec["minidl_threads"])
    from benchmarks.models import runner
    m, t = runner("minidl", spec["model"], spec["batch"]), runner("torch", spec["model"], spec["batch"])
    for _ in range(2):
        m.train_step()
        t.train_step()
    times = {"minidl": [], "torch": []}
    for _ in range(spec["rounds"]):
        start = time.perf_counter()
        t.train_step()
        times["torch"].append(time.perf_counter() - start)
        if spec["pause"]:
            time.sleep(spec["pause"])
        start = time.perf_counter()
        m.train_step()
        times["minidl"].append(time.perf_counter() - start)
    spin = []
    for _ in range(5):
        t.train_step()
        before = _other_threads_ms()
        time.sleep(0.05)
        after = _other_threads_ms()
        if before is not None and after is not None:
            spin.append(after - before)
    print(json.dumps({"spec": spec, "times": times, "other_threads_ms_after_torch_step": spin,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "minidl_threads": minidl.get_num_threads(), "load": os.getloadavg()[0]}), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lenet5", help="a benchmarks.models name (default lenet5)")
    p.add_argument("--batch", type=int, default=None, help="default: the model's benchmark batch")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/torch_spin-<date>.json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(json.loads(args.worker))
    from benchmarks.models import MODELS
    from benchmarks.notebook_order import BATCHES
    if args.model not in MODELS:
        p.error(f"--model: unknown {args.model!r}; expected one of {', '.join(MODELS)}")
    batch = args.batch or BATCHES.get(args.model, 16)
    rows, runs = [], []
    lines = ["| case | minidl ms | PyTorch ms | minidl / PyTorch "
             "| other threads' CPU ms in 50 ms after a PyTorch step |",
             "|---|---|---|---|---|"]
    for name, (extra_env, pause, minidl_threads) in CASES.items():
        spec = {"case": name, "model": args.model, "batch": batch, "rounds": args.rounds, "pause": pause,
                "minidl_threads": minidl_threads}
        env = {k: v for k, v in os.environ.items()
               if k not in ("MINIDL_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        env.update(extra_env, PYTHONPATH=os.pathsep.join(x for x in (ROOT, os.environ.get("PYTHONPATH")) if x))
        print(f"  {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, "-m", "benchmarks.torch_spin", "--worker", json.dumps(spec)],
                             capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
        found = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not found:
            lines.append(f"| {name} | error: {(out.stderr.strip().splitlines() or ['no output'])[-1]} ||||")
            continue
        run = json.loads(found[-1])
        runs.append(run)
        m, t = (statistics.median(run["times"][k]) for k in ("minidl", "torch"))
        spin = run["other_threads_ms_after_torch_step"]
        lines.append(f"| {name} | {1e3 * m:.1f} | {1e3 * t:.1f} | {t / m:.2f} | "
                     f"{statistics.median(spin):.1f} |" if spin else f"| {name} | {1e3 * m:.1f} | {1e3 * t:.1f} | "
                     f"{t / m:.2f} | n/a |")
        rows.append({"case": name, "minidl_ms": 1e3 * m, "torch_ms": 1e3 * t, "ratio": t / m})
    text = "\n".join(lines)
    print(text)
    path = args.out or os.path.join(RESULTS, f"torch_spin-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump({"command": "python -m benchmarks.torch_spin " + " ".join(argv if argv is not None else sys.argv[1:]),
                   "date": time.strftime("%Y-%m-%d %H:%M:%S"), "summary": rows, "runs": runs}, f, indent=1)
    print(f"\nwrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
