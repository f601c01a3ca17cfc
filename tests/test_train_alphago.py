"""The training command on AlphaGo's policy network: its recipe is declared with the model, the synthetic set
gives 48 x 19 x 19 boards and move labels 0..360, and a one-epoch smoke run on a few boards completes."""
import json
import re

import numpy as np

from minidl.models import list_models
from minidl.models.alphago import POLICY_RECIPE
from minidl.train import main
from minidl.training import build_data, load_checkpoint, recipe_for
from tests.test_train import one_error_line


def test_the_recipe_is_the_one_registered_with_the_model(capsys):
    recipe = recipe_for("alphago_policy")
    assert list_models(with_descriptions=True)["alphago_policy"].recipe is POLICY_RECIPE
    assert (recipe.dataset, recipe.input_size, recipe.channels, recipe.num_classes) == ("synthetic", 19, 48, 361)
    assert (recipe.optimizer, recipe.lr, recipe.momentum, recipe.batch_size) == ("sgd", 0.003, 0.0, 16)
    assert recipe_for("resnet20").num_classes is None                   # the others keep their table entries
    assert main(["--help"]) == 0
    assert re.search(r"alphago_policy +\[synthetic, 19px\] AlphaGo's SL policy network", capsys.readouterr().out)


def test_synthetic_boards_cover_every_move():
    data = build_data("synthetic", channels=48, input_size=19, batch_size=64, seed=0, limit=400, num_classes=361)
    assert data.num_classes == 361 and data.image_shape == (48, 19, 19)
    labels = np.concatenate([y.numpy() for _, y in data.train_loader])
    assert labels.min() == 0 and labels.max() == 360 and len(np.unique(labels)) == 361
    x, y = next(iter(data.val_loader))
    assert x.shape == (64, 48, 19, 19) and np.isfinite(x.numpy()).all()


def test_one_epoch_on_synthetic_boards(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["alphago_policy", "--dataset", "synthetic", "--limit", "4", "--epochs", "1", "--batch-size", "2",
                 "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "alphago_policy (3,882,793 parameters)" in stdout and "images of 48x19x19, 361 classes" in stdout
    assert "epoch 1/1" in stdout
    config = json.loads((out / "config.json").read_text())
    assert (config["input_size"], config["channels"], config["num_classes"], config["lr"]) == (19, 48, 361, 0.003)
    checkpoint = load_checkpoint(out / "last.ckpt")
    assert checkpoint["model"]["position_bias.bias"].shape == (1, 19, 19)


def test_the_value_network_is_refused_in_one_line(tmp_path, capsys):
    assert main(["alphago_value", "--dataset", "synthetic", "--limit", "2", "--out", str(tmp_path / "v"),
                 "--quiet"]) == 2
    err = one_error_line(capsys)
    assert "cannot build alphago_value" in err and "regression" in err
