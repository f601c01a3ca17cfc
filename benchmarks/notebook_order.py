"""minidl beside PyTorch in one process, in a notebook's import order (issue 15).

    python -m benchmarks.notebook_order                 # the table: ~3-6 minutes on a quiet 2-core machine
    python -m benchmarks.notebook_order --options       # also the thread policies that were measured against it
    python -m benchmarks.notebook_order --quick         # LeNet-5 only, few rounds (~1 minute; what the test runs)
    python -m benchmarks.notebook_order --models lenet5 --rounds 30 --gemm-share
    python -m benchmarks.notebook_order --models resnet20 --configs notebook:default:auto,notebook:default:layer
    python -m benchmarks.notebook_order --infer         # inference passes (eval mode, no_grad) instead of steps
    python -m benchmarks.notebook_order --steps 1       # single steps alternating (each in the other's shadow)

Each configuration is one Python process that trains minidl and PyTorch models of the same shapes,
alternating them round by round (who goes first alternates too) and reporting the ratio minidl / PyTorch
of training throughput (> 1: minidl is faster), the median over rounds; with ``--infer``, of inference
throughput (each model in eval mode under no_grad, one forward pass a step). A round is one step of the
larger models, and of the LeNet models as many as take ~0.25 s, counted on a warm step (``--steps N``: N
for every model; ``--steps 1`` puts every step of one framework right after one of the other's, inside
the ~10 ms that PyTorch's OpenMP threads spin after each of its steps). Until the seventh session of issue
15 the count was taken on the first step, which loads or compiles the kernels, so the first LeNet model of
a run (``lenet5``) alternated single steps and the second (``lenet5_paper``) rounds of 5-10.

The configurations:

    order         notebook: ``import numpy, torch`` first, then minidl (what a notebook does);
                  minidl-first: ``import minidl`` before numpy and torch.
    threads       default: every pool at its default (2 here); 1: torch.set_num_threads(1),
                  minidl.set_num_threads(1) and BLAS limited to 1 (threadpoolctl) for the whole process.
    policy        auto: minidl's policy (minidl/performance.py: BLAS at 1 thread inside minidl's forward and
                  backward, the kernels and the large GEMMs split over minidl's own blocking threads,
                  kernels/threads.py). With --options, two more, in notebook order at default threads:
                  none (no BLAS limit: the GEMMs run unsplit on OpenBLAS's own, spinning, threads), and
                  torch-passive (minidl's policy, with OMP_WAIT_POLICY=passive in the process's environment:
                  PyTorch's OpenMP threads sleep after each PyTorch op instead of spinning for ~5-10 ms,
                  which otherwise takes the second core from the minidl step that follows).

Every configuration runs ``--repeat`` times (default 2), the configurations interleaved, and the table
pools the rounds of its repeats: the shared machine's load swings 3x from one minute to the next, which
moves both frameworks in one process alike (the ratio) but not two processes alike (``vs minidl-first``).
Every process calls ``minidl.set_performance_defaults()``, as the notebooks do. "vs minidl-first" is minidl's
step time in minidl-first order over this configuration's (same threads, auto policy): issue 15's goal 1 is
>= 0.9 at default threads. The load average is recorded at the start and end of each process: on the shared
machine compare only ratios from the same process. ``--gemm-share`` samples minidl's steps with ``perf``
(one thread, minidl-first) and reports the share of CPU samples in NumPy's BLAS library.

Writes ``benchmarks/results/notebook_order-<date>.json`` (every round's step times, the settings, the loads).
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DEFAULT_MODELS = {"lenet5": 64, "resnet20": 128}
BATCHES = {"lenet5": 64, "lenet5_paper": 64, "resnet20": 128, "resnet18_cifar": 128}   # others: 16 (224-px models)
POLICY_ENV = {   # environment each policy's process starts with (the benchmark's, not minidl's)
    "auto": {},
    "none": {},
    "torch-passive": {"OMP_WAIT_POLICY": "passive"},
}


# ---------------------------------------------------------------------------------------------- worker
def _worker(spec):
    """One configuration in this process; prints one JSON line. Imports happen here, in the asked order."""
    load_start = os.getloadavg()[0]
    if spec["order"] == "minidl-first":
        import minidl
        import numpy as np
        import torch
    else:
        import numpy as np
        import torch
        import minidl
    minidl.set_performance_defaults()
    if spec["policy"] == "none":
        minidl.performance.set_thread_policy(blas_threads=None)
    if spec["threads"] == 1:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
        torch.set_num_threads(1)
        minidl.set_num_threads(1)
    from benchmarks.models import runner

    results = {}
    for name, batch in spec["models"].items():
        m, t = runner("minidl", name, batch), runner("torch", name, batch)
        start = time.perf_counter()
        m.train_step()
        first = time.perf_counter() - start
        t.train_step()
        run_m, run_t = (m.infer, t.infer) if spec.get("task") == "infer" else (m.train_step, t.train_step)
        if spec.get("task") == "infer":
            m.infer(), t.infer()                    # compile the eval-mode kernels outside the rounds
        start = time.perf_counter()                 # a warm step (the first loads or compiles the kernels)
        run_m()
        once = time.perf_counter() - start
        steps = spec.get("steps") or (max(1, round(0.25 / max(once, 1e-3))) if name.startswith("lenet") else 1)
        times = {"minidl": [], "torch": []}
        for r in range(spec["rounds"]):
            order = (("minidl", run_m), ("torch", run_t)) if r % 2 == 0 else (("torch", run_t), ("minidl", run_m))
            for framework, run in order:
                start = time.perf_counter()
                for _ in range(steps):
                    run()
                times[framework].append((time.perf_counter() - start) / steps)
        results[name] = {"batch": batch, "steps_per_round": steps, "minidl_first_step_s": first, **{
            f"{k}_s": v for k, v in times.items()}}
    print(json.dumps({"spec": spec, "load_start": load_start, "load_end": os.getloadavg()[0],
                      "thread_policy": minidl.performance.thread_policy(), "models": results}), flush=True)


def _gemm_share_worker(spec):
    """minidl-first, one thread: perf-sample ``rounds`` training steps of each model; print one JSON line."""
    import minidl
    import numpy as np  # noqa: F401
    from threadpoolctl import threadpool_limits
    minidl.set_performance_defaults()
    threadpool_limits(1, user_api="blas")
    minidl.set_num_threads(1)
    from benchmarks.models import runner
    blas = [os.path.basename(info["filepath"]) for info in __import__("threadpoolctl").threadpool_info()
            if info["user_api"] == "blas"]
    results = {}
    for name, batch in spec["models"].items():
        m = runner("minidl", name, batch)
        m.train_step()
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "perf.data")
            perf = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-o", data, "-p", str(os.getpid())],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)                                                      # perf attaches
            start, steps = time.perf_counter(), 0
            while steps < spec["rounds"] or time.perf_counter() - start < 2.0:
                m.train_step()
                steps += 1
            seconds = (time.perf_counter() - start) / steps
            perf.send_signal(signal.SIGINT)
            perf.wait()
            report = subprocess.run(["perf", "report", "-i", data, "--sort", "dso", "--stdio", "-q"],
                                    capture_output=True, text=True).stdout
        shares = {}
        for line in report.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith("%"):
                shares[" ".join(parts[1:])] = float(parts[0].rstrip("%")) / 100
        results[name] = {"batch": batch, "step_s": seconds, "steps": steps,
                         "blas_share": sum(v for k, v in shares.items() if k in blas), "dso_shares": shares}
    print(json.dumps({"spec": spec, "load": os.getloadavg()[0], "models": results}), flush=True)


# ---------------------------------------------------------------------------------------------- driver
def run_process(spec, timeout):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    for key in ("MINIDL_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT",
                "OMP_WAIT_POLICY"):
        env.pop(key, None)
    env.update(POLICY_ENV.get(spec.get("policy", "auto"), {}))
    out = subprocess.run([sys.executable, "-m", "benchmarks.notebook_order", "--worker", json.dumps(spec)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        return {"spec": spec, "error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def pooled(results):
    """One result per configuration: the rounds of its repeats together, the loads' range."""
    merged = {}
    for result in results:
        key = json.dumps(result["spec"], sort_keys=True)
        if "error" in result:
            merged.setdefault(key, result)
            continue
        into = merged.get(key)
        if into is None or "error" in into:
            merged[key] = json.loads(json.dumps(result))
            continue
        into["load_start"], into["load_end"] = (min(into["load_start"], result["load_start"]),
                                                max(into["load_end"], result["load_end"]))
        for name, r in result["models"].items():
            for k in ("minidl_s", "torch_s"):
                into["models"][name][k] += r[k]
    return list(merged.values())


