"""Median training-step time of LeNet-5 (batch 64) and ResNet-20 (batch 32) for one checkout, to compare two
versions of the engine A/B in alternating processes:

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/step_time.py /path/to/checkout

The checkout's ``minidl`` is imported first (link its ``kernels`` and ``models`` folders into its ``minidl``
folder when the installed package is an editable install of another checkout). A check of the engine's
overhead, not a speed claim: ``python -m benchmarks.run`` compares with PyTorch.
"""
import sys
import time

import numpy as np


def main(tree):
    sys.path.insert(0, tree)
    import minidl
    import minidl.functions as F
    from minidl.models import get_model
    print(minidl.__file__)
    if hasattr(minidl, "set_performance_defaults"):   # since issue 15 process tuning is this call, not the import
        minidl.set_performance_defaults()
    results = {}
    for name, shape, batch, steps in (("lenet5_modern", (1, 32, 32), 64, 40), ("resnet20", (3, 32, 32), 32, 6)):
        minidl.manual_seed(0)
        model = get_model(name)
        opt = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = minidl.randn(batch, *shape), minidl.randint(0, 10, batch)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        for _ in range(3):     # compile and warm up
            step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        results[name] = float(np.median(times)) * 1000
    print(" ".join(f"{name} {ms:.1f} ms" for name, ms in results.items()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
