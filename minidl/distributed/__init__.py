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

The training command: ``mpiexec -n N python -m mpi4py -m minidl.train MODEL --distributed`` (see
``minidl.train``).

GPUs (``init("nccl")``, written but not run on this project's machines): one process per GPU, GPU
``local_rank`` selected by ``init``; move the model with ``.gpu()`` after ``init``; the NCCL unique id is
made on rank 0 and broadcast over MPI. Across nodes this needs an MPI launcher that starts the ranks on
every node (``mpiexec -hosts a,b -n 8``; a cluster MPI rather than the PyPI wheel for fast interconnects),
NCCL able to reach the other nodes (its environment: ``NCCL_SOCKET_IFNAME``, InfiniBand), and the data on
every node (the sampler only picks indices). The collectives run on CuPy's current stream after backward,
without overlapping it.
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
