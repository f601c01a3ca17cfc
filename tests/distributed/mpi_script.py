"""Run by tests/distributed/test_mpi.py under ``mpiexec -n N python -m mpi4py mpi_script.py MODE``.

Each mode prints one result line per rank (or fails on purpose); the test reads them.
"""
import functools
import os
import signal
import sys

import numpy as np

import minidl
import minidl.distributed as dist
from minidl import nn, optim
from minidl.data.dataloader import DataLoader

B, STEPS = 8, 3  # global batch, SGD steps


class Images:
    """24 float32 images 2 x 6 x 6 (exact in float64 too) with labels 0..2, fixed by a seed."""

    def __init__(self, n=24):
        rng = np.random.default_rng(123)
        self.x = rng.standard_normal((n, 2, 6, 6)).astype(np.float32)
        self.y = rng.integers(0, 3, n)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def small_cnn(batchnorm=None, dtype=np.float64):
    layers = [nn.Conv2d(2, 4, 3, padding=1)]
    if batchnorm is not None:
        layers.append(batchnorm(4))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 3)]
    return nn.Sequential(*layers).to(dtype=dtype)


def train(model, comm, sampler, batch):
    """STEPS steps of SGD with momentum (batches in the model's dtype); returns the parameters and buffers."""
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1, momentum=0.9), comm, model=model)
    loader = DataLoader(Images(), batch, sampler=sampler, seed=0, prefetch=0)
    loss_fn = nn.CrossEntropyLoss()
    for step, (x, y) in enumerate(loader):
        if step == STEPS:
            break
        opt.zero_grad()
        loss = loss_fn(model(x.to(dtype=model[0].weight.dtype)), y)
        loss.backward()
        opt.step()
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def equivalence(comm, batchnorm=None, dtype=np.float64):
    """N ranks x batch B/N against one process with batch B (computed on every rank, from rank 0's init).

    batchnorm: None, or a function of a communicator giving the BN layer class to use with it."""
    world_of_one = dist.SingleProcessCommunicator()
    minidl.manual_seed(100)  # rank 0's initial weights
    reference_model = small_cnn(batchnorm and batchnorm(world_of_one), dtype)
    initial = {k: v.numpy().copy() for k, v in reference_model.state_dict().items()}
    minidl.manual_seed(100 + comm.rank)  # different initial weights per rank: the broadcast must fix them
    model = small_cnn(batchnorm and batchnorm(comm), dtype)
    mine = train(model, comm, dist.DistributedSampler(Images(), comm, seed=7), B // comm.size)
    ref = train(reference_model, world_of_one, dist.DistributedSampler(Images(), world_of_one, seed=7), B)
    diff = max(float(np.abs(mine[k] - ref[k]).max()) for k in ref)
    ranks = comm.allgather_object(mine)
    across = max(float(np.abs(r[k] - mine[k]).max()) for r in ranks for k, _ in model.named_parameters())
    moved = max(float(np.abs(ref[k] - initial[k]).max()) for k in ref)
    print(f"RESULT rank={comm.rank} diff={diff:.3e} across={across:.3e} moved={moved:.3e}", flush=True)


def main():
    mode = sys.argv[1]
    comm = dist.init("mpi")
    if mode == "equivalence":
        equivalence(comm)
    elif mode == "equivalence-float32":
        equivalence(comm, dtype=np.float32)
    elif mode == "equivalence-syncbn":
        equivalence(comm, lambda c: functools.partial(dist.SyncBatchNorm, comm=c))
    elif mode == "equivalence-bn":
        equivalence(comm, lambda c: nn.BatchNorm2d)
    elif mode == "mismatch":
        minidl.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3 if comm.rank == 0 else 5))
        try:
            comm.bcast_parameters(model)
        except ValueError as err:
            print(f"RESULT rank={comm.rank} {err}", flush=True)
    elif mode == "allreduce":
        total = comm.allreduce(comm.rank + 1, op="sum")
        mean = comm.allreduce(np.array([comm.rank, 2.0 * comm.rank]))
        print(f"RESULT rank={comm.rank} sum={total} mean={mean.tolist()}", flush=True)
    elif mode == "nccl":  # gradients 1 and 2 on two GPUs average to 1.5
        comm = dist.init("nccl")
        model = nn.Linear(3, 2).to("gpu")
        for p in model.parameters():
            p.grad = minidl.Tensor(np.full(p.shape, comm.rank + 1.0, np.float32)).to("gpu")
        comm.allreduce_gradients(model)
        print(f"RESULT rank={comm.rank} grad={float(model.weight.grad.numpy().mean())}", flush=True)
    elif mode in ("raise", "kill"):
        if comm.rank == 1:
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 failed on purpose")
        comm.allreduce(1.0)  # rank 0 waits here for a partner that is gone
        comm.barrier()
        print("RESULT rank 0 was not stopped", flush=True)
    else:
        raise SystemExit(f"mpi_script.py: unknown mode {mode!r}")


if __name__ == "__main__":
    main()
