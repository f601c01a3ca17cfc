"""Communicators: who am I (``rank`` of ``size``), and the collective operations data parallelism needs.

    comm = minidl.distributed.init("mpi")     # under `mpiexec -n N python -m mpi4py train.py`
    comm.bcast_parameters(model)              # every rank starts from rank 0's weights and buffers
    loss.backward(); comm.allreduce_gradients(model); optimizer.step()

Three communicators share one packing scheme (``_CommunicatorBase``); they differ only in how one
contiguous buffer is summed or broadcast:

- ``SingleProcessCommunicator``: a world of one (no mpi4py needed); every collective is the identity, so
  code written for distributed runs also runs plainly.
- ``MPICommunicator``: mpi4py on NumPy arrays (CuPy arrays are staged through host memory: a CUDA-aware
  MPI is not assumed).
- ``NCCLCommunicator``: NCCL through ``cupy.cuda.nccl`` on CuPy arrays, one GPU per local rank; the NCCL
  unique id travels over MPI, which also provides ``barrier`` and the object collectives.

Gradient averaging: the gradients of all parameters are packed into one contiguous buffer per dtype
(``pack``), summed with one Allreduce per buffer, divided by ``size`` and unpacked (``unpack``). A buffer
larger than ``bucket_bytes`` is split into buckets of whole parameters (``buckets``), so the temporary
copy stays bounded. With the loss a mean over each rank's B/N images, the average of the N gradients is
the gradient of the mean over all B images: N ranks x batch B/N take the same SGD steps as one process
with batch B.

Deviation from PyTorch's DistributedDataParallel: the allreduce runs after backward, not overlapped with it
(no hooks into autograd), and a parameter without a gradient on this rank contributes zeros (so every rank
takes part in the same collectives); after the call it holds the average.
"""
import os
import sys
import time
import traceback

import numpy as np

from minidl import backend
from minidl.tensor import Tensor

DEFAULT_BUCKET_BYTES = 25 * 2**20  # as PyTorch DDP's bucket_cap_mb=25


# -- packing, shared by every backend (tested through the size-1 and MPI communicators) ----------------