def summarize(result):
    """Per model: median step times and the ratio minidl / torch throughput (torch time over minidl's)."""
    rows = {}
    for name, r in result.get("models", {}).items():
        m, t = statistics.median(r["minidl_s"]), statistics.median(r["torch_s"])
        per_round = [tt / mm for mm, tt in zip(r["minidl_s"], r["torch_s"])]
        rows[name] = {"minidl_ms": 1e3 * m, "torch_ms": 1e3 * t, "ratio": statistics.median(per_round)}
    return rows


def configurations(options, configs=None):
    if configs:
        chosen = []
        for item in configs.split(","):
            order, threads, policy = item.split(":")
            if order not in ("minidl-first", "notebook") or threads not in ("default", "1") or policy not in POLICY_ENV:
                raise ValueError(f"--configs: {item!r} is not ORDER:THREADS:POLICY (minidl-first|notebook, "
                                 f"default|1, {'|'.join(POLICY_ENV)})")
            chosen.append((order, int(threads) if threads == "1" else threads, policy))
        return chosen
    main = [("minidl-first", "default", "auto"), ("notebook", "default", "auto"),
            ("minidl-first", 1, "auto"), ("notebook", 1, "auto")]
    extra = [("notebook", "default", "none"), ("notebook", "default", "torch-passive")]
    return main + (extra if options else [])


