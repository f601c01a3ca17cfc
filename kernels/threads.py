"""minidl's CPU threads: the loops of the Numba kernels and the large GEMMs, split over a small pool.

Every Numba kernel in ``minidl.kernels.cpu`` is a serial loop over an independent outer dimension (the
N*C planes, the channels, the rows of tiles) between ``lo`` and ``hi``, compiled with ``nogil=True``.
:func:`parallel_for` runs ``kernel(lo, hi, *args)`` on contiguous parts of ``range(total)`` (one a thread,
:data:`PARTS_PER_THREAD` for large work) and returns when all are done. The calling thread and the pool's
threads each claim the next part until none is left, so a thread that starts late (woken late, or its core
taken by another library's spinning threads) takes fewer parts instead of holding the launch up. The parts
do not depend on who runs them, so neither do the results. :func:`matmul` splits a
large GEMM the same way, one block of rows or columns a thread, with NumPy's BLAS on one thread in each
(minidl's compute regions hold it there: ``minidl.performance``).

Why not Numba's ``parallel=True`` (what minidl used before issue 15):

* **Compile time.** Numba turns a ``prange`` loop into a parallel "gufunc" with its own compile pipeline:
  the same loop nest compiled 8-10x slower than the serial loop (``_col2im_gemm_stride1``: 5.9 s vs
  0.57 s), and a fresh install's first LeNet-5 step spent 12 s compiling four kernels.
* **Threads that spin.** Numba's default threading layer is OpenMP, whose idle threads spin, and in a
  process that has imported PyTorch it shares PyTorch's OpenMP runtime; its ``workqueue`` layer blocks
  instead but aborts the process when two Python threads launch kernels at once. The threads here block
  on a queue between launches and never spin, whoever else runs in the process.
* **One pool for both.** OpenBLAS's own threads spin for up to 2^28 cycles after each GEMM, taking the core
  the kernels need; splitting the GEMMs here gives them two threads without those.

A launch costs ~80-100 us here (waking a blocked thread on this 2-vCPU virtual machine, and handing it the
GIL), so work below :data:`MIN_WORK` elements (:data:`MIN_ELEMENTWISE` for :func:`elementwise`), or a
single item, runs on the calling thread alone, and work is cut finer than one part a thread only from
:data:`FINE_WORK` elements. The pool is one per process, used by one launch at a time: a second Python
thread that launches while it is busy runs every part of its kernel on its own thread, in order, and so
does a kernel launched from inside a part. After ``fork`` the child starts a pool of its own when it first
needs one. :func:`beside` runs two independent pieces of work at once, one on a pool thread, and
:func:`beside_map` a piece of work here while the pool's threads start on the parts of a map, this thread
taking what is left of them once its own work is done: a small layer's input gradient beside its filter
gradient's parts, each about a launch long, whose halves would each pay a launch.
"""
import itertools
import os
import queue
import threading
import warnings

import numpy as np

__all__ = ["get_num_threads", "set_num_threads", "parallel_for", "parallel_map", "beside", "beside_map", "map_chunks",
           "sum_parts", "batch_chunks", "elementwise", "matmul", "MIN_WORK", "MIN_ELEMENTWISE", "MIN_GEMM_FLOPS",
           "FINE_WORK", "PARTS_PER_THREAD", "PARTIAL_SUM_ELEMENTS", "THREAD_VARIABLES"]