def buckets(arrays, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """Group ``arrays`` into lists of indices: one dtype per group, at most ``bucket_bytes`` per group.

    Order is kept within a dtype (and dtypes appear in the order first met), so every rank builds the same
    buckets from the same model. An array larger than ``bucket_bytes`` gets a bucket of its own.
    """
    if bucket_bytes <= 0:
        raise ValueError(f"buckets: bucket_bytes must be positive, got {bucket_bytes}")
    by_dtype = {}
    for i, a in enumerate(arrays):
        by_dtype.setdefault(np.dtype(a.dtype).str, []).append(i)
    groups = []
    for indices in by_dtype.values():
        current, size = [], 0
        for i in indices:
            nbytes = arrays[i].nbytes
            if current and size + nbytes > bucket_bytes:
                groups.append(current)
                current, size = [], 0
            current.append(i)
            size += nbytes
        if current:
            groups.append(current)
    return groups


def pack(arrays, xp=np):
    """One contiguous 1-D buffer holding ``arrays`` (all of one dtype) one after another."""
    if not arrays:
        raise ValueError("pack: no arrays to pack")
    dtypes = {np.dtype(a.dtype) for a in arrays}
    if len(dtypes) != 1:
        raise ValueError(f"pack: arrays of one dtype expected, got {sorted(str(d) for d in dtypes)}")
    return xp.concatenate([a.reshape(-1) for a in arrays])


def unpack(flat, like):
    """Split the 1-D buffer ``flat`` into arrays shaped as ``like`` (views of ``flat``)."""
    total = sum(int(a.size) for a in like)
    if flat.ndim != 1 or flat.size != total:
        raise ValueError(f"unpack: a 1-D buffer of {total} elements expected, got shape {tuple(flat.shape)}")
    out, start = [], 0
    for a in like:
        out.append(flat[start:start + a.size].reshape(a.shape))
        start += a.size
    return out


def _signature(named):
    return [(name, tuple(t.shape), str(t.dtype)) for name, t in named]


def _first_difference(mine, root_sig, rank, root):
    for (n0, s0, d0), (n1, s1, d1) in zip(root_sig, mine):
        if (n0, s0, d0) != (n1, s1, d1):
            return (f"rank {rank} has {n1} {s1} {d1} where rank {root} has {n0} {s0} {d0}")
    if len(mine) != len(root_sig):
        longer = mine if len(mine) > len(root_sig) else root_sig
        return (f"rank {rank} has {len(mine)} parameters and buffers, rank {root} has {len(root_sig)} "
                f"(first unmatched: {longer[min(len(mine), len(root_sig))][0]})")
    return None


def _named_state(model):
    """(name, tensor) for every parameter and buffer of ``model`` (None entries skipped), in model order."""
    named = [(f"parameter {n}", p) for n, p in model.named_parameters()]
    named += [(f"buffer {n}", b) for n, b in model.named_buffers() if b is not None]
    return named


class _CommunicatorBase:
    """The packing logic over three primitives a backend provides: ``_allreduce_sum_(buf)`` and
    ``_bcast_(buf, root)`` in place on a 1-D contiguous array, and ``allgather_object(obj)``."""

    rank, size, local_rank = 0, 1, 0

    def __init__(self, bucket_bytes=DEFAULT_BUCKET_BYTES):
        if bucket_bytes <= 0:
            raise ValueError(f"{type(self).__name__}: bucket_bytes must be positive, got {bucket_bytes}")
        self.bucket_bytes = int(bucket_bytes)
        self.allreduce_calls = 0  # counted, so tests and benchmarks can see how many collectives ran

    # -- to be provided by each backend --
    def _allreduce_sum_(self, buf):
        raise NotImplementedError(f"{type(self).__name__} must implement _allreduce_sum_")

    def _bcast_(self, buf, root):
        raise NotImplementedError(f"{type(self).__name__} must implement _bcast_")

    def allgather_object(self, obj):
        raise NotImplementedError(f"{type(self).__name__} must implement allgather_object")

    def barrier(self):
        raise NotImplementedError(f"{type(self).__name__} must implement barrier")

    def abort(self, code=1):
        raise NotImplementedError(f"{type(self).__name__} must implement abort")

    # -- shared --
    def print0(self, *args, **kwargs):
        """``print`` on rank 0 only (progress, metrics): the other ranks stay silent."""
        if self.rank == 0:
            print(*args, **kwargs)

    def _check_root(self, root, op):
        if not isinstance(root, (int, np.integer)) or not 0 <= root < self.size:
            raise ValueError(f"{op}: root must be a rank in [0, {self.size}), got {root!r}")

    def bcast_parameters(self, model, root=0):
        """Copy rank ``root``'s parameters and buffers into ``model`` on every rank, in place.

        First every rank's list of (name, shape, dtype) is gathered; a mismatch (another model, another
        width, another dtype) raises the same ValueError on every rank, naming the first differing entry,
        before any data moves.
        """
        self._check_root(root, "bcast_parameters")
        named = _named_state(model)
        signatures = self.allgather_object(_signature(named))
        for rank, sig in enumerate(signatures):
            problem = _first_difference(sig, signatures[root], rank, root)
            if problem:
                raise ValueError(f"bcast_parameters: the models differ across ranks: {problem}")
        tensors = [t for _, t in named]
        self._collective([t.data for t in tensors], lambda buf: self._bcast_(buf, root),
                         lambda i, a: _assign(tensors[i], a))

    def allreduce_gradients(self, model):
        """Average the gradients of ``model`` (a Module or an iterable of parameters) over all ranks.

        One Allreduce (sum) per dtype bucket, then a division by ``size``; ``p.grad`` holds the average.
        """
        params = model.parameters() if hasattr(model, "parameters") else model
        params = [p for p in params if p.requires_grad]
        if self.size == 1 or not params:
            return
        grads = [p.grad.data if p.grad is not None else p.xp.zeros_like(p.data) for p in params]

        def reduce(buf):
            self._allreduce_sum_(buf)
            self.allreduce_calls += 1

        def store(i, averaged):
            if params[i].grad is None:
                params[i].grad = Tensor(averaged.copy())
            else:
                params[i].grad.data[...] = averaged
        self._collective(grads, reduce, store, divide_by=self.size)

    def _collective(self, arrays, run, store, divide_by=None):
        for group in buckets(arrays, self.bucket_bytes):
            members = [arrays[i] for i in group]
            xp = backend.get_array_module(members[0])
            flat = pack(members, xp)
            run(flat)
            if divide_by is not None:
                flat /= divide_by
            for i, piece in zip(group, unpack(flat, members)):
                store(i, piece)

    def allreduce(self, value, op="mean"):
        """Sum or mean of ``value`` (a number, NumPy/CuPy array or Tensor) over all ranks, for metrics.

        Returns a Python number for a number, an array for an array, a Tensor for a Tensor. Integers (and
        booleans) are summed exactly as int64 (op="sum"); a mean is always floating point.
        """
        if op not in ("sum", "mean"):
            raise ValueError(f"allreduce: op must be 'sum' or 'mean', got {op!r}")
        is_tensor = isinstance(value, Tensor)
        array = value.data if is_tensor else value
        scalar = np.isscalar(array) or (isinstance(array, np.ndarray) and array.ndim == 0 and not is_tensor)
        xp = backend.get_array_module(array) if not scalar else np
        buf = xp.array(array).reshape(-1)
        if buf.dtype.kind not in "fiub":
            raise TypeError(f"allreduce: expected a number or a numeric array, got {type(value).__name__} "
                            f"of dtype {buf.dtype}")
        if buf.dtype.kind != "f":
            buf = buf.astype(np.float64 if op == "mean" else np.int64)
        if self.size > 1:
            self._allreduce_sum_(buf)
        if op == "mean":
            buf = buf / self.size
        result = buf.reshape(xp.shape(array))
        if is_tensor:
            return Tensor(result)
        return result.item() if scalar else result

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, size={self.size}, local_rank={self.local_rank})"