def table(results, task="train"):
    unit = "pass" if task == "infer" else "step"
    lines = [f"| order | threads | policy | model | minidl ms/{unit} | torch ms/{unit} | minidl / torch | "
             "vs minidl-first | load start-end |", "|---|---|---|---|---|---|---|---|---|"]
    first = {}
    for result in results:
        spec = result["spec"]
        if spec["order"] == "minidl-first" and spec["policy"] == "auto":
            for name, row in summarize(result).items():
                first[spec["threads"], name] = row["minidl_ms"]
    for result in results:
        spec = result["spec"]
        if "error" in result:
            lines.append(f"| {spec['order']} | {spec['threads']} | {spec['policy']} | error: {result['error']} |||||")
            continue
        load = f"{result['load_start']:.1f}-{result['load_end']:.1f}"
        for name, row in summarize(result).items():
            reference = first.get((spec["threads"], name))
            versus = f"{reference / row['minidl_ms']:.2f}" if reference else ""
            lines.append(f"| {spec['order']} | {spec['threads']} | {spec['policy']} | {name}/{spec['models'][name]} | "
                         f"{row['minidl_ms']:.1f} | {row['torch_ms']:.1f} | {row['ratio']:.2f} | {versus} | {load} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma list of benchmarks.models names")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds per model (default 8, quick 5)")
    p.add_argument("--repeat", type=int, default=2, help="processes per configuration, interleaved (default 2)")
    p.add_argument("--configs", help="comma list of ORDER:THREADS:POLICY instead of the default set")
    p.add_argument("--options", action="store_true", help="also the alternative thread policies (notebook order)")
    p.add_argument("--gemm-share", action="store_true", help="also perf-sample minidl's steps for the BLAS share")
    p.add_argument("--quick", action="store_true", help="LeNet-5 only, 5 rounds")
    p.add_argument("--infer", action="store_true", help="time inference passes (eval, no_grad), not training steps")
    p.add_argument("--steps", type=int, default=None,
                   help="steps (or passes) a round for every model (default: the LeNet models as many as take "
                        "~0.25 s on a warm step, the others 1); 1 alternates single steps")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/notebook_order-<date>.json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--gemm-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps: expected an int >= 1, got {args.steps}")
    if args.worker:
        return _worker(json.loads(args.worker))
    if args.gemm_worker:
        return _gemm_share_worker(json.loads(args.gemm_worker))

    names = ["lenet5"] if args.quick else [n for n in args.models.split(",") if n]
    from benchmarks.models import MODELS       # numpy only: the driver computes nothing
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"--models: unknown {', '.join(unknown)}; expected some of {', '.join(MODELS)}")
    models = {n: BATCHES.get(n, 16) for n in names}
    rounds = args.rounds or (5 if args.quick else 8)
    try:
        chosen = configurations(args.options, args.configs)
    except ValueError as err:
        p.error(str(err))
    results, started = [], time.time()
    for repeat in range(max(1, args.repeat)):
        for order, threads, policy in chosen:
            spec = {"order": order, "threads": threads, "policy": policy, "models": models, "rounds": rounds,
                    "task": "infer" if args.infer else "train", "steps": args.steps}
            print(f"  {order}, threads {threads}, policy {policy} (run {repeat + 1}) ...", file=sys.stderr, flush=True)
            results.append(run_process(spec, timeout=900))
    report = {"command": "python -m benchmarks.notebook_order " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(), "runs": results,
              "summary": [{"spec": r["spec"], **summarize(r)} for r in pooled(results) if "error" not in r]}
    text = table(pooled(results), "infer" if args.infer else "train")
    if args.gemm_share:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
        out = subprocess.run([sys.executable, "-m", "benchmarks.notebook_order", "--gemm-worker",
                              json.dumps({"models": models, "rounds": 5})], capture_output=True, text=True,
                             env=env, cwd=ROOT, timeout=900)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        share = json.loads(lines[-1]) if lines else {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
        report["gemm_share"] = share
        text += "\n\n| model (minidl-first, 1 thread) | step ms | CPU samples in BLAS | load |\n|---|---|---|---|\n"
        text += "\n".join(f"| {n}/{r['batch']} | {1e3 * r['step_s']:.1f} | {100 * r['blas_share']:.0f}% | "
                          f"{share['load']:.1f} |" for n, r in share.get("models", {}).items()) or f"| {share} |"
    report["seconds"] = time.time() - started
    print(text)
    path = args.out or os.path.join(RESULTS, f"notebook_order-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {os.path.relpath(path, ROOT)} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