# Below these sizes a launch's ~80-100 us cost more than a second thread saves (elements of the largest
# array a kernel touches; elements of an elementwise op; multiply-adds of a GEMM); tests set them to 0 to
# split tiny arrays. Measured, one thread vs two (us): 2x2 max pooling of 2^16 / 2^17 / 2^18 input elements
# 149 vs 135 / 262 vs 195 / 481 vs 307; ReLU of 2^17 / 2^18 / 2^19 elements 123 vs 145 / 212 vs 191 /
# 426 vs 358 (benchmarks/README.md, "How minidl uses the cores").
MIN_WORK = 2 ** 17
MIN_ELEMENTWISE = 2 ** 19
MIN_GEMM_FLOPS = 2 ** 23
# Kernels from FINE_WORK elements, and chunked convolutions, are cut into this many parts a thread, each
# claimed by whichever thread is free (_Launch): a thread that starts late (its core taken by another
# library's spinning threads, such as PyTorch's OpenMP pool just after a PyTorch op) then takes fewer
# parts. Smaller kernels and GEMMs are cut one part a thread (each part costs a claim: ReLU of 2^16
# elements took 113 us in two parts, 238 us in eight).
PARTS_PER_THREAD = 4
FINE_WORK = 2 ** 20
# Work whose parts each return partial sums (a convolution's dW) is cut finer only while all parts' sums
# together stay under this many elements (8 MB in float32); otherwise one part a thread, as the sums of
# large filters (ResNet-18's 256 x 256 Winograd dU: 9.4 MB a part) would add to a training step's memory.
PARTIAL_SUM_ELEMENTS = 2 ** 21


# Environment variables that set the default thread count, read at the first launch (the first that is a
# positive int wins): minidl's own, then Numba's (minidl's kernels honoured it when Numba ran their threads)
# and OpenMP's (PyTorch honours it).
THREAD_VARIABLES = ("MINIDL_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")


def _default_threads():
    for name in THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
        if value:
            warnings.warn(f"minidl: {name}={value!r} is not an int >= 1; ignored for minidl's thread count",
                          RuntimeWarning, stacklevel=2)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_num_threads = None   # None: the default (_default_threads, asked once: the call costs ~6 us)
_cpus = None
# Set by minidl.performance while a compute region holds NumPy's BLAS at one thread: only then are GEMMs
# split here (otherwise BLAS runs its own threads, and splitting would run threads x threads).
blas_single_threaded = False


def get_num_threads():
    """The number of threads minidl's CPU kernels and GEMMs use (as ``torch.get_num_threads``).

    Default: ``MINIDL_NUM_THREADS``, else ``NUMBA_NUM_THREADS``, else ``OMP_NUM_THREADS`` if set (read at the
    first call), else every CPU this process may run on.
    """
    global _cpus
    if _num_threads:
        return _num_threads
    if _cpus is None:
        _cpus = _default_threads()
    return _cpus


def set_num_threads(n):
    """Use ``n`` threads (an int >= 1) for minidl's CPU kernels and GEMMs, from the next launch on.

    Like ``torch.set_num_threads``: process-wide; 1 runs every kernel on the calling thread.
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: expected an int >= 1, got {n!r}")
    _num_threads = int(n)


class _Launch:
    """One launch: ``kernel(bounds[i], bounds[i + 1], *args)`` for every part i, each part claimed by whichever
    thread asks first (the launching thread or a pool thread), so that a thread that wakes late, or shares its
    core with another library's spinning threads, takes fewer parts instead of holding the launch up."""

    def __init__(self, kernel, bounds, args):
        self.kernel, self.bounds, self.args = kernel, bounds, args
        self.parts = len(bounds) - 1
        self.claims = itertools.count()     # next() on it is atomic under the GIL
        self.lock = threading.Lock()
        self.left = self.parts              # parts not finished yet
        self.finished = threading.Event()
        self.error = None

    def work(self):
        """Claim and run parts until none is left; errors are kept for the launching thread to raise."""
        while True:
            i = next(self.claims)
            if i >= self.parts:
                return
            try:
                if self.error is None:      # after an error the remaining parts are only counted off
                    self.kernel(self.bounds[i], self.bounds[i + 1], *self.args)
            except BaseException as error:
                with self.lock:
                    if self.error is None:
                        self.error = error
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.finished.set()


