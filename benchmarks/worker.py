"""One framework in one process: ``python -m benchmarks.worker minidl|torch``, driven by ``benchmarks.run``.

The driver sends one JSON request per line on stdin and reads one JSON reply per line on stdout. Only
one worker computes at a time (the other waits on its stdin), so the two frameworks' thread pools never
fight, and the driver can alternate them round by round. Requests:

    {"cmd": "train" | "infer", "model": name, "batch": N, "steps": k}    -> {"seconds": per step}
    {"cmd": "op", "op": {...} (see benchmarks.ops), "calls": k}          -> {"seconds": per call, ...}
    {"cmd": "gemm", "shape": [G, M, K, P], "calls": k}                      -> {"gflops": rate of np.matmul}
    {"cmd": "quit"}
Models and op inputs are built once, on first use, and kept.
"""
import json
import sys
import time

import numpy as np


def gemm_rate(G, M, K, P, calls):
    """GFLOP/s of np.matmul on G groups of (M, K) @ (K, P), float32: the calibration, and the ceiling of a
    conv whose forward is that GEMM (one 2-D matmul when G == 1, a stacked one otherwise)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((G, M, K), dtype=np.float32)
    b = rng.standard_normal((G, K, P), dtype=np.float32)
    if G == 1:
        a, b = a[0], b[0]
    a @ b
    start = time.perf_counter()
    for _ in range(calls):
        a @ b
    return 2.0 * G * M * K * P * calls / (time.perf_counter() - start) / 1e9


def main(framework):
    from benchmarks import models, ops
    if framework == "minidl":
        import minidl
        minidl.set_performance_defaults()   # as python -m minidl.train and the notebooks do
    if framework == "torch":
        import torch
        threads = sys.argv[2] if len(sys.argv) > 2 else ""
        if threads:
            torch.set_num_threads(int(threads))
    cache = {}
    print(json.dumps({"ready": framework}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request["cmd"]
        if cmd == "quit":
            break
        try:
            if cmd in ("train", "infer"):
                key = (request["model"], request["batch"])
                if key not in cache:
                    cache[key] = models.runner(framework, *key)
                fn = cache[key].train_step if cmd == "train" else cache[key].infer
                if (key, cmd) not in cache:                       # the first call compiles and allocates
                    fn()
                    cache[key, cmd] = True
                reply = {"seconds": models.time_calls(fn, request["steps"])}
            elif cmd == "op":
                key = json.dumps(request["op"], sort_keys=True)
                if key not in cache:
                    cache[key] = ops.prepare(framework, request["op"])
                    cache[key]()
                reply = {"seconds": models.time_calls(cache[key], request["calls"], min_seconds=0.05)}
            elif cmd == "gemm":
                reply = {"gflops": gemm_rate(*request["shape"], request["calls"])}
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except Exception as error:   # report, keep serving: one failing model must not end the run
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
