"""``--distributed`` options refused in one line, before any MPI start (no mpi4py needed)."""
import pytest

from minidl.train import main


@pytest.mark.parametrize("extra, words", [
    (["--eval-only", "--resume", "missing.ckpt"], "--distributed trains on the CPU (MPI); it does not go with --eval-only"),
    (["--device", "gpu"], "--distributed trains on the CPU (MPI); it does not go with --device gpu"),
])
def test_distributed_refuses_what_it_does_not_do(tmp_path, capsys, extra, words):
    code = main(["lenet5", "--distributed", "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"minidl-train: error: {words}"]
    assert not (tmp_path / "run").exists()
