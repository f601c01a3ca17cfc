"""How minidl shares the CPU's cores, whatever the import order, and the one call that tunes the process.

minidl's CPU work is its Numba kernels (im2col, Winograd transforms, pooling, batch norm) and NumPy's GEMMs.
Both run on minidl's own threads (``minidl.kernels.threads``): each kernel is a serial Numba loop that the
pool runs in parts, and each large GEMM is split into blocks, one BLAS call per thread. The threads block
between launches; none spins. ``minidl.set_num_threads(n)`` sets how many (default: every CPU the process
may use), as ``torch.set_num_threads`` does for PyTorch.

Why it is done this way (issue 15). On a machine with few cores, a pool whose idle threads spin takes the
cores the next pool needs. OpenBLAS's helper threads spin for up to 2^28 cycles after each GEMM, and the
OpenMP runtime's threads (Numba's default layer, shared with PyTorch once it is imported) spin too; both
read their settings from the environment once, when the library loads, so a setting made by ``import
minidl`` came too late in a notebook that had already imported NumPy or PyTorch (LeNet-5 training: 0.14x
PyTorch in that order, 1.26x with minidl imported first). Nothing here depends on the import order:

1. **While minidl computes, NumPy's BLAS runs on ``blas_threads`` threads** (default 1), and the caller's
   setting is restored after. "While minidl computes" is the outermost ``nn.Module`` call (the forward
   pass) and ``backward`` (:func:`guarded` marks them); nested calls cost a counter. With one BLAS thread
   OpenBLAS never wakes its helper threads during minidl's step, so none spins when minidl's threads (or
   PyTorch's, next in the notebook) need the cores; the GEMMs get their second thread from minidl's pool
   instead (``kernels.threads.matmul`` splits them only inside these regions). The limit is set through
   threadpoolctl, which finds every BLAS loaded into the process; ``set_thread_policy(blas_threads=None)``
   switches it off (the GEMMs then run on BLAS's own threads, unsplit).
2. **Numba runs no threads of its own**: minidl's kernels are compiled without ``parallel=True``, so
   Numba's threading layer (OpenMP, TBB or workqueue) is never started by minidl, and whatever layer a
   program chooses for its own Numba code is left alone. Compiling serial loops is also 8-10x faster,
   which is most of a fresh install's first training step (``kernels/threads.py``).

Nothing here writes ``os.environ`` (threadpoolctl's import sets ``KMP_DUPLICATE_LIB_OK``; it is removed
again). Process tuning that is not about threads is not done by the import: call
:func:`set_performance_defaults` (``python -m minidl.train``, the benchmarks and the notebooks do).
"""
import functools
import os
import sys
import threading

from minidl.kernels import threads as _threads
from minidl.kernels.threads import get_num_threads, set_num_threads

__all__ = ["guarded", "compute", "set_thread_policy", "thread_policy", "set_performance_defaults",
           "set_num_threads", "get_num_threads"]

_policy = {"blas_threads": 1}
_lock = threading.Lock()
_depth = 0          # nesting of minidl's compute regions, over all threads (BLAS's setting is process-wide)
_saved = []         # (controller, its num_threads before the outermost region)
_blas = None        # threadpoolctl's controllers of the BLAS libraries, found on first use


def _blas_controllers():
    global _blas
    if _blas is None:
        had_kmp = "KMP_DUPLICATE_LIB_OK" in os.environ
        try:
            from threadpoolctl import ThreadpoolController
            _blas = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:   # threadpoolctl missing or unable to inspect this process: no limit
            _blas = []
        finally:
            if not had_kmp:     # threadpoolctl's import sets it for Intel's OpenMP; leave the environment as it was
                os.environ.pop("KMP_DUPLICATE_LIB_OK", None)
    return _blas


def _enter():
    global _depth
    with _lock:
        _depth += 1
        limit = _policy["blas_threads"]
        if _depth == 1 and limit is not None:
            for lib in _blas_controllers():
                before = lib.num_threads
                if before != limit:
                    lib.set_num_threads(limit)
                    _saved.append((lib, before))
            _threads.blas_single_threaded = limit == 1 and bool(_blas_controllers())


def _exit():
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            _threads.blas_single_threaded = False
            while _saved:
                lib, before = _saved.pop()
                lib.set_num_threads(before)


class compute:
    """Context manager: minidl's thread policy for the block (reentrant; the outermost one applies it).

    >>> with minidl.performance.compute():     # e.g. around a functional forward outside any nn.Module
    ...     y = F.conv2d(x, w)
    """

    def __enter__(self):
        _enter()
        return self

    def __exit__(self, *exc):
        _exit()


def guarded(fn):
    """Decorator: run ``fn`` inside :class:`compute` (what ``nn.Module.__call__`` and ``backward`` use)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _enter()
        try:
            return fn(*args, **kwargs)
        finally:
            _exit()
    return wrapper


def set_thread_policy(blas_threads=1):
    """Set how many BLAS threads minidl's compute regions use: an int >= 1, or None for no limit.

    Returns the previous value. Takes effect at the next outermost region (not inside one).
    """
    if blas_threads is not None and (isinstance(blas_threads, bool) or not isinstance(blas_threads, int)
                                     or blas_threads < 1):
        raise ValueError(f"set_thread_policy: blas_threads must be an int >= 1 or None, got {blas_threads!r}")
    with _lock:
        previous, _policy["blas_threads"] = _policy["blas_threads"], blas_threads
    return previous


def thread_policy():
    """The policy in force: {"blas_threads": int or None, "num_threads": minidl's threads}."""
    return {"blas_threads": _policy["blas_threads"], "num_threads": get_num_threads()}


def _keep_freed_memory():
    """Ask glibc to keep freed blocks of up to 32 MB for reuse instead of returning them to the system.

    By default an array over 128 KB-32 MB (glibc adapts the threshold) is mmap-ed and munmap-ed when
    freed, so every activation, column buffer and gradient of every step page-faults its memory in again:
    a LeNet-5 training step at batch 64 measured 13.4 ms with the defaults and 7.5 ms with this (one
    thread; ResNet-20 at batch 128: 13% faster). The peak resident size is unchanged; memory freed after
    a step stays with the process for the next one, as PyTorch's allocators keep theirs. Linux/glibc only.
    Returns whether it was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)     # glibc's largest allowed value on 64-bit
                    and libc.mallopt(M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):   # not glibc (musl, ...): keep the defaults
        return False


_applied = {}


def set_performance_defaults(keep_freed_memory=True):
    """Tune this process for minidl's training; call once, early (any time works). Returns what it did.

    What it changes, all process-wide, none of it undone:

    * ``keep_freed_memory``: glibc's malloc keeps freed blocks up to 32 MB for reuse (``mallopt``
      M_MMAP_THRESHOLD 32 MB, M_TRIM_THRESHOLD 1 GB) instead of unmapping them; a LeNet-5 step 13.4 ->
      7.5 ms, ResNet-20 13% faster; memory freed by one step stays with the process for the next, as
      PyTorch's allocator keeps its. Linux/glibc only (elsewhere: reported as not applied).

    It does not touch ``os.environ`` or any thread count: the thread policy (see the module docstring)
    works without this call, from ``import minidl`` on. Idempotent.
    """
    if keep_freed_memory and not _applied.get("keep_freed_memory"):
        _applied["keep_freed_memory"] = _keep_freed_memory()
    return dict(_applied, **thread_policy())
