"""Data-parallel training over MPI (mpi4py) or NCCL (CuPy): ``minidl.distributed``.

    import minidl.distributed as dist
    comm = dist.init("mpi")                                   # rank, size, local_rank
    sampler = dist.DistributedSampler(train_set, comm, seed=0)
    loader = DataLoader(train_set, batch_size=B // comm.size, sampler=sampler)
    optimizer = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1), comm, model=model)
    for images, labels in loader:
        optimizer.zero_grad(); loss_fn(model(images), labels).backward(); optimizer.step()
        comm.print0(comm.allreduce(loss.item()))             # the mean loss over ranks, printed once

Launch: ``mpiexec -n 2 python -m mpi4py train.py`` (``-m mpi4py``: an exception on one rank aborts the
job instead of leaving the others waiting). Without mpi4py and without a launcher, ``init`` returns a
world of one and the script runs plainly.

BatchNorm: each rank normalises with the statistics of its own B/N images (the default, as PyTorch DDP);
so N ranks x B/N with BatchNorm do *not* compute what one process with B would. ``SyncBatchNorm``
computes the statistics over all ranks' images instead (one extra allreduce in forward and in backward).
"""
from minidl.distributed.comm import (
    DEFAULT_BUCKET_BYTES, MPICommunicator, NCCLCommunicator, SingleProcessCommunicator, buckets, init, pack, unpack,
)
from minidl.distributed.optimizer import DistributedOptimizer
from minidl.distributed.sampler import DistributedSampler
from minidl.distributed.sync_batchnorm import SyncBatchNorm

__all__ = [
    "DEFAULT_BUCKET_BYTES", "DistributedOptimizer", "DistributedSampler", "MPICommunicator", "NCCLCommunicator",
    "SingleProcessCommunicator", "SyncBatchNorm", "buckets", "init", "pack", "unpack",
]
