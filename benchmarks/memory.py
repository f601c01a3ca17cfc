"""Peak resident memory of a training step, in a fresh process: ``python -m benchmarks.memory FW MODEL BATCH``.

Prints one JSON line, sizes in MB:
    rss_import   resident after importing the framework
    rss_ready    resident after one warm-up training step at batch 2: the model, its gradients, the
                 optimizer state, and whatever the framework loads once (Numba's LLVM, kernel caches)
    peak         the peak resident size (VmHWM, reset after the warm-up) over two steps at the batch size
    step         peak - rss_ready: what a training step at this batch adds (activations, saved buffers,
                 workspace), the figure compared between frameworks
"""
import json
import resource
import sys


def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:   # "5" resets VmHWM to the current resident size (Linux)
        f.write("5")


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(framework, name, batch):
    if framework == "torch":
        import torch  # noqa: F401
    else:
        import minidl  # noqa: F401
    rss_import = resident_mb()
    from benchmarks import models
    warm_up = models.runner(framework, name, 2)
    warm_up.train_step()
    runner = models.runner(framework, name, batch)
    runner.model, runner.opt = warm_up.model, warm_up.opt
    del warm_up
    rss_ready = resident_mb()
    reset_peak()
    for _ in range(2):
        runner.train_step()
    peak = peak_mb()
    print(json.dumps({"rss_import": rss_import, "rss_ready": rss_ready, "peak": peak, "step": peak - rss_ready}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