class _Pool:
    """Threads that each wait on their own inbox for a launch to help with."""

    def __init__(self):
        self.lock = threading.Lock()        # one launch at a time
        self.inboxes = []

    def grow(self, workers):
        while len(self.inboxes) < workers:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), daemon=True,
                             name=f"minidl-kernels-{len(self.inboxes) + 1}").start()
            self.inboxes.append(inbox)

    @staticmethod
    def _serve(inbox):
        while True:
            inbox.get()()       # a _Launch's work (it keeps its own errors), or a test's callable

    def run(self, kernel, bounds, args, helpers):
        """Every part of ``bounds`` run by this thread and up to ``helpers`` pool threads; the caller holds
        self.lock. Returns when every part is done (a pool thread that wakes later finds none left)."""
        launch = _Launch(kernel, bounds, args)
        helpers = min(helpers, launch.parts - 1)
        self.grow(helpers)
        for inbox in self.inboxes[:helpers]:
            inbox.put(launch.work)
        launch.work()
        launch.finished.wait()          # parts a pool thread claimed and still runs: they write our arrays
        if launch.error is not None:
            raise launch.error


_pool = None


def _forget_pool():
    global _pool, _cpus
    _pool, _cpus = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)   # the child has none of the parent's threads


def _split(total, work, min_work):
    """Part bounds over range(total), or None to run on the calling thread alone."""
    threads = min(get_num_threads(), total)
    if threads <= 1 or work < min_work:
        return None
    return _bounds(total, min(total, threads * (PARTS_PER_THREAD if work >= FINE_WORK else 1)))


