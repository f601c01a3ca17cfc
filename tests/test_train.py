"""The training command: usage errors, a small run end to end, exact resume, Ctrl-C, NaN stops, bad checkpoints."""
import csv
import json
import os
import signal

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn, optim
from minidl.data import ArrayDataset, DataLoader
from minidl.models import registry
from minidl.serialization import load, save
from minidl.train import main
from minidl.training import checkpoint as checkpoint_module
from minidl.training import loop
from minidl.training.recipes import CIFAR_RESNET

TINY = "tiny_test_net"


class TinyNet(nn.Module):
    """Conv, batch norm, dropout and a linear layer on 3 x 8 x 8 images: every kind of state a run must resume."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 6 * 6, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.features(x).flatten(1)))


@pytest.fixture(scope="module", autouse=True)
def tiny_model():
    """Registered for this module only, with the CIFAR recipe (SGD, momentum, step schedule)."""
    registry.register_model("tiny test net for CIFAR-like images", "none", name=TINY, recipe=CIFAR_RESNET)(TinyNet)
    yield
    registry._REGISTRY.pop(TINY)


def tiny_args(out, *extra, epochs=2):
    return [TINY, "--dataset", "synthetic", "--input-size", "8", "--limit", "64", "--batch-size", "16",
            "--epochs", str(epochs), "--out", str(out), "--quiet", *extra]


def one_error_line(capsys):
    """The one line on stderr (the one-time 'compiling CPU kernels' notice of a cold Numba cache aside)."""
    from minidl.kernels.compile_notice import MESSAGE
    lines = [line for line in capsys.readouterr().err.strip().splitlines()
             if not line.startswith(MESSAGE.split("{")[0])]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


# -- usage errors: exit 2 and one line naming the problem and the choices --------------------------------
@pytest.mark.parametrize("argv, expected", [
    (["nosuchnet"], ["unknown model 'nosuchnet'", "lenet5", "resnet20"]),
    (["lenet5x"], ["did you mean lenet5"]),
    (["lenet5", "--dataset", "imagenet21k"], ["unknown dataset 'imagenet21k'", "mnist", "synthetic"]),
    (["lenet5", "--lr", "0"], ["--lr must be > 0"]),
    (["lenet5", "--lr", "-0.1"], ["--lr must be > 0"]),
    (["lenet5", "--batch-size", "0"], ["--batch-size must be at least 1"]),
    (["lenet5", "--epochs", "0"], ["--epochs must be at least 1"]),
    (["lenet5", "--optimizer", "rmsprop"], ["invalid choice", "sgd", "adamw"]),
    (["lenet5", "--data-dir", "/no/such/dir"], ["--data-dir /no/such/dir does not exist"]),
    (["alexnet", "--limit", "8"], ["imagefolder needs --data-dir", "--dataset synthetic"]),
    (["lenet5", "--eval-only"], ["--eval-only needs --resume"]),
    (["lenet5", "--resume", "/no/such.ckpt"], ["/no/such.ckpt does not exist"]),
    (["lenet5", "--input-size", "64", "--dataset", "synthetic", "--limit", "4"], ["does not take 1x64x64 images"]),
])
def test_usage_errors_exit_2_with_one_clear_line(capsys, argv, expected):
    assert main(argv) == 2
    err = one_error_line(capsys)
    for text in expected:
        assert text in err


def test_gpu_without_cupy_is_a_usage_error(capsys):
    if minidl.backend.gpu_available():
        pytest.skip("a GPU is available here")
    assert main(["lenet5", "--device", "gpu"]) == 2
    assert "--device gpu" in one_error_line(capsys)


def test_help_lists_models_with_descriptions_and_datasets(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    description = registry.list_models(with_descriptions=True)["lenet5"].description
    assert f"[mnist, 32px] {description}" in out
    for dataset in ("mnist", "fashion-mnist", "cifar10", "imagefolder", "synthetic"):
        assert dataset in out


# -- a run end to end ------------------------------------------------------------------------------------
def test_small_run_writes_metrics_config_checkpoints_and_curves(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["lenet5_modern", "--dataset", "synthetic", "--limit", "64", "--epochs", "1", "--batch-size", "16",
                 "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "epoch 1/1" in stdout and "val loss" in stdout and "img/s" in stdout
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                             "images_per_s"]
    assert len(rows) == 1 and rows[0]["epoch"] == "1" and float(rows[0]["images_per_s"]) > 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "lenet5_modern" and config["input_size"] == 32 and config["channels"] == 1
    assert config["train_size"] == 64 and config["num_classes"] == 10
    for name in ("last.ckpt", "best.ckpt"):
        ckpt = checkpoint_module.load_checkpoint(out / name)
        assert ckpt["model_name"] == "lenet5_modern" and ckpt["progress"]["epoch"] == 1
        assert ckpt["minidl_version"] == minidl.__version__ and "rng" in ckpt and "optimizer" in ckpt
    if pytest.importorskip("matplotlib"):
        assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # evaluating the saved weights gives the validation accuracy the run reported
    assert main(["lenet5_modern", "--eval-only", "--resume", str(out / "last.ckpt"), "--quiet"]) == 0
    assert f"accuracy {100 * float(rows[0]['val_acc']):.2f}%" in capsys.readouterr().out


def test_googlenet_style_aux_outputs_add_weighted_losses():
    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return (self.main(x), self.aux(x)) if self.training else self.main(x)

    model = WithAux()
    x, y = minidl.randn(8, 4), minidl.tensor(np.arange(8) % 3)
    optimizer = optim.SGD(model.parameters(), lr=0.0)
    loader = DataLoader(ArrayDataset(np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, int)),
                                    batch_size=2, seed=0)
    trainer = loop.Trainer(model, optimizer, None, loader, loader, progress=False)
    loss, _ = trainer.train_step(x, y)
    expected = F.cross_entropy(model.main(x), y).item() + 0.3 * F.cross_entropy(model.aux(x), y).item()
    assert loss == pytest.approx(expected, rel=1e-6)


# -- exact resume ----------------------------------------------------------------------------------------
def _final_state(path):
    return checkpoint_module.load_checkpoint(path)


def _assert_same_training_state(a, b):
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].data, b["model"][key].data, err_msg=key)
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            np.testing.assert_array_equal(np.asarray(getattr(value, "data", value)),
                                          np.asarray(getattr(b["optimizer"]["state"][index][name], "data",
                                                             b["optimizer"]["state"][index][name])))
    assert a["rng"] == b["rng"]
    assert a["scheduler"] == b["scheduler"]
    strip = ("seconds", "images_per_s")
    assert [{k: v for k, v in row.items() if k not in strip} for row in a["progress"]["history"]] == \
           [{k: v for k, v in row.items() if k not in strip} for row in b["progress"]["history"]]


def test_resume_after_an_epoch_gives_identical_weights(tmp_path):
    assert main(tiny_args(tmp_path / "straight")) == 0
    assert main(tiny_args(tmp_path / "split", epochs=1)) == 0
    assert main(tiny_args(tmp_path / "split", "--resume", str(tmp_path / "split" / "last.ckpt"))) == 0
    straight, split = _final_state(tmp_path / "straight" / "last.ckpt"), _final_state(tmp_path / "split" / "last.ckpt")
    _assert_same_training_state(straight, split)
    assert straight["progress"]["step"] == split["progress"]["step"] == 8
    assert straight["scheduler"]["last_epoch"] == 2  # the step schedule ran, and was restored


def _interrupt_at_step(monkeypatch, stop_step, how):
    real_step = loop.Trainer.train_step

    def step(self, images, labels):
        if how == "mid-step" and self.step + 1 == stop_step:
            raise KeyboardInterrupt  # as a second Ctrl-C would: in the middle of the step
        result = real_step(self, images, labels)
        if how == "signal" and self.step + 1 == stop_step:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, arriving during the step
        return result
    monkeypatch.setattr(loop.Trainer, "train_step", step)


def test_ctrl_c_saves_the_last_completed_step_and_resuming_from_it_is_exact(tmp_path, monkeypatch, capsys):
    assert main(tiny_args(tmp_path / "straight")) == 0
    run = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        _interrupt_at_step(patch, stop_step=6, how="signal")  # epoch 2, batch 2 of 4
        assert main(tiny_args(run)) == 130
    err = capsys.readouterr().err
    assert "interrupted after step 6 (epoch 2, batch 2)" in err and "interrupted.ckpt" in err
    ckpt = checkpoint_module.load_checkpoint(run / "interrupted.ckpt")
    assert ckpt["progress"]["step"] == 6 and ckpt["progress"]["batches_done"] == 2
    assert checkpoint_module.load_checkpoint(run / "last.ckpt")["progress"]["epoch"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler was put back

    assert main(tiny_args(run, "--resume", str(run / "interrupted.ckpt"))) == 0
    _assert_same_training_state(_final_state(tmp_path / "straight" / "last.ckpt"), _final_state(run / "last.ckpt"))


def test_ctrl_c_during_validation_resumes_at_the_validation(tmp_path, monkeypatch, capsys):
    assert main(tiny_args(tmp_path / "straight")) == 0
    run, real_evaluate = tmp_path / "interrupted", loop.Trainer.evaluate

    def evaluate(self, loader, stop=None):
        if self.epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return real_evaluate(self, loader, stop)
    with monkeypatch.context() as patch:
        patch.setattr(loop.Trainer, "evaluate", evaluate)
        assert main(tiny_args(run)) == 130
    assert "interrupted after step 4 (epoch 1, batch 4)" in capsys.readouterr().err
    assert not (run / "last.ckpt").exists()
    assert main(tiny_args(run, "--resume", str(run / "interrupted.ckpt"))) == 0
    _assert_same_training_state(_final_state(tmp_path / "straight" / "last.ckpt"), _final_state(run / "last.ckpt"))


def test_an_interrupt_in_the_middle_of_a_step_saves_nothing(tmp_path, monkeypatch, capsys):
    _interrupt_at_step(monkeypatch, stop_step=2, how="mid-step")
    assert main(tiny_args(tmp_path)) == 130
    assert "middle of a step: no checkpoint written" in capsys.readouterr().err
    assert not (tmp_path / "interrupted.ckpt").exists()


# -- non-finite values -----------------------------------------------------------------------------------
def test_a_nan_loss_stops_at_its_step_and_no_checkpoint_holds_it(tmp_path, monkeypatch, capsys):
    real = F.cross_entropy
    calls = []

    def nan_at_step_6(logits, target, **kwargs):
        loss = real(logits, target, **kwargs)
        if minidl.is_grad_enabled():
            calls.append(1)
            if len(calls) == 6:
                return loss * float("nan")
        return loss
    monkeypatch.setattr(loop.F, "cross_entropy", nan_at_step_6)
    assert main(tiny_args(tmp_path)) == 3
    err = capsys.readouterr().err
    assert "loss became nan at step 6 (epoch 2, batch 2 of 4)" in err
    assert "latest checkpoint" in err and "last.ckpt (epoch 1)" in err
    last = checkpoint_module.load_checkpoint(tmp_path / "last.ckpt")
    assert last["progress"]["step"] == 4
    checkpoint_module.check_finite(last["model"], "model")


def test_a_diverging_run_stops_with_exit_3(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "--lr", "1e30", "--momentum", "0.9")) == 3
    err = one_error_line(capsys)
    assert ("loss became" in err or "non-finite" in err) and "--lr" in err
    for path in tmp_path.glob("*.ckpt"):
        checkpoint_module.check_finite(checkpoint_module.load_checkpoint(path)["model"], "model")


def test_save_checkpoint_refuses_non_finite_weights(tmp_path):
    model = TinyNet()
    model.fc.weight.data[0, 0] = np.inf
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    ckpt = checkpoint_module.make_checkpoint(TINY, {}, model, optimizer, None, {}, {})
    with pytest.raises(checkpoint_module.NonFiniteError, match="fc.weight"):
        checkpoint_module.save_checkpoint(ckpt, tmp_path / "x.ckpt")
    assert not list(tmp_path.iterdir())


# -- checkpoints that do not fit -------------------------------------------------------------------------
@pytest.fixture
def tiny_checkpoint(tmp_path):
    assert main(tiny_args(tmp_path / "run", epochs=1)) == 0
    return tmp_path / "run" / "last.ckpt"


def test_resuming_a_checkpoint_of_another_architecture_is_a_clear_error(tiny_checkpoint, capsys):
    assert main(["lenet5", "--resume", str(tiny_checkpoint)]) == 2
    err = one_error_line(capsys)
    assert f"{tiny_checkpoint} is a checkpoint of {TINY}, not lenet5" in err


def test_weights_of_another_architecture_do_not_load(tiny_checkpoint, tmp_path, capsys):
    weights = tmp_path / "tiny.weights"
    save(load(tiny_checkpoint)["model"], weights)
    assert main(["lenet5_modern", "--eval-only", "--resume", str(weights), "--dataset", "synthetic",
                 "--limit", "8"]) == 2
    err = one_error_line(capsys)
    assert str(weights) in err and "does not fit lenet5_modern" in err


def test_truncated_and_garbage_checkpoints_are_clear_errors(tiny_checkpoint, tmp_path, capsys):
    truncated, garbage = tmp_path / "truncated.ckpt", tmp_path / "garbage.ckpt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:-200])
    garbage.write_bytes(b"\x00garbage" * 100)
    for path in (truncated, garbage):
        assert main([TINY, "--resume", str(path)]) == 2
        err = one_error_line(capsys)
        assert str(path) in err and ("truncated" in err or "not a minidl file" in err)
    weights = tmp_path / "weights-only.minidl"
    save(load(tiny_checkpoint)["model"], weights)
    assert main([TINY, "--resume", str(weights)]) == 2
    assert "model weights (a state dict)" in one_error_line(capsys)


def test_a_resumed_run_keeps_its_settings(tiny_checkpoint, capsys):
    assert main(tiny_args(tiny_checkpoint.parent, "--resume", str(tiny_checkpoint), "--lr", "0.5")) == 2
    assert "--lr 0.5 differs from the checkpoint's 0.1" in one_error_line(capsys)


# -- MNIST offline ----------------------------------------------------------------------------------------
def test_mnist_offline_trains_on_the_sample_and_says_so_once(tmp_path, monkeypatch, caplog):
    from minidl.data import mnist
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "data"))  # no local copy
    monkeypatch.setattr(mnist, "_announced", set())
    assert main(["lenet1", "--limit", "64", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    said = [r.getMessage() for r in caplog.records if "mnist sample" in r.getMessage()]
    assert len(said) == 1 and "MINIDL_OFFLINE" in said[0]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_source"].startswith("mnist sample") and config["input_size"] == 28


def test_a_silent_network_does_not_hold_up_mnist(tmp_path, monkeypatch, capsys):
    """A network that drops packets would make each mirror wait out its timeout: a 3 s probe goes first."""
    import socket

    from minidl.data import download
    from minidl.training import data as training_data

    def silent(*args, **kwargs):
        raise socket.timeout("timed out")

    def no_download(*args, **kwargs):
        raise AssertionError("no download should be tried after the probe timed out")
    monkeypatch.delenv("MINIDL_OFFLINE", raising=False)
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    monkeypatch.setattr(training_data.socket, "create_connection", silent)
    monkeypatch.setattr(download, "urlopen", no_download)
    data = training_data.build_data("mnist", channels=1, input_size=32, batch_size=16, seed=0, limit=32)
    assert data.source.startswith("mnist sample") and "no answer" in data.source
    assert data.train_size == 32 and data.image_shape == (1, 32, 32)
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "full MNIST unreachable" in said[0]
