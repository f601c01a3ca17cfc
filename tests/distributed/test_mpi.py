"""Real MPI runs: ``mpiexec -n 2 python -m mpi4py tests/distributed/mpi_script.py MODE``, each bounded by a
timeout (a hang fails the test instead of stalling CI). Skipped without mpi4py or mpiexec."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'minidl[mpi]')")

SCRIPT = Path(__file__).with_name("mpi_script.py")
TIMEOUT = 120


def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("mpiexec is not available (pip install mpich)")
    return found


def launch(args, n=2, timeout=TIMEOUT, cwd=None):
    """``mpiexec -n N python -m mpi4py ARGS`` with one thread per rank; returns (returncode, stdout, stderr,
    seconds). A run that outlives ``timeout`` fails the test (it is killed: CI never hangs)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    start = time.monotonic()
    try:
        done = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", *args],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mpiexec -n {n} ... {' '.join(args)} did not finish within {timeout} s (a hang)")
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def run_mpi(mode, n=2, timeout=TIMEOUT):
    return launch([str(SCRIPT), mode], n=n, timeout=timeout)


def results(stdout, n=2):
    """The RESULT records of the ranks (mpiexec may join the ranks' lines), as dicts, sorted by rank."""
    lines = sorted(re.findall(r"RESULT rank=\d+[^\n]*?(?=RESULT|\n|$)", stdout))
    assert len(lines) == n, stdout
    return [dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv) for line in lines]


def test_allreduce_sums_and_averages_over_two_ranks():
    rc, out, err, _ = run_mpi("allreduce")
    assert rc == 0, err
    for r in results(out):
        assert r["sum"] == "3"                        # 1 + 2
        assert out.count("mean=[0.5, 1.0]") == 2     # mean of [0, 0] and [1, 2]


def test_two_ranks_half_batch_equal_one_process_full_batch_float64():
    rc, out, err, _ = run_mpi("equivalence")
    assert rc == 0, err
    for r in results(out):
        assert float(r["moved"]) > 1e-3    # the steps changed the weights (the comparison means something)
        assert float(r["diff"]) <= 1e-12   # 2 x B/2 == 1 x B after 3 SGD steps
        assert float(r["across"]) == 0.0   # both ranks hold identical parameters


def test_two_ranks_half_batch_equal_one_process_full_batch_float32_to_rounding():
    rc, out, err, _ = run_mpi("equivalence-float32")
    assert rc == 0, err
    for r in results(out):
        assert float(r["moved"]) > 1e-3
        assert float(r["diff"]) <= 1e-5    # only the order of float32 sums differs
        assert float(r["across"]) == 0.0


def test_two_ranks_with_sync_batchnorm_equal_one_process_float64():
    """SyncBatchNorm: parameters AND running statistics as one process with the whole batch."""
    rc, out, err, _ = run_mpi("equivalence-syncbn")
    assert rc == 0, err
    for r in results(out):
        assert float(r["moved"]) > 1e-3
        assert float(r["diff"]) <= 1e-12
        assert float(r["across"]) == 0.0


def test_per_rank_batchnorm_differs_from_one_process():
    """The documented default: per-rank BN statistics, so 2 x B/2 is not 1 x B."""
    rc, out, err, _ = run_mpi("equivalence-bn")
    assert rc == 0, err
    for r in results(out):
        assert float(r["diff"]) > 1e-6
        assert float(r["across"]) == 0.0   # yet the ranks hold the same parameters (gradients averaged)


def test_bcast_parameters_names_the_mismatch_on_every_rank():
    rc, out, err, _ = run_mpi("mismatch")
    assert rc == 0, err
    lines = re.findall(r"RESULT rank=\d+[^\n]*?(?=RESULT|\n|$)", out)
    assert len(lines) == 2, out
    for line in lines:
        assert "bcast_parameters: the models differ across ranks" in line
        assert "parameter 0.weight" in line and "(5, 4)" in line and "(3, 4)" in line


@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_quickly(mode):
    rc, out, err, seconds = run_mpi(mode, timeout=60)
    assert rc != 0
    assert "was not stopped" not in out
    assert seconds < 30, f"the job took {seconds:.1f} s to end"
    if mode == "raise":
        assert "rank 1 failed on purpose" in err
