"""The speed suite: ``python -m benchmarks.run`` (``--quick`` for a ~20 s smoke run, ``--help`` for the rest).

Measures, in one run, minidl against PyTorch CPU (when torch is installed):
  * ops: each conv layer shape of ``benchmarks.ops`` forward and backward, pooling, batch norm, LRN; and for
    each conv forward the fraction of np.matmul's rate on the conv's own GEMM shape that minidl reaches;
  * models: training images/s (forward + backward + SGD step) and inference images/s (``benchmarks.models``);
  * memory: what a training step adds to the resident size, each framework in a fresh process;
  * startup: ``import minidl`` time, and time to the first training step with a warm and a cold Numba cache.

Each framework runs in its own worker process (``benchmarks.worker``), so their thread pools never fight;
every measurement alternates the two, ``--rounds`` times, and reports medians and the ratio
minidl / torch (> 1: minidl is faster, or for memory, uses more). A GEMM calibration at the start and at
the end says whether the machine drifted. The table is printed and the JSON written to benchmarks/results/.

    python -m benchmarks.run                     # everything, 3 rounds
    python -m benchmarks.run --threads 1         # one thread everywhere: steadier ratios on a busy machine
    python -m benchmarks.run --only models --models lenet5,resnet20
    python -m benchmarks.run --env NUMBA_THREADING_LAYER=workqueue   # try a threading setting
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import ops as op_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")

# (model, batch, timed steps per round)
MODEL_ROWS = [("lenet5", 64, 20), ("lenet5", 256, 8), ("lenet5_paper", 64, 20), ("resnet20", 128, 2),
              ("resnet18_cifar", 128, 1), ("alexnet", 16, 1), ("resnet50", 16, 1)]
QUICK_MODEL_ROWS = [("lenet5", 8, 2)]
CALIBRATION = (1, 1024, 1024, 1024)   # G, M, K, P

TARGETS = {   # model -> least acceptable training-throughput ratio minidl / torch (issue 15)
    ("lenet5", 64): 1.5, ("resnet20", 128): 0.9, ("resnet18_cifar", 128): 1.0,
    ("alexnet", 16): 0.9, ("resnet50", 16): 0.9,
}
INFERENCE_TARGET = 1.0     # every model row, inference throughput ratio
MEMORY_TARGET = 1.3        # memory a training step adds, minidl / torch
IMPORT_TARGET_S = 0.5


class Worker:
    """A ``benchmarks.worker`` process for one framework, answering one JSON request at a time."""

    def __init__(self, framework, env, threads):
        self.framework = framework
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", framework, str(threads or "")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self._read()

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.framework} worker exited (code {self.process.wait()})")
        return json.loads(line)

    def ask(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.process.stdin.close()
            self.process.wait()


def worker_env(args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_NUM_THREADS"):
            env[var] = str(args.threads)
    for setting in args.env:
        key, _, value = setting.partition("=")
        env[key] = value
    return env


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def alternate(workers, rounds, **request):
    """Ask every worker the same request, alternating them, ``rounds`` times: {framework: [seconds]}."""
    times = {w.framework: [] for w in workers}
    errors = {}
    for r in range(rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):   # alternate who goes first, too
            reply = w.ask(**request)
            if "error" in reply:
                errors[w.framework] = reply["error"]
            else:
                times[w.framework].append(reply["seconds"])
    return times, errors


def calibrate(minidl_worker, repeats=3):
    return median([minidl_worker.ask(cmd="gemm", shape=list(CALIBRATION), calls=5)["gflops"] for _ in range(repeats)])


def run_ops(workers, rounds, quick, log):
    rows = []
    for name, op in op_bench.op_table(quick):
        is_conv_forward = op["kind"] == "conv" and not op["backward"]
        times, errors, rates = {w.framework: [] for w in workers}, {}, []
        for r in range(rounds):   # the GEMM ceiling is timed inside each round too, next to the conv
            round_times, round_errors = alternate(workers if r % 2 == 0 else workers[::-1], 1, cmd="op", op=op, calls=1)
            for fw, ts in round_times.items():
                times[fw] += ts
            errors.update(round_errors)
            if is_conv_forward:
                rates.append(workers[0].ask(cmd="gemm", shape=list(op_bench.gemm_shape(op)), calls=2)["gflops"])
        row = {"op": name, "spec": op, "minidl_s": median(times["minidl"]), "torch_s": median(times.get("torch", []))}
        if is_conv_forward:
            G, M, K, P = op_bench.gemm_shape(op)
            row["gemm_shape"] = [G, M, K, P]
            row["gemm_gflops"] = median(rates)
            row["minidl_gflops"] = op_bench.conv_flops(op) / row["minidl_s"] / 1e9 if row["minidl_s"] else None
            row["gemm_fraction"] = ratio(row["minidl_gflops"], row["gemm_gflops"])
        row["speed_ratio"] = ratio(row["torch_s"], row["minidl_s"])
        if errors:
            row["errors"] = errors
        rows.append(row)
        log(f"  op {name:24s} minidl {fmt_ms(row['minidl_s'])}  torch {fmt_ms(row['torch_s'])}  "
            f"ratio {fmt(row['speed_ratio'])}  gemm frac {fmt(row.get('gemm_fraction'))}")
    return rows


def run_models(workers, rounds, model_rows, log):
    rows = []
    for name, batch, steps in model_rows:
        row = {"model": name, "batch": batch}
        for cmd in ("train", "infer"):
            times, errors = alternate(workers, rounds, cmd=cmd, model=name, batch=batch, steps=steps)
            for fw, ts in times.items():
                s = median(ts)
                row[f"{cmd}_{fw}_img_s"] = batch / s if s else None
                row[f"{cmd}_{fw}_rounds_img_s"] = [batch / t for t in ts]
            row[f"{cmd}_ratio"] = ratio(row.get(f"{cmd}_minidl_img_s"), row.get(f"{cmd}_torch_img_s"))
            if errors:
                row[f"{cmd}_errors"] = errors
        rows.append(row)
        log(f"  model {name}/{batch}: train minidl {fmt(row.get('train_minidl_img_s'))} torch "
            f"{fmt(row.get('train_torch_img_s'))} img/s, ratio {fmt(row.get('train_ratio'))}; "
            f"infer ratio {fmt(row.get('infer_ratio'))}")
    return rows


def run_memory(frameworks, model_rows, env, log):
    rows = []
    for name, batch in dict.fromkeys((m, b) for m, b, _ in model_rows):
        row = {"model": name, "batch": batch}
        for fw in frameworks:
            out = subprocess.run([sys.executable, "-m", "benchmarks.memory", fw, name, str(batch)],
                                 capture_output=True, text=True, env=env, cwd=ROOT)
            if out.returncode:
                row[f"{fw}_error"] = out.stderr.strip().splitlines()[-1:]
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            row[f"{fw}_step_mb"], row[f"{fw}_peak_mb"] = result["step"], result["peak"]
        row["step_ratio"] = ratio(row.get("minidl_step_mb"), row.get("torch_step_mb"))
        rows.append(row)
        log(f"  memory {name}/{batch}: step minidl {fmt(row.get('minidl_step_mb'))} MB, "
            f"torch {fmt(row.get('torch_step_mb'))} MB, ratio {fmt(row.get('step_ratio'))}")
    return rows


IMPORT_CODE = "import time; t = time.perf_counter(); import minidl; print(time.perf_counter() - t)"
FIRST_STEP_CODE = """import time; t = time.perf_counter()
from benchmarks.models import runner
r = runner("minidl", {name!r}, {batch}); r.train_step(); print(time.perf_counter() - t)"""


def timed_python(code, env, repeats):
    values = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(out.stderr)
        values.append(float(out.stdout.strip().splitlines()[-1]))
    return values


def run_startup(env, quick, log):
    timed_python(IMPORT_CODE, env, 1)                           # warm the file cache
    result = {"import_s": median(timed_python(IMPORT_CODE, env, 3 if not quick else 1))}
    for name, batch in ([("lenet5", 8)] if quick else [("lenet5", 64), ("resnet20", 128)]):
        code = FIRST_STEP_CODE.format(name=name, batch=batch)
        timed_python(code, env, 1)                              # fills the Numba cache
        result[f"first_step_warm_s {name}/{batch}"] = median(timed_python(code, env, 1 if quick else 2))
        if not quick:
            with tempfile.TemporaryDirectory() as cache:
                result[f"first_step_cold_s {name}/{batch}"] = timed_python(code, {**env, "MINIDL_CACHE": cache}, 1)[0]
    log("  startup " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()))
    return result


def evaluate_targets(results):
    checks = []
    for row in results.get("models", []):
        key = (row["model"], row["batch"])
        if key in TARGETS and row.get("train_ratio") is not None:
            checks.append((f"train {key[0]}/{key[1]} ratio >= {TARGETS[key]}", row["train_ratio"],
                           row["train_ratio"] >= TARGETS[key]))
        if row.get("infer_ratio") is not None:
            checks.append((f"infer {key[0]}/{key[1]} ratio >= {INFERENCE_TARGET}", row["infer_ratio"],
                           row["infer_ratio"] >= INFERENCE_TARGET))
    for row in results.get("ops", []):
        if "gemm_fraction" in row and row["gemm_fraction"] is not None:
            checks.append((f"{row['op']} >= 60% of GEMM rate", row["gemm_fraction"], row["gemm_fraction"] >= 0.6))
    for row in results.get("memory", []):
        if row.get("step_ratio") is not None:
            checks.append((f"memory {row['model']}/{row['batch']} <= {MEMORY_TARGET}x torch", row["step_ratio"],
                           row["step_ratio"] <= MEMORY_TARGET))
    startup = results.get("startup", {})
    if "import_s" in startup:
        checks.append((f"import minidl < {IMPORT_TARGET_S} s (warm)", startup["import_s"],
                       startup["import_s"] < IMPORT_TARGET_S))
    for key, value in startup.items():
        if key.startswith("first_step_warm"):
            checks.append((f"{key} < 3 s", value, value < 3.0))
    return [{"target": t, "value": v, "met": bool(m)} for t, v, m in checks]


def fmt(v, digits=2):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.{digits}f}"


def fmt_ms(v):
    return "-" if v is None else f"{v * 1e3:9.2f} ms"


def table(results):
    lines = []
    if results.get("ops"):
        lines += ["", "| op | minidl ms | torch ms | speed ratio | minidl GFLOP/s | np.matmul GFLOP/s | GEMM fraction |",
                  "|---|---|---|---|---|---|---|"]
        for r in results["ops"]:
            lines.append(f"| {r['op']} | {fmt(r['minidl_s'] and r['minidl_s'] * 1e3)} | "
                         f"{fmt(r['torch_s'] and r['torch_s'] * 1e3)} | {fmt(r['speed_ratio'])} | "
                         f"{fmt(r.get('minidl_gflops'))} | {fmt(r.get('gemm_gflops'))} | {fmt(r.get('gemm_fraction'))} |")
    if results.get("models"):
        lines += ["", "| model / batch | train minidl img/s | train torch img/s | ratio | infer minidl | infer torch | ratio |",
                  "|---|---|---|---|---|---|---|"]
        for r in results["models"]:
            lines.append(f"| {r['model']} / {r['batch']} | {fmt(r.get('train_minidl_img_s'))} | "
                         f"{fmt(r.get('train_torch_img_s'))} | {fmt(r.get('train_ratio'))} | "
                         f"{fmt(r.get('infer_minidl_img_s'))} | {fmt(r.get('infer_torch_img_s'))} | "
                         f"{fmt(r.get('infer_ratio'))} |")
    if results.get("memory"):
        lines += ["", "| model / batch | minidl step MB | torch step MB | ratio | minidl peak MB | torch peak MB |",
                  "|---|---|---|---|---|---|"]
        for r in results["memory"]:
            lines.append(f"| {r['model']} / {r['batch']} | {fmt(r.get('minidl_step_mb'))} | {fmt(r.get('torch_step_mb'))} | "
                         f"{fmt(r.get('step_ratio'))} | {fmt(r.get('minidl_peak_mb'))} | {fmt(r.get('torch_peak_mb'))} |")
    if results.get("startup"):
        lines += ["", "| startup | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in results["startup"].items()]
    cal = results["calibration"]
    lines += ["", f"GEMM calibration 1024^3: start {fmt(cal['start_gflops'])} GFLOP/s, end {fmt(cal['end_gflops'])} "
                  f"GFLOP/s{' -- THE MACHINE DRIFTED: compare ratios only, and rerun' if cal['drifted'] else ''}"]
    if results.get("targets"):
        lines += ["", "| target | value | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {fmt(t['value'])} | {'yes' if t['met'] else 'NO'} |" for t in results["targets"]]
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, LeNet-5 batch 8, one round (~20 s)")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds per measurement (default 3)")
    p.add_argument("--threads", type=int, default=0, help="threads for every pool (OpenMP, OpenBLAS, Numba, torch)")
    p.add_argument("--only", default="ops,models,memory,startup", help="comma list of sections to run")
    p.add_argument("--models", default="", help="comma list of models (default: all)")
    p.add_argument("--no-torch", action="store_true", help="minidl only, even where torch is installed")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for workers")
    p.add_argument("--out", default=RESULTS, help="folder for the JSON (default benchmarks/results)")
    p.add_argument("--no-save", action="store_true", help="print only")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    sections = set(args.only.split(","))
    model_rows = QUICK_MODEL_ROWS if args.quick else MODEL_ROWS
    if args.models:
        wanted = args.models.split(",")
        model_rows = [r for r in model_rows if r[0] in wanted]
    has_torch = importlib.util.find_spec("torch") is not None and not args.no_torch
    env = worker_env(args)

    def log(message):
        print(message, flush=True)

    results = {"settings": {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:], "rounds": rounds,
        "threads": args.threads or "default", "env": args.env, "quick": args.quick, "torch": has_torch,
        "cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
        "numpy": np.__version__, "machine": platform.processor() or platform.machine()}}
    if has_torch:
        import torch
        results["settings"]["torch_version"] = torch.__version__
    workers = [Worker("minidl", env, args.threads)] + ([Worker("torch", env, args.threads)] if has_torch else [])
    start = time.perf_counter()
    try:
        results["calibration"] = {"start_gflops": calibrate(workers[0])}
        log(f"GEMM calibration: {results['calibration']['start_gflops']:.1f} GFLOP/s")
        if "ops" in sections:
            results["ops"] = run_ops(workers, rounds, args.quick, log)
        if "models" in sections:
            results["models"] = run_models(workers, rounds, model_rows, log)
        results["calibration"]["end_gflops"] = calibrate(workers[0])
    finally:
        for w in workers:
            w.close()
    if "memory" in sections:
        results["memory"] = run_memory([w.framework for w in workers], model_rows, env, log)
    if "startup" in sections:
        results["startup"] = run_startup(env, args.quick, log)
    cal = results["calibration"]
    cal["drifted"] = abs(cal["end_gflops"] / cal["start_gflops"] - 1) > 0.2
    results["settings"]["seconds"] = time.perf_counter() - start
    results["settings"]["load_average_end"] = os.getloadavg()
    results["targets"] = evaluate_targets(results)
    print(table(results))
    if not args.no_save:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"run-{datetime.datetime.now():%Y%m%d-%H%M%S}{'-quick' if args.quick else ''}.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"\nwritten: {os.path.relpath(path, ROOT)}")
    return results


if __name__ == "__main__":
    main()
