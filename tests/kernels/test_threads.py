"""minidl.kernels.threads: the pool that runs the Numba kernels' loops and the large GEMMs in chunks.

Each kernel is tested against the reference with every loop split (the ``cpu_split`` backend of conftest.py);
here: the chunking itself, errors, nesting, two Python threads at once, fork, and the GEMM split.
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn
from minidl.kernels import threads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def split_everything(monkeypatch):
    """Every launch split, whatever its size, over 3 threads (more than this machine's cores: uneven chunks),
    PARTS_PER_THREAD parts a thread."""
    monkeypatch.setattr(threads, "MIN_WORK", 0)
    monkeypatch.setattr(threads, "MIN_ELEMENTWISE", 0)
    monkeypatch.setattr(threads, "FINE_WORK", 0)
    monkeypatch.setattr(threads, "MIN_GEMM_FLOPS", 0)
    monkeypatch.setattr(threads, "_num_threads", 3)


def recorder():
    seen, lock = [], threading.Lock()

    def kernel(lo, hi, marks):
        with lock:
            seen.append((lo, hi, threading.get_ident()))
        marks[lo:hi] += 1
    return kernel, seen


@pytest.mark.parametrize("total", [1, 2, 3, 7, 100])
def test_parallel_for_runs_every_item_once_in_contiguous_parts(split_everything, total):
    kernel, seen = recorder()
    marks = np.zeros(total, dtype=np.int64)
    threads.parallel_for(kernel, total, marks)
    assert marks.tolist() == [1] * total
    parts = sorted((lo, hi) for lo, hi, _ in seen)
    assert len(parts) == min(3 * threads.PARTS_PER_THREAD, total) and parts[0][0] == 0 and parts[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))              # contiguous, no gap, no overlap
    assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1
    assert len({ident for _, _, ident in seen}) <= 3


def test_the_parts_run_at_once_on_every_thread(split_everything):
    """Each part waits until three threads are inside a part: it passes only if the caller and both pool
    threads run parts at the same time (a thread cannot claim a second part while it waits in one)."""
    barrier = threading.Barrier(3, timeout=20)
    idents = set()

    def kernel(lo, hi, marks):
        idents.add(threading.get_ident())
        barrier.wait()
        marks[lo:hi] += 1

    marks = np.zeros(3 * threads.PARTS_PER_THREAD, dtype=np.int64)
    threads.parallel_for(kernel, marks.size, marks)
    assert marks.tolist() == [1] * marks.size and len(idents) == 3


def test_a_pool_thread_that_starts_late_does_not_hold_the_launch_up(split_everything):
    """A pool thread kept busy (as when PyTorch's spinning threads hold its core) claims no part: the calling
    thread runs them all and returns; the late thread later finds nothing left."""
    threads.parallel_for(recorder()[0], 9, np.zeros(9, dtype=np.int64))    # the pool and its threads exist
    release = threading.Event()
    for inbox in threads._pool.inboxes:
        inbox.put(lambda: release.wait(20))
    try:
        kernel, seen = recorder()
        marks = np.zeros(100, dtype=np.int64)
        threads.parallel_for(kernel, 100, marks)
        assert marks.tolist() == [1] * 100
        assert {ident for _, _, ident in seen} == {threading.get_ident()} and len(seen) == 3 * threads.PARTS_PER_THREAD
    finally:
        release.set()
    marks = np.zeros(100, dtype=np.int64)                                   # and the pool still works
    threads.parallel_for(recorder()[0], 100, marks)
    assert marks.tolist() == [1] * 100


def test_small_work_and_one_thread_run_on_the_calling_thread(monkeypatch):
    kernel, seen = recorder()
    threads.parallel_for(kernel, 10, np.zeros(10))                          # 10 elements < MIN_WORK
    monkeypatch.setattr(threads, "MIN_WORK", 0)
    monkeypatch.setattr(threads, "_num_threads", 1)
    threads.parallel_for(kernel, 10, np.zeros(10))
    assert [(lo, hi) for lo, hi, _ in seen] == [(0, 10), (0, 10)]
    assert {ident for _, _, ident in seen} == {threading.get_ident()}
    threads.parallel_for(kernel, 0, np.zeros(0))                            # nothing to do
    assert len(seen) == 2


def test_an_error_in_any_part_is_raised_after_every_running_part_finished(split_everything):
    running, lock = [0], threading.Lock()

    def kernel(lo, hi, _):
        with lock:
            running[0] += 1
        try:
            if lo == 4:
                raise ValueError(f"part {lo}:{hi} failed")
            time.sleep(0.01)
        finally:
            with lock:
                running[0] -= 1

    with pytest.raises(ValueError, match=r"part 4:5 failed"):
        threads.parallel_for(kernel, 9, np.zeros(9))
    assert running == [0]                                                   # nothing still writes our arrays
    marks = np.zeros(9, dtype=np.int64)                                     # the pool still works
    threads.parallel_for(recorder()[0], 9, marks)
    assert marks.tolist() == [1] * 9


def test_a_launch_inside_a_chunk_runs_serially(split_everything):
    inner_calls = []

    def inner(lo, hi, _):
        inner_calls.append((lo, hi))

    def outer(lo, hi, _):
        threads.parallel_for(inner, 4, np.zeros(4))      # the pool is busy with this launch: no deadlock

    threads.parallel_for(outer, 3, np.zeros(3))
    assert sorted(inner_calls) == sorted([(0, 1), (1, 2), (2, 3), (3, 4)] * 3)   # the same parts, one thread


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True, None])
def test_set_num_threads_refuses_bad_values(bad):
    with pytest.raises(ValueError, match="set_num_threads: expected an int >= 1, got"):
        minidl.set_num_threads(bad)


def test_set_num_threads_round_trip(monkeypatch):
    monkeypatch.setattr(threads, "_num_threads", None)
    default = minidl.get_num_threads()
    assert default >= 1
    minidl.set_num_threads(5)
    assert minidl.get_num_threads() == 5 == minidl.performance.thread_policy()["num_threads"]


def run_child(code, **env):
    child_env = dict(os.environ, **env)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_default_thread_count_follows_the_environment():
    code = "import json, minidl; print(json.dumps(minidl.get_num_threads()))"
    clean = {name: "" for name in threads.THREAD_VARIABLES}
    assert run_child(code, **dict(clean, MINIDL_NUM_THREADS="3", OMP_NUM_THREADS="1")) == 3
    assert run_child(code, **dict(clean, NUMBA_NUM_THREADS="2")) == 2
    assert run_child(code, **dict(clean, OMP_NUM_THREADS="1")) == 1
    assert run_child(code, **dict(clean, OMP_NUM_THREADS="bad")) == len(os.sched_getaffinity(0))
    warned = ("import json, warnings\nwith warnings.catch_warnings(record=True) as w:\n"
              "    warnings.simplefilter('always')\n    import minidl\n    n = minidl.get_num_threads()\n"
              "print(json.dumps([n, [str(x.message) for x in w if 'thread count' in str(x.message)]]))")
    n, messages = run_child(warned, **dict(clean, MINIDL_NUM_THREADS="two"))
    assert n == len(os.sched_getaffinity(0))
    assert messages == ["minidl: MINIDL_NUM_THREADS='two' is not an int >= 1; ignored for minidl's thread count"]


def test_batch_chunks_are_equal_and_a_multiple_of_the_threads(monkeypatch):
    monkeypatch.setattr(threads, "_num_threads", 2)
    for N, step in [(128, 3), (128, 50), (7, 2), (3, 1), (64, 64), (10, 100), (5, 4)]:
        chunks = threads.batch_chunks(N, step)
        assert chunks[0][0] == 0 and chunks[-1][1] == N and all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
        sizes = [n1 - n0 for n0, n1 in chunks]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1 and max(sizes) <= max(step, 1)
        if len(chunks) > 1:
            assert len(chunks) % 2 == 0 or len(chunks) == N                 # as many chunks a thread
    assert threads.batch_chunks(128, 3, parallel=False) == [(n, min(n + 3, 128)) for n in range(0, 128, 3)]


def test_parallel_map_keeps_the_parts_in_order_and_sum_parts_adds_them(split_everything):
    parts = threads.parallel_map(lambda lo, hi: (np.arange(lo, hi).sum(keepdims=True), None), 10)
    assert len(parts) == 10                                                 # 3 threads x 4, at most one an item
    total, nothing = threads.sum_parts(parts)
    assert total.tolist() == [45] and nothing is None
    starts = [p[0].tolist() for p in threads.parallel_map(lambda lo, hi: (np.array([lo]), None), 30)]
    assert starts == [[lo] for lo in threads._bounds(30, 12)[:-1]]          # in order, whoever ran them


def test_large_partial_sums_take_one_part_a_thread(split_everything):
    """Parts that each return a partial dW are cut finer only while all those sums stay small."""
    small = threads.PARTIAL_SUM_ELEMENTS // 12
    assert len(threads.parallel_map(lambda lo, hi: lo, 30, partial_elements=small)) == 12
    assert len(threads.parallel_map(lambda lo, hi: lo, 30, partial_elements=small + 1)) == 3
    assert len(threads.map_chunks(np.zeros(1), list(range(30)), len, partial_elements=small + 1)) == 3


@pytest.mark.parametrize("a_shape,b_shape", [((40, 30), (30, 7)), ((5, 30), (30, 60)), ((6, 5, 4), (6, 4, 9)),
                                             ((2, 5, 4), (2, 4, 9))])
def test_matmul_split_equals_numpy(split_everything, monkeypatch, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    launches = []
    launch = threads._launch
    monkeypatch.setattr(threads, "_launch", lambda k, bounds, args: (launches.append(k), launch(k, bounds, args)))
    assert threads.matmul(a, b) is not None and not launches             # BLAS not held at 1 thread: one call
    monkeypatch.setattr(threads, "blas_single_threaded", True)
    out = np.full(a_shape[:-1] + b_shape[-1:], np.nan)
    assert threads.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(threads.matmul(a, b.T.copy().T), a @ b, rtol=1e-12, atol=1e-12)   # strided b
    assert len(launches) == 2


def test_matmul_is_split_inside_a_compute_region_only(monkeypatch):
    seen = []
    monkeypatch.setattr(threads, "matmul", lambda a, b, out=None: (seen.append(threads.blas_single_threaded),
                                                                   np.matmul(a, b, out=out))[1])
    model = nn.Linear(4, 3)
    model(minidl.randn(2, 4)).sum().backward()
    assert seen == [True, True, True] and threads.blas_single_threaded is False


def test_two_python_threads_train_at_once(split_everything):
    """Each thread's model gets the weights it gets alone, bit for bit: the pool serves one launch at a time,
    and a thread that finds it busy runs the same parts of its kernels on its own thread."""
    def make(seed):
        minidl.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(8, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 4))
        return model, minidl.randn(8, 3, 16, 16), minidl.randint(0, 4, (8,))

    def train(model, x, t, errors):
        try:
            opt = minidl.optim.SGD(model.parameters(), lr=0.01)
            for _ in range(5):
                opt.zero_grad()
                F.cross_entropy(model(x), t).backward()
                opt.step()
        except Exception as error:   # reported below: an exception in a thread would pass silently
            errors.append(repr(error))

    alone = []
    for seed in range(2):
        model, x, t = make(seed)
        train(model, x, t, [])
        alone.append([p.data.copy() for p in model.parameters()])
    runs = [make(seed) for seed in range(2)]
    errors = []
    workers = [threading.Thread(target=train, args=(*run, errors)) for run in runs]
    [w.start() for w in workers]
    [w.join() for w in workers]
    assert errors == []
    for (model, _, _), expected in zip(runs, alone):
        for p, e in zip(model.parameters(), expected):
            np.testing.assert_array_equal(p.data, e)                        # the same parts either way


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_a_pool_of_its_own(split_everything):
    marks = np.zeros(9, dtype=np.int64)
    threads.parallel_for(recorder()[0], 9, marks)                          # the parent's pool exists
    pid = os.fork()
    if pid == 0:   # the child: its parent's pool threads do not exist here
        try:
            child = np.zeros(9, dtype=np.int64)
            threads.parallel_for(recorder()[0], 9, child)
            os._exit(0 if child.tolist() == [1] * 9 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


NO_NUMBA_THREADS = """
import json
import minidl
from minidl import nn
from numba.np.ufunc import parallel
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(8 * 16 * 16, 2))
model(minidl.randn(64, 3, 32, 32)).sum().backward()
print(json.dumps({"numba_layer_started": bool(getattr(parallel, "_is_initialized", False))}))
"""


def test_a_training_step_never_starts_numbas_threads():
    """minidl's kernels are serial Numba loops: Numba's threading layer (OpenMP, shared with PyTorch) is never
    launched, so no thread of it spins; the program's own Numba code may choose any layer."""
    assert run_child(NO_NUMBA_THREADS) == {"numba_layer_started": False}


def test_elementwise_split_equals_one_call(split_everything):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((5, 7)).astype(np.float32)
    a[0, 0], a[1, 1] = np.nan, -np.inf
    out = np.empty_like(a)
    assert threads.elementwise(np.maximum, out, a, 0) is out
    np.testing.assert_array_equal(out, np.maximum(a, 0))                   # NaN kept, -inf -> 0
    np.testing.assert_array_equal(threads.elementwise(np.add, np.empty_like(a), a, b), a + b)
    strided = a.T                                                           # not C-contiguous: one call
    out = threads.elementwise(np.add, np.empty((7, 5), np.float32), strided, b.T)
    np.testing.assert_array_equal(out, strided + b.T)
    empty = np.empty((0, 3), np.float32)
    assert threads.elementwise(np.add, np.empty_like(empty), empty, empty).shape == (0, 3)


def test_relu_and_add_on_split_threads_match_one_thread(split_everything):
    x = minidl.tensor(np.random.default_rng(2).standard_normal((4, 3, 5, 5)), requires_grad=True)
    y = F.relu(x) + x
    y.backward(minidl.tensor(np.ones(y.shape)))
    np.testing.assert_array_equal(y.numpy(), np.maximum(x.numpy(), 0) + x.numpy())
    np.testing.assert_array_equal(x.grad.numpy(), (x.numpy() > 0) + 1.0)


def test_beside_runs_the_side_work_on_a_pool_thread_at_once_with_the_main_work(split_everything):
    """Each waits for the other: it passes only if both run at the same time, on two threads."""
    barrier = threading.Barrier(2, timeout=20)

    def work(name):
        barrier.wait()
        return name, threading.get_ident()

    (main, main_thread), (side, side_thread) = threads.beside(lambda: work("main"), lambda: work("side"))
    assert (main, side) == ("main", "side")
    assert main_thread == threading.get_ident() and side_thread != main_thread


def test_beside_runs_both_here_in_order_with_one_thread_or_from_inside_a_part(split_everything, monkeypatch):
    order = []

    def work(name):
        order.append((name, threading.get_ident()))
        return name

    def kernel(lo, hi, _):          # the pool is busy with this launch: each part runs both itself
        results.append((threads.beside(lambda: work("main"), lambda: work("side")), threading.get_ident()))
    results = []
    threads.parallel_for(kernel, 3, np.zeros(3))
    assert [result for result, _ in results] == [("main", "side")] * 3
    by_thread = {}      # each part's pair on the part's own thread, main first
    for name, ident in order:
        by_thread.setdefault(ident, []).append(name)
    assert all(names == ["main", "side"] * (len(names) // 2) for names in by_thread.values())

    order.clear()
    monkeypatch.setattr(threads, "_num_threads", 1)
    assert threads.beside(lambda: work("main"), lambda: work("side")) == ("main", "side")
    assert order == [("main", threading.get_ident()), ("side", threading.get_ident())]

    order.clear()
    monkeypatch.setattr(threads, "_num_threads", 3)

    def side_that_nests():   # a beside inside the side work: both on the side's thread, in order
        return threads.beside(lambda: work("inner-main"), lambda: work("inner-side"))
    assert threads.beside(lambda: "main", side_that_nests) == ("main", ("inner-main", "inner-side"))
    assert [name for name, _ in order] == ["inner-main", "inner-side"] and len({t for _, t in order}) == 1
    assert order[0][1] != threading.get_ident()


def test_the_side_works_launches_run_on_its_own_thread_in_the_usual_parts(split_everything):
    """Inside the side work every launch runs all its parts on the side's thread, in order, cut as any launch
    is (so results do not depend on who runs them); the main work's launches still use the pool."""
    side_kernel, side_seen = recorder()
    main_kernel, main_seen = recorder()
    side_marks, main_marks = np.zeros(50, dtype=np.int64), np.zeros(50, dtype=np.int64)
    threads.beside(lambda: threads.parallel_for(main_kernel, 50, main_marks),
                   lambda: threads.parallel_for(side_kernel, 50, side_marks))
    assert side_marks.tolist() == [1] * 50 and main_marks.tolist() == [1] * 50
    assert len({ident for _, _, ident in side_seen}) == 1 and side_seen[0][2] != threading.get_ident()
    assert [(lo, hi) for lo, hi, _ in side_seen] == list(zip(threads._bounds(50, 3 * threads.PARTS_PER_THREAD)[:-1],
                                                           threads._bounds(50, 3 * threads.PARTS_PER_THREAD)[1:]))
    assert sorted((lo, hi) for lo, hi, _ in main_seen) == [(lo, hi) for lo, hi, _ in side_seen]


def test_an_error_in_the_side_work_is_raised_here_after_the_main_work(split_everything):
    done = []

    def side():
        raise ValueError("side failed")
    with pytest.raises(ValueError, match="side failed"):
        threads.beside(lambda: done.append("main"), side)
    assert done == ["main"]
    with pytest.raises(KeyError):   # an error in the main work: raised once the side work has finished
        threads.beside(lambda: {}["missing"], lambda: done.append("side"))
    assert done == ["main", "side"]
    marks = np.zeros(10, dtype=np.int64)       # the pool is free again
    threads.parallel_for(recorder()[0], 10, marks)
    assert marks.tolist() == [1] * 10


def test_beside_map_returns_the_main_work_and_the_maps_parts_in_order(split_everything):
    marks = np.zeros(30, dtype=np.int64)

    def part(lo, hi):
        marks[lo:hi] += 1
        return lo, hi
    main, parts = threads.beside_map(lambda: "main", part, 30, 0)
    assert main == "main" and marks.tolist() == [1] * 30
    assert parts == threads.parallel_map(lambda lo, hi: (lo, hi), 30)       # parallel_map's parts, in order


def test_beside_map_starts_the_parts_on_a_pool_thread_and_this_thread_takes_what_is_left(split_everything):
    """The first part, on a pool thread, waits until this thread has run every other part: it passes only if
    the parts start while the main work runs (which waits for them) and this thread then claims the rest."""
    total = 3 * threads.PARTS_PER_THREAD
    bounds = threads._bounds(total, total)
    first_started, last_done = threading.Event(), threading.Event()
    ran = {}

    def part(lo, hi):
        ran[lo] = threading.get_ident()
        if lo == 0:
            first_started.set()
            assert last_done.wait(20)
        elif ran.keys() >= set(bounds[1:-1]):   # every part but the first has run
            last_done.set()
        return lo
    main, parts = threads.beside_map(lambda: first_started.wait(20) and "main", part, total, 0)
    assert main == "main" and parts == bounds[:-1]
    assert ran[0] != threading.get_ident()


def test_beside_map_with_one_thread_from_inside_a_part_or_after_an_error(split_everything, monkeypatch):
    order = []

    def part(lo, hi):
        order.append(("part", lo, threading.get_ident()))
        return lo
    monkeypatch.setattr(threads, "_num_threads", 1)
    assert threads.beside_map(lambda: order.append(("main",)) or "main", part, 5, 0) == ("main", [0])
    assert order == [("main",), ("part", 0, threading.get_ident())]         # main first, one part, here
    monkeypatch.setattr(threads, "_num_threads", 3)
    inner = []

    def kernel(lo, hi, _):      # inside a launch's part the pool is busy: main, then the parts in order
        inner.append(threads.beside_map(lambda: "main", lambda a, b: (a, threading.get_ident()), 4, 0))
    threads.parallel_for(kernel, 2, np.zeros(2))
    assert all(m == "main" and [lo for lo, _ in p] == [0, 1, 2, 3] and len({t for _, t in p}) == 1 for m, p in inner)

    def failing(lo, hi):
        if lo == 2:
            raise ValueError("part 2 failed")
        return lo
    with pytest.raises(ValueError, match="part 2 failed"):
        threads.beside_map(lambda: "main", failing, 6, 0)
    with pytest.raises(KeyError):       # an error in the main work: raised once every part has run
        threads.beside_map(lambda: {}["missing"], part, 6, 0)
    marks = np.zeros(10, dtype=np.int64)        # the pool is free again
    threads.parallel_for(recorder()[0], 10, marks)
    assert marks.tolist() == [1] * 10
