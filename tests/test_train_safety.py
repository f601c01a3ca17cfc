"""The training command never loses a user's work (issue 13): data directories are only read, run folders
are refused when they hold a run and locked while one owns them, a resume with more epochs stretches the
schedule, every I/O failure is one line with a documented exit code, and kill -9 at any moment resumes.

Each test writes its own files and checks that none of the user's files was deleted or changed.
"""
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minidl.train import main
from minidl.training import checkpoint as checkpoint_module
from minidl.training import run as run_module
from minidl.training import rundir

from .data.fakes import cifar_arrays, write_cifar_batch, write_idx
from .test_train import TINY, one_error_line, tiny_args, tiny_model  # noqa: F401  (tiny_model: autouse fixture)

REPO = Path(__file__).resolve().parents[1]


def snapshot(folder):
    """Every file under ``folder`` with its bytes: compared before and after to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def metrics(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def dead_pid():
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def idx_split(folder, train, n, seed, suffix=".gz"):
    rng = np.random.default_rng(seed)
    prefix = "train" if train else "t10k"
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n).astype(np.uint8))


def mnist_args(out, *extra):
    return ["lenet1", "--epochs", "1", "--batch-size", "16", "--out", str(out), "--quiet", *extra]


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """MINIDL_OFFLINE, an empty cache, no system copies and a fresh 'said once' memory."""
    from minidl.data import FashionMNIST, mnist
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    monkeypatch.setattr(mnist, "_announced", set())


# -- 1. data directories are only read ------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_a_re_encoded_idx_set_in_data_dir_is_read_with_a_note_and_kept(tmp_path, no_network, caplog, dataset):
    data = tmp_path / "my-subset"
    idx_split(data, train=True, n=48, seed=1)
    idx_split(data, train=False, n=16, seed=2)
    before = snapshot(data)
    out = tmp_path / "run"
    assert main(mnist_args(out, "--dataset", dataset, "--data-dir", str(data))) == 0
    notes = [r.getMessage() for r in caplog.records if "official" in r.getMessage()]
    assert len(notes) == 1 and "reading them as given" in notes[0] and str(data) in notes[0]
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == dataset and config["train_size"] == 48 and config["val_size"] == 16
    assert "not the official release" in config["data_source"] and "sample" not in config["data_source"]
    assert snapshot(data) == before


def test_a_truncated_raw_idx_file_is_one_line_naming_it(tmp_path, no_network, capsys):
    data = tmp_path / "digits"
    idx_split(data, train=True, n=48, seed=1, suffix="")
    idx_split(data, train=False, n=16, seed=2, suffix="")
    images = data / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    before = snapshot(data)
    assert main(mnist_args(tmp_path / "run", "--dataset", "mnist", "--data-dir", str(data))) == 2
    err = one_error_line(capsys)
    assert f"{images}: IDX header says shape (48, 28, 28)" in err
    assert snapshot(data) == before and not (tmp_path / "run" / "last.ckpt").exists()


def test_mnist_named_explicitly_never_falls_back_to_the_sample(tmp_path, no_network, capsys):
    assert main(mnist_args(tmp_path / "run", "--dataset", "mnist")) == 2
    err = one_error_line(capsys)
    assert "MINIDL_OFFLINE" in err and "--dataset mnist-sample" in err


def test_a_corrupt_system_fashion_mnist_copy_is_named(tmp_path, no_network, monkeypatch, capsys):
    from minidl.data import FashionMNIST
    system = tmp_path / "usr-share"
    idx_split(system, train=True, n=48, seed=1)
    idx_split(system, train=False, n=16, seed=2)
    labels = system / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:30])
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(system),))
    before = snapshot(system)
    assert main(mnist_args(tmp_path / "run", "--dataset", "fashion-mnist")) == 2
    assert f"{labels}: truncated or corrupt gzip file" in one_error_line(capsys)
    assert snapshot(system) == before


# Bytes that once came out of os.urandom here: a protocol-5 BYTEARRAY8 opcode with a length of ~7e18. Fed to
# the C unpickler from a file, CPython printed "SystemError: deallocated bytearray object has exported
# buffers" to stderr beside minidl's line (minidl.data.formats.read_pickle now checks the framing first).
BYTEARRAY8_GARBAGE = b"\x96" + bytes.fromhex("9e13ee7507dcbb5f") + bytes(100)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bytearray8"])
def test_a_bad_cifar_batch_is_one_line_naming_it(tmp_path, no_network, capsys, damage):
    data = tmp_path / "cifar"
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(data / "cifar-10-batches-py" / name, *cifar_arrays(8, seed=i))
    bad = data / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes({"truncated": bad.read_bytes()[:700], "garbage": os.urandom(3000),
                     "bytearray8": BYTEARRAY8_GARBAGE}[damage])
    before = snapshot(data)
    assert main([TINY, "--dataset", "cifar10", "--data-dir", str(data), "--input-size", "8", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert f"{bad}: not a CIFAR python batch" in one_error_line(capsys)
    assert snapshot(data) == before


# -- 2. a run folder is refused when it holds a run, and locked while one owns it -----------------------
def test_an_out_holding_a_run_is_refused_and_left_intact(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    capsys.readouterr()
    before = snapshot(out)
    assert main(tiny_args(out, "--lr", "0.5", epochs=1)) == 2
    err = one_error_line(capsys)
    assert f"--out {out} already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert snapshot(out) == before


def test_overwrite_replaces_only_the_run_s_own_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    (out / "notes.txt").write_text("mine")
    assert main(tiny_args(out, "--lr", "0.05", "--overwrite", epochs=1)) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "config.json").read_text())["lr"] == 0.05
    assert len(json.loads((out / "config.json").read_text())["history"]) == 1


def test_a_locked_run_folder_is_refused_and_left_intact(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    before = snapshot(out)
    lock = rundir.RunLock(out)  # another run owning the folder (flock: a second open file conflicts)
    lock.acquire()
    try:
        capsys.readouterr()
        assert main(tiny_args(out, "--resume", str(out), epochs=2)) == 2
        err = one_error_line(capsys)
        assert f"--out {out} is in use by another training run (PID {os.getpid()}" in err
        assert {k: v for k, v in snapshot(out).items() if k != rundir.LOCK_NAME} == before
    finally:
        lock.release()
    assert main(tiny_args(out, "--resume", str(out), epochs=2)) == 0
    assert not (out / rundir.LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / rundir.LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": "x"}))
    assert main(tiny_args(out, epochs=1)) == 0
    assert "which is gone" in capsys.readouterr().out and not (out / rundir.LOCK_NAME).exists()


# -- 3. resuming with more epochs stretches the schedule --------------------------------------------------
def test_resuming_with_more_epochs_recomputes_the_cosine_schedule(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(out, "--schedule", "cosine", "--lr", "0.05", epochs=2)) == 0
    weights = checkpoint_module.load_checkpoint(out / "last.ckpt")["model"]
    assert main(tiny_args(out, "--resume", str(out), epochs=4)) == 0  # --resume DIR: its last.ckpt
    rows = metrics(out)
    # epochs 1-2 ran the 2-epoch cosine (0.05, 0.025); epoch 3 runs the 4-epoch one at step 2:
    # 0.05 * (1 + cos(pi * 2 / 4)) / 2 = 0.025, not the old schedule's end (0)
    assert [float(row["lr"]) for row in rows] == pytest.approx([0.05, 0.025, 0.025,
                                                               0.05 * (1 + np.cos(3 * np.pi / 4)) / 2])
    after = checkpoint_module.load_checkpoint(out / "last.ckpt")["model"]
    assert not np.array_equal(after["fc.weight"].numpy(), weights["fc.weight"].numpy())


# -- 4. I/O failures: one line, a documented exit code, checked before the data where possible -----------
@pytest.fixture
def data_must_not_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the data was loaded before the output folder was checked")
    monkeypatch.setattr(run_module, "build_data", refuse)


def test_out_under_dev_null_is_refused_before_the_data(capsys, data_must_not_load):
    assert main(tiny_args("/dev/null/x", epochs=1)) == 2
    assert "--out /dev/null/x: cannot create the folder (Not a directory)" in one_error_line(capsys)


def test_out_an_existing_file_is_refused_and_kept(tmp_path, capsys, data_must_not_load):
    mine = tmp_path / "results.txt"
    mine.write_text("my results")
    assert main(tiny_args(mine, epochs=1)) == 2
    assert f"--out {mine} is a file, not a folder" in one_error_line(capsys)
    assert mine.read_text() == "my results"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused(tmp_path, capsys, data_must_not_load):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(tiny_args(out, epochs=1)) == 2
        assert f"--out {out} is not writable" in one_error_line(capsys)
    finally:
        out.chmod(0o755)


def test_a_read_only_out_simulated_is_refused(tmp_path, capsys, monkeypatch, data_must_not_load):
    """As root a chmod 555 folder is writable, so the refusal of the first write is simulated."""
    def read_only(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(rundir, "_open_lock_file", read_only)
    out = tmp_path / "ro"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(tiny_args(out, epochs=1)) == 2
    assert f"--out {out} is not writable: cannot create {out / rundir.LOCK_NAME} (Permission denied)" in \
        one_error_line(capsys)
    assert snapshot(out) == {"keep.txt": b"mine"}


def test_a_full_disk_while_saving_epoch_2_keeps_epoch_1_and_exits_4(tmp_path, capsys, monkeypatch):
    from minidl import serialization
    real_write = serialization._write_archive
    saves = []

    def fills_the_disk(f, header_bytes, arrays):
        saves.append(1)
        if len(saves) > 2:  # epoch 1 wrote last.ckpt and best.ckpt; epoch 2's last.ckpt hits a full disk
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(f, header_bytes, arrays)
    monkeypatch.setattr(serialization, "_write_archive", fills_the_disk)
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=3)) == 4
    err = one_error_line(capsys)
    assert f"cannot write {out / 'last.ckpt'}: disk full (No space left on device)" in err
    assert f"latest intact checkpoint: {out / 'last.ckpt'} (epoch 1)" in err
    assert checkpoint_module.load_checkpoint(out / "last.ckpt")["progress"]["epoch"] == 1
    assert len(metrics(out)) == 1
    assert sorted(p.name for p in out.iterdir()) == ["best.ckpt", "config.json", "curves.png", "last.ckpt",
                                                     "metrics.csv"]  # no temporary file, no lock left
    monkeypatch.setattr(serialization, "_write_archive", real_write)
    assert main(tiny_args(out, "--resume", str(out), epochs=3)) == 0  # room again: the run goes on
    assert len(metrics(out)) == 3


def _png_folder(root, size=12):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 3)):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")


def test_a_broken_png_stops_after_saving_and_resumes_once_fixed(tmp_path, capsys):
    pytest.importorskip("PIL")
    data = tmp_path / "pets"
    _png_folder(data)
    broken = data / "val" / "dog" / "1.png"
    good = broken.read_bytes()
    broken.write_bytes(good[: len(good) // 2])  # the header reads, the pixels are cut off
    before = snapshot(data)
    out = tmp_path / "run"
    argv = [TINY, "--dataset", "imagefolder", "--data-dir", str(data), "--input-size", "8", "--batch-size", "4",
            "--epochs", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert f"ImageFolder: cannot read {broken}" in err and "stopped after step 4" in err
    assert f"saved {out / 'interrupted.ckpt'}" in err and f"--resume {out}" in err
    assert snapshot(data) == before
    saved = checkpoint_module.load_checkpoint(out / "interrupted.ckpt")
    assert saved["progress"]["step"] == 4 and saved["progress"]["epoch"] == 0
    broken.write_bytes(good)  # the user fixes the file
    assert main(argv[:-3] + ["--resume", str(out), "--quiet"]) == 0
    assert len(metrics(out)) == 2 and not (out / "interrupted.ckpt").exists()


def test_a_png_with_a_garbage_header_is_refused_before_training(tmp_path, capsys):
    pytest.importorskip("PIL")
    data = tmp_path / "pets"
    _png_folder(data)
    garbage = data / "train" / "cat" / "3.png"
    garbage.write_bytes(b"not a png at all" * 10)
    before = snapshot(data)
    out = tmp_path / "run"
    assert main([TINY, "--dataset", "imagefolder", "--data-dir", str(data), "--input-size", "8", "--epochs", "1",
                 "--out", str(out), "--quiet"]) == 2
    assert f"ImageFolder: cannot read {garbage}: cannot identify image file" in one_error_line(capsys)
    assert snapshot(data) == before and not out.exists()  # the folder made for the run is gone again, empty


def test_eval_only_of_a_run_folder_takes_its_best_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    best = metrics(out)[0]["val_acc"]
    capsys.readouterr()
    assert main(tiny_args(tmp_path / "unused", "--eval-only", "--resume", str(out), epochs=1)) == 0
    said = capsys.readouterr().out
    assert f"accuracy {100 * float(best):.2f}%" in said and f"weights from {out / 'best.ckpt'}" in said
    assert not (tmp_path / "unused").exists()


# -- 5. the smaller defects ---------------------------------------------------------------------------------
def test_stale_temporaries_of_a_killed_run_are_cleaned_and_only_those(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    gone = dead_pid()
    stale = [out / f".curves.png.{gone}.tmp", out / f".last.ckpt.{gone}.tmp"]
    alive = out / f".metrics.csv.{os.getppid()}.tmp"  # a live process's file: left alone
    foreign = out / f".my-notes.txt.{gone}.tmp"       # not a name minidl writes: left alone
    for path in stale + [alive, foreign]:
        path.write_bytes(b"partial")
    capsys.readouterr()
    assert main(tiny_args(out, "--resume", str(out), epochs=2)) == 0
    assert "removed 2 temporary file(s)" in capsys.readouterr().out
    assert not any(p.exists() for p in stale) and alive.exists() and foreign.exists()


def test_config_keeps_the_history_of_every_session(tmp_path):
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    first = json.loads((out / "config.json").read_text())["command"]
    assert main(tiny_args(out, "--resume", str(out / "last.ckpt"), epochs=2)) == 0
    config = json.loads((out / "config.json").read_text())
    assert [entry["command"] for entry in config["history"]] == [first, config["command"]]
    assert [entry["epochs"] for entry in config["history"]] == [1, 2]
    assert config["history"][1]["resumed_from"] == str(out / "last.ckpt")


def test_the_sample_is_recorded_as_the_dataset_when_it_was_used(tmp_path, no_network):
    out = tmp_path / "run"
    assert main(["lenet1", "--limit", "32", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "mnist-sample" and config["dataset_requested"] == "mnist"
    saved = checkpoint_module.load_checkpoint(out / "last.ckpt")
    assert saved["config"]["dataset"] == "mnist-sample"


def test_interrupted_ckpt_is_removed_after_a_successful_resume_from_it(tmp_path):
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    shutil.copy(out / "last.ckpt", out / "interrupted.ckpt")
    os.utime(out / "interrupted.ckpt", ns=(time.time_ns() + 10**9,) * 2)  # the newer: --resume DIR takes it
    assert main(tiny_args(out, "--resume", str(out), epochs=2)) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["resumed_from"] == str(out / "interrupted.ckpt")
    assert not (out / "interrupted.ckpt").exists() and len(metrics(out)) == 2


def test_resume_of_a_folder_without_a_checkpoint_says_what_to_do(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(tiny_args(tmp_path / "run", "--resume", str(tmp_path / "run"))) == 2
    assert "has no last.ckpt or interrupted.ckpt" in one_error_line(capsys)


def test_the_first_step_is_timed_apart_from_the_rate(tmp_path, capsys, monkeypatch):
    from minidl.training import loop
    real_step = loop.Trainer.train_step
    calls = []

    def slow_first(self, images, labels):  # stands in for Numba compiling its kernels on the first call
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return real_step(self, images, labels)
    monkeypatch.setattr(loop.Trainer, "train_step", slow_first)
    out = tmp_path / "run"
    assert main(tiny_args(out, epochs=1)) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch 1/1"))
    assert "first step 0.5" in line
    row = metrics(out)[0]
    # 64 images in 4 steps: the rate counts the 48 images after the first step, over their time only
    assert float(row["images_per_s"]) > 48 / (float(row["seconds"]) - 0.5) * 0.99


# -- kill -9 at random moments, then resume ----------------------------------------------------------------
KILL_KINDS = ("step", "forward", "mid-write", "rename")  # the events tests/_train_child.py can die at


def _child(out, *extra, kill_at=0):
    """Start tests/_train_child.py: a 3-epoch tiny run that SIGKILLs itself at event ``kill_at``."""
    argv = [TINY, "--dataset", "synthetic", "--input-size", "8", "--limit", "160", "--batch-size", "16",
            "--epochs", "3", "--quiet", "--out", str(out), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(REPO / "tests" / "_train_child.py"), str(kill_at), *argv], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(child):
    _, err = child.communicate(timeout=180)
    return child.returncode, err


def _final_rows(out):
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in metrics(out)]


def test_kill_9_at_random_moments_always_resumes_to_the_same_result(tmp_path):
    """The child SIGKILLs itself at a seed-drawn event of each kind: a training step, a forward pass (in
    training or validation), half-way through writing a checkpoint, or just before a rename into place.
    Whatever it leaves must load, metrics.csv must never run ahead of the checkpoint, and resuming
    (``--resume DIR``, or ``--overwrite`` when no checkpoint was written yet) must end bit-identical to an
    uninterrupted run, with no temporary file or lock left behind."""
    reference = tmp_path / "reference"
    code, err = _finish(_child(reference))
    assert code == 0, err
    events = err.split("events ")[-1].strip().split(",")
    expected = checkpoint_module.load_checkpoint(reference / "last.ckpt")["model"]
    cases = []
    for seed, kind in enumerate(KILL_KINDS):
        at = [i + 1 for i, e in enumerate(events) if e == kind]
        cases.append((tmp_path / f"killed-{kind}", int(np.random.default_rng(seed).choice(at))))
    killed = [_child(out, kill_at=kill_at) for out, kill_at in cases]  # side by side: quicker
    assert [_finish(child)[0] for child in killed] == [-signal.SIGKILL] * len(cases)
    resumed = []
    for out, kill_at in cases:
        checkpoint = next((out / name for name in ("interrupted.ckpt", "last.ckpt") if (out / name).exists()), None)
        print(f"killed at event {kill_at} of {len(events)} ({events[kill_at - 1]}): left "
              f"{sorted(p.name for p in out.iterdir())}")
        if checkpoint is not None:  # what was left loads, and metrics.csv never runs ahead of it
            saved = checkpoint_module.load_checkpoint(checkpoint)
            rows = metrics(out) if (out / "metrics.csv").exists() else []
            assert len(rows) <= saved["progress"]["epoch"]
            for row, kept in zip(rows, saved["progress"]["history"]):
                assert float(row["val_acc"]) == pytest.approx(kept["val_acc"], rel=1e-5)
        resumed.append(_child(out, *(["--resume", str(out)] if checkpoint is not None else ["--overwrite"])))
    for (out, kill_at), child in zip(cases, resumed):
        code, err = _finish(child)
        assert code == 0, err
        final = checkpoint_module.load_checkpoint(out / "last.ckpt")
        assert final["progress"]["epoch"] == 3
        for name, value in expected.items():
            np.testing.assert_array_equal(final["model"][name].numpy(), value.numpy(), err_msg=f"{out.name}: {name}")
        assert _final_rows(out) == _final_rows(reference)
        best = checkpoint_module.load_checkpoint(out / "best.ckpt")["progress"]
        assert best["epoch"] == checkpoint_module.load_checkpoint(reference / "best.ckpt")["progress"]["epoch"]
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file, no lock