def _bounds(total, parts):
    """The edges of ``parts`` contiguous, near-equal parts of range(total): [0, ..., total]."""
    return [total * i // parts for i in range(parts + 1)]


class _Local(threading.local):
    serial = False      # this thread runs every part of its launches itself, in order (beside's side job)
    owner = False       # this thread holds the pool for beside: its launches use the pool without the lock


_local = _Local()


def _get_pool():
    global _pool
    if _pool is None:
        _pool = _Pool()
    return _pool


def _launch(kernel, bounds, args):
    """Every part of ``bounds`` on this thread and the pool's; all on this thread, in order, if the pool is
    busy (another Python thread's launch, or this is a launch from inside a part): the same parts either way,
    so the same results."""
    pool = _get_pool()
    if _local.owner:            # beside()'s calling thread: the pool is held for it
        _local.owner = False    # (a launch from inside one of these parts runs serially)
        try:
            pool.run(kernel, bounds, args, get_num_threads() - 1)
        finally:
            _local.owner = True
        return
    if _local.serial or not pool.lock.acquire(blocking=False):
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            kernel(lo, hi, *args)
        return
    try:
        pool.run(kernel, bounds, args, get_num_threads() - 1)
    finally:
        pool.lock.release()


def beside(main, side):
    """``(main(), side())``, with ``side`` run on a pool thread while ``main`` runs on this one.

    For two independent pieces of work of about a launch's length each (a small convolution's input and
    filter gradients): one launch for both, instead of one for each half of each. ``side`` runs every part
    of its kernels on its own thread, in order; ``main``'s kernels are split as usual, and the pool thread
    claims what is left of them once ``side`` is done. The parts are the same as ever, so are the results.
    With one thread, or the pool busy (another Python thread's launch, a call from inside a part), both run
    here, ``main`` first.
    """
    pool = _get_pool()
    if get_num_threads() <= 1 or _local.serial or _local.owner or not pool.lock.acquire(blocking=False):
        return main(), side()
    try:
        pool.grow(1)
        result, done = [None, None], threading.Event()

        def job():
            _local.serial = True
            try:
                result[1] = (True, side())
            except BaseException as error:      # raised on the calling thread
                result[1] = (False, error)
            finally:
                _local.serial = False
                done.set()
        pool.inboxes[0].put(job)
        _local.owner = True
        try:
            result[0] = main()
        finally:
            _local.owner = False
            done.wait()
    finally:
        pool.lock.release()
    ok, value = result[1]
    if not ok:
        raise value
    return result[0], value


def beside_map(main, fn, total, partial_elements=0):
    """``(main(), parallel_map(fn, total, partial_elements))``, the map's parts claimed by the pool's threads
    from the start and by this thread once ``main`` returns.

    For a small layer's two gradients: its filter gradient's parts (``fn``: partial sums) start on the pool
    thread at once, its input gradient (``main``) runs here, and whichever thread is free takes what is left,
    so neither waits for the other's whole piece (``beside`` gave the pool thread the filter gradient whole,
    and this thread then waited for it). ``main``'s own launches are split as usual (the pool threads join
    them once the map has no part left). The map's parts are parallel_map's, so are its results, bit for
    bit. With one thread, one part, or the pool busy (another Python thread's launch, a call from inside a
    part), ``main()`` then ``parallel_map(...)``, here.
    """
    threads = get_num_threads()
    pool = _get_pool()
    if threads <= 1 or total <= 1 or _local.serial or _local.owner or not pool.lock.acquire(blocking=False):
        return main(), parallel_map(fn, total, partial_elements)
    try:
        results = {}

        def run(lo, hi):
            results[lo] = fn(lo, hi)
        launch = _Launch(run, _map_bounds(total, partial_elements, threads), ())
        helpers = min(threads - 1, launch.parts - 1)
        pool.grow(helpers)
        for inbox in pool.inboxes[:helpers]:
            inbox.put(launch.work)
        _local.owner = True
        try:
            first = main()
        finally:
            _local.owner = False
            launch.work()                   # the parts no pool thread has claimed yet
            launch.finished.wait()
    finally:
        pool.lock.release()
    if launch.error is not None:
        raise launch.error
    return first, [results[lo] for lo in sorted(results)]


def parallel_for(kernel, total, *args, min_work=None):
    """Run ``kernel(lo, hi, *args)`` over ``range(total)`` in contiguous parts, each claimed by the first free
    thread: one a thread, or :data:`PARTS_PER_THREAD` from :data:`FINE_WORK` elements; return None.

    ``kernel`` must treat the items of its range independently (each writes its own part of the outputs)
    and release the GIL (a Numba ``nogil`` function) for the parts to run at once. Small work (the largest
    array argument under ``min_work`` elements, default :data:`MIN_WORK`; element-by-element kernels pass
    :data:`MIN_ELEMENTWISE`) runs as ``kernel(0, total, *args)`` on this thread.
    """
    if total <= 0:
        return
    work = max((a.size for a in args if isinstance(a, np.ndarray)), default=0)
    bounds = _split(total, work, MIN_WORK if min_work is None else min_work)
    if bounds is None:
        kernel(0, total, *args)
    else:
        _launch(kernel, bounds, args)


def parallel_map(fn, total, partial_elements=0):
    """``[fn(lo, hi) for each part]``: ``range(total)`` cut into contiguous parts, :data:`PARTS_PER_THREAD`
    a thread (at most one an item), each claimed by the first free thread; the list in ``range`` order.

    For work cut into chunks (a convolution over groups of images): a thread runs a part's whole pipeline
    (im2col, GEMM, copy out), with the kernels and GEMMs inside it on that thread alone, which needs one
    launch instead of several per chunk. ``fn`` may return per-part partial sums for the caller to add: the
    parts depend on ``total`` and the thread count only, so the sums do too. With one thread, or one item,
    ``fn(0, total)`` runs on the calling thread. ``partial_elements``: the size of the partial sums each part
    returns; one part a thread if the finer parts' sums would exceed :data:`PARTIAL_SUM_ELEMENTS`.
    """
    threads = get_num_threads()
    if threads <= 1 or total <= 1:
        return [fn(0, total)] if total > 0 else []
    results = {}

    def run(lo, hi):
        results[lo] = fn(lo, hi)

    _launch(run, _map_bounds(total, partial_elements, threads), ())
    return [results[lo] for lo in sorted(results)]


def _map_bounds(total, partial_elements, threads):
    """parallel_map's parts of range(total): PARTS_PER_THREAD a thread unless their sums are too large."""
    per_thread = PARTS_PER_THREAD if partial_elements * threads * PARTS_PER_THREAD <= PARTIAL_SUM_ELEMENTS else 1
    return _bounds(total, min(total, threads * per_thread))


def map_chunks(x, chunks, work, partial_elements=0):
    """[work(part) for each part of chunks]: on minidl's threads for a NumPy array x (parallel_map: each part
    a contiguous run of chunks, the kernels and GEMMs inside it on one thread), one part for CuPy's.
    ``partial_elements``: the size of the partial sums ``work`` returns (see parallel_map)."""
    if isinstance(x, np.ndarray):
        return parallel_map(lambda lo, hi: work(chunks[lo:hi]), len(chunks), partial_elements)
    return [work(chunks)]


def sum_parts(parts):
    """Add the parts' partial sums (arrays, or tuples of arrays and Nones) into the first part's, in order,
    so that the result is the same for the same thread count; return it."""
    first = parts[0]
    for part in parts[1:]:
        if isinstance(first, tuple):
            for into, other in zip(first, part):
                if into is not None:
                    into += other
        else:
            first += part
    return first


def batch_chunks(N, step, parallel=True):
    """Cut N images into chunks of at most ``step``: [(n0, n1), ...]. With ``parallel`` (NumPy arrays) and
    more than one chunk, a multiple of the thread count of equal chunks, so that every thread has work."""
    step = max(1, min(N, step))
    count = -(-N // step)
    if parallel and count > 1:
        threads = get_num_threads()
        count = min(N, -(-count // threads) * threads)
        return [(N * i // count, N * (i + 1) // count) for i in range(count)]
    return [(n0, min(n0 + step, N)) for n0 in range(0, N, step)]


def _elementwise_part(lo, hi, fn, out, *arrays):
    fn(*(a[lo:hi] if isinstance(a, np.ndarray) else a for a in arrays), out=out[lo:hi])


def elementwise(fn, out, *arrays):
    """``fn(*arrays, out=out)`` for an element-by-element ``fn`` (a NumPy ufunc, or a function of that form),
    on minidl's threads: each thread takes one flat part of every array. Split only when ``out`` and every
    array argument are C-contiguous with ``out``'s shape (other arguments, such as scalars, are passed to
    every part as they are) and of at least :data:`MIN_ELEMENTWISE` elements; otherwise one call. NumPy's
    loops release the GIL, so the parts run at once. Returns ``out``.
    """
    flat = out.reshape(-1) if out.flags.c_contiguous and out.size >= MIN_ELEMENTWISE else None
    if flat is not None and all(a.shape == out.shape and a.flags.c_contiguous
                                for a in arrays if isinstance(a, np.ndarray)):
        parallel_for(_elementwise_part, flat.size, fn, flat,
                     *(a.reshape(-1) if isinstance(a, np.ndarray) else a for a in arrays))
    else:
        fn(*arrays, out=out)
    return out


def _matmul_stack(lo, hi, a, b, out):
    np.matmul(a[lo:hi], b[lo:hi], out=out[lo:hi])


def _matmul_rows(lo, hi, a, b, out):
    np.matmul(a[lo:hi], b, out=out[lo:hi])


def _matmul_columns(lo, hi, a, b, out):
    np.matmul(a, b[..., lo:hi], out=out[..., lo:hi])


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` for 2-D or stacked 3-D NumPy arrays, split over minidl's threads.

    Split only inside a minidl compute region that holds NumPy's BLAS at one thread, and only for GEMMs of
    at least :data:`MIN_GEMM_FLOPS` multiply-adds: by the stack (3-D with at least as many matrices as
    threads), else by the rows of ``a`` or the columns of ``b``, whichever are more. Each block is one BLAS
    call on its own slice of ``out``; the sums over the inner dimension are not split, so the result is
    the same as one call's up to BLAS's blocking.
    """
    threads = get_num_threads()
    if threads == 1 or not blas_single_threaded or a.ndim not in (2, 3) or a.ndim != b.ndim:
        return np.matmul(a, b, out=out)
    M, K = a.shape[-2:]
    P = b.shape[-1]
    stack = a.shape[0] if a.ndim == 3 else 1
    if stack * M * K * P < MIN_GEMM_FLOPS or (a.ndim == 3 and b.shape[0] != stack):
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty(a.shape[:-1] + (P,), dtype=np.result_type(a.dtype, b.dtype))
    if a.ndim == 3 and stack >= threads:
        _launch(_matmul_stack, _bounds(stack, threads), (a, b, out))
    elif a.ndim == 2 and M >= P:
        _launch(_matmul_rows, _bounds(M, threads), (a, b, out))
    else:
        _launch(_matmul_columns, _bounds(P, threads), (a, b, out))
    return out
