"""Data-parallel scaling of one ResNet-20 CIFAR training step (global batch 64), over MPI ranks:

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpiexec -n 1 python -m mpi4py benchmarks/distributed.py
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python -m mpi4py benchmarks/distributed.py

Each rank runs batch 64 / N; rank 0 prints images/s over all ranks (median step), the time ranks wait for
the slowest one before the allreduce (a barrier, timed apart: load imbalance, not communication) and the share
of a step spent in ``allreduce_gradients`` itself (packing, one Allreduce of the float32 gradients,
unpacking). The barrier is only there to separate the two; a real step has no barrier.
"""
import sys
import time

import numpy as np

import minidl
import minidl.distributed as dist
import minidl.functions as F
from minidl.models import get_model

GLOBAL_BATCH, WARMUP, STEPS = 64, 2, int(sys.argv[1]) if len(sys.argv) > 1 else 8


def main():
    comm = dist.init("mpi")
    if GLOBAL_BATCH % comm.size:
        raise SystemExit(f"distributed.py: {comm.size} ranks do not divide the batch of {GLOBAL_BATCH}")
    batch = GLOBAL_BATCH // comm.size
    minidl.manual_seed(comm.rank)
    model = get_model("resnet20")
    optimizer = dist.DistributedOptimizer(minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), comm, model=model)
    x, y = minidl.randn(batch, 3, 32, 32), minidl.randint(0, 10, batch)
    step_times, wait_times, comm_times = [], [], []
    for i in range(WARMUP + STEPS):
        comm.barrier()
        start = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        backward_done = time.perf_counter()
        comm.barrier()
        before = time.perf_counter()
        comm.allreduce_gradients(model)   # what DistributedOptimizer.step does first, timed apart
        after = time.perf_counter()
        optimizer.optimizer.step()
        end = time.perf_counter()
        if i >= WARMUP:
            step_times.append(end - start)
            comm_times.append(after - before)
            wait_times.append(before - backward_done)
    step = comm.allreduce(float(np.median(step_times)), op="mean")
    in_comm = comm.allreduce(float(np.median(comm_times)), op="mean")
    waiting = comm.allreduce(float(np.median(wait_times)), op="mean")
    params = model.num_parameters()
    comm.print0(f"ranks {comm.size}  batch {batch}/rank  step {1000 * step:.0f} ms  "
                f"{GLOBAL_BATCH / step:.0f} images/s  waiting {1000 * waiting:.1f} ms  allreduce {1000 * in_comm:.1f} ms ({100 * in_comm / step:.1f}% "
                f"of a step, {params:,} float32 gradients in {comm.allreduce_calls // (WARMUP + STEPS)} Allreduce)")


if __name__ == "__main__":
    main()
