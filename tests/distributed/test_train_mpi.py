"""``mpiexec -n 2 python -m mpi4py -m minidl.train MODEL --distributed``: one run folder written by rank 0 only,
exact resume, another number of ranks refused. Every launch is bounded by a timeout; skipped without MPI."""
import numpy as np
import pytest

from minidl.training.checkpoint import load_checkpoint
from tests.distributed.test_mpi import launch

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'minidl[mpi]')")

SMALL = ["resnet20", "--dataset", "synthetic", "--limit", "64", "--batch-size", "32", "--quiet", "--distributed"]


def train(tmp_path, n, *extra):
    return launch(["-m", "minidl.train", *SMALL, *extra], n=n, cwd=tmp_path)


def test_distributed_cli_writes_one_run_folder_and_resumes_exactly(tmp_path):
    rc, out, err, _ = train(tmp_path, 2, "--epochs", "1", "--out", "split")
    assert rc == 0, err
    assert out.count("epoch 1/1") == 1 and out.count("done: best validation accuracy") == 1   # rank 0 only
    files = {p.name for p in (tmp_path / "split").iterdir()}
    assert {"config.json", "metrics.csv", "last.ckpt", "best.ckpt"} <= files
    assert files <= {"config.json", "metrics.csv", "last.ckpt", "best.ckpt", "curves.png"}
    assert [p.name for p in tmp_path.iterdir()] == ["split"]
    assert load_checkpoint(tmp_path / "split" / "last.ckpt")["config"]["world_size"] == 2

    rc, out, err, _ = train(tmp_path, 2, "--epochs", "2", "--resume", "split")
    assert rc == 0, err
    assert len((tmp_path / "split" / "metrics.csv").read_text().splitlines()) == 3    # header + 2 epochs

    rc, out, err, _ = train(tmp_path, 2, "--epochs", "2", "--out", "straight")
    assert rc == 0, err
    resumed = load_checkpoint(tmp_path / "split" / "last.ckpt")["model"]
    straight = load_checkpoint(tmp_path / "straight" / "last.ckpt")["model"]
    for key in straight:
        np.testing.assert_array_equal(resumed[key].numpy(), straight[key].numpy(), err_msg=key)


def test_resume_on_another_number_of_ranks_is_refused_in_one_line(tmp_path):
    rc, _, err, _ = train(tmp_path, 2, "--epochs", "1", "--out", "run")
    assert rc == 0, err
    rc, _, err, _ = train(tmp_path, 1, "--epochs", "2", "--resume", "run")
    assert rc == 2
    ours = [line for line in err.splitlines() if line.startswith("minidl-train")]
    assert ours == ["minidl-train: error: --resume run/last.ckpt was trained on 2 rank(s), this run has 1: resume it "
                    "on 2 (mpiexec -n 2 ... --distributed); the data order depends on the number"]


def test_a_batch_that_does_not_split_is_refused(tmp_path):
    rc, _, err, _ = launch(["-m", "minidl.train", *SMALL[:5], "--batch-size", "33", "--quiet", "--distributed"],
                           n=2, cwd=tmp_path)
    assert rc == 2
    assert "--batch-size 33 does not split evenly across 2 ranks" in err
    assert not list(tmp_path.iterdir())