def _assign(tensor, array):
    tensor.data[...] = array
    if hasattr(tensor, "_version"):
        tensor._version[0] += 1


class SingleProcessCommunicator(_CommunicatorBase):
    """A world of one process: rank 0 of 1, every collective leaves its data as it is."""

    def _allreduce_sum_(self, buf):
        pass

    def _bcast_(self, buf, root):
        pass

    def allgather_object(self, obj):
        return [obj]

    def barrier(self):
        pass

    def abort(self, code=1):
        sys.exit(code)


def _host(buf):
    return buf if isinstance(buf, np.ndarray) else backend.as_device_array(buf, "cpu")


class MPICommunicator(_CommunicatorBase):
    """mpi4py's COMM_WORLD (or ``mpi_comm``); ``local_rank`` is the rank among the processes of one node."""

    def __init__(self, mpi_comm=None, bucket_bytes=DEFAULT_BUCKET_BYTES):
        super().__init__(bucket_bytes)
        from mpi4py import MPI
        self.MPI = MPI
        self.mpi_comm = mpi_comm if mpi_comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.mpi_comm.Get_rank(), self.mpi_comm.Get_size()
        node = self.mpi_comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()

    def _allreduce_sum_(self, buf):
        if isinstance(buf, np.ndarray):
            self.mpi_comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        else:  # a CuPy array: through host memory
            host = _host(buf)
            self.mpi_comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
            buf[...] = backend.as_device_array(host, "gpu")

    def _bcast_(self, buf, root):
        if isinstance(buf, np.ndarray):
            self.mpi_comm.Bcast(buf, root=root)
        else:
            host = _host(buf)
            self.mpi_comm.Bcast(host, root=root)
            buf[...] = backend.as_device_array(host, "gpu")

    def allgather_object(self, obj):
        return self.mpi_comm.allgather(obj)

    def bcast_object(self, obj, root=0):
        return self.mpi_comm.bcast(obj, root=root)

    def barrier(self):
        self.mpi_comm.Barrier()

    def abort(self, code=1):
        self.mpi_comm.Abort(code)


_NCCL_DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
                "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8"}


class NCCLCommunicator(MPICommunicator):
    """NCCL (``cupy.cuda.nccl``) for CuPy buffers, MPI for the rest; one GPU per local rank.

    Rank 0 creates the NCCL unique id and broadcasts it over MPI; each rank selects GPU ``local_rank``.
    CuPy buffers (a model moved with ``.gpu()`` after ``init``) go through NCCL on the current stream;
    NumPy buffers (``allreduce`` of a Python number for metrics, say) go through MPI.
    """

    def __init__(self, mpi_comm=None, bucket_bytes=DEFAULT_BUCKET_BYTES):
        super().__init__(mpi_comm, bucket_bytes)
        import cupy
        from cupy.cuda import nccl
        self.cupy, self.nccl = cupy, nccl
        count = cupy.cuda.runtime.getDeviceCount()
        if self.local_rank >= count:
            raise RuntimeError(f"init('nccl'): local rank {self.local_rank} needs GPU {self.local_rank}, "
                               f"but this node has {count} GPU(s)")
        cupy.cuda.Device(self.local_rank).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.mpi_comm.bcast(uid, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def _nccl_args(self, buf, op):
        name = _NCCL_DTYPES.get(str(buf.dtype))
        if name is None:
            raise TypeError(f"NCCLCommunicator.{op}: dtype {buf.dtype} is not supported by NCCL here")
        return buf.data.ptr, buf.size, getattr(self.nccl, name), self.cupy.cuda.get_current_stream().ptr

    def _allreduce_sum_(self, buf):
        if isinstance(buf, np.ndarray):
            return super()._allreduce_sum_(buf)
        ptr, count, dtype, stream = self._nccl_args(buf, "allreduce")
        self.nccl_comm.allReduce(ptr, ptr, count, dtype, self.nccl.NCCL_SUM, stream)

    def _bcast_(self, buf, root):
        if isinstance(buf, np.ndarray):
            return super()._bcast_(buf, root)
        ptr, count, dtype, stream = self._nccl_args(buf, "bcast")
        self.nccl_comm.bcast(ptr, count, dtype, root, stream)


_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")


def _launched_size():
    for name in _LAUNCHER_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


# Seconds an uncaught exception's rank waits, after writing its traceback, before it aborts the job: the
# launcher forwards each rank's stderr on its own schedule, and an abort at once lost all but the first line
# of the traceback in one CI run (the message a user needs most).
ABORT_GRACE_SECONDS = 0.5


def _abort_on_uncaught(comm):
    """An uncaught exception on one rank prints its traceback and aborts the whole job (MPI_Abort), so
    the other ranks do not wait forever in a collective (what ``python -m mpi4py`` also does). The traceback
    and the abort notice go out in one write, ABORT_GRACE_SECONDS before the abort."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        notice = (f"minidl.distributed: rank {comm.rank} of {comm.size} failed ({kind.__name__}); "
                  "aborting all ranks\n")
        try:
            if previous is sys.__excepthook__:
                sys.stderr.write("".join(traceback.format_exception(kind, value, tb)) + notice)
            else:   # a hook of the user's (or IPython's) prints the error its own way
                previous(kind, value, tb)
                sys.stderr.write(notice)
            sys.stderr.flush()
        finally:
            time.sleep(ABORT_GRACE_SECONDS)
            comm.abort(1)
    sys.excepthook = hook


def init(backend="mpi", bucket_bytes=DEFAULT_BUCKET_BYTES):
    """The communicator of this process: ``backend`` "mpi" (NumPy arrays) or "nccl" (CuPy arrays).

    Without mpi4py, and not started by an MPI launcher, "mpi" gives a ``SingleProcessCommunicator`` (a
    world of one) so the same script runs plainly; started by ``mpiexec -n N`` (N > 1) without mpi4py it
    raises. "nccl" needs mpi4py and CuPy.
    """
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"minidl.distributed.init: backend must be 'mpi' or 'nccl', got {backend!r}")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        size = _launched_size()
        if backend == "mpi" and size == 1:
            return SingleProcessCommunicator(bucket_bytes)
        raise RuntimeError(f"minidl.distributed.init({backend!r}): mpi4py is not installed"
                           f"{f' but this process is one of {size} MPI ranks' if size > 1 else ''}; "
                           "install it with: pip install 'minidl[mpi]'") from None
    comm = MPICommunicator(bucket_bytes=bucket_bytes) if backend == "mpi" else NCCLCommunicator(bucket_bytes=bucket_bytes)
    if comm.size > 1:
        _abort_on_uncaught(comm)
    return comm
