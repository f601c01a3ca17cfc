"""Training recipes are declared with each model where it is registered (as timm registers its default
configs): every model carries one the command can use, nothing is looked up from a model's name or
description, and a model registered without one is refused in one line (exit 2)."""
import subprocess
import sys

import pytest

from minidl import Parameter, zeros
from minidl.data import list_datasets
from minidl.models import list_models, registry
from minidl.train import main
from minidl.training.recipes import (CIFAR_RESNET, MNIST_LENET, MissingRecipeError, Recipe, borrowed, make_optimizer,
                                     make_scheduler, recipe_for)
from tests.test_train import TinyNet, one_error_line


def test_every_model_declares_a_recipe_the_command_can_use():
    for name, entry in list_models(with_descriptions=True).items():
        assert entry.recipe is not None, f"{name} is registered without a recipe"
        recipe = recipe_for(name)
        assert isinstance(recipe, Recipe) and recipe.source, name
        assert recipe.dataset in list_datasets(), f"{name}: unknown dataset {recipe.dataset!r}"
        optimizer = make_optimizer(recipe.optimizer, [Parameter(zeros(2))], recipe.lr, recipe.momentum,
                                   recipe.weight_decay)
        make_scheduler(recipe.schedule, optimizer, recipe.epochs, recipe.schedule_options)


@pytest.fixture
def registered():
    """Registers (name, recipe) pairs for one test; removes them afterwards."""
    names = []

    def register(name, description, recipe):
        registry.register_model(description, "none", name=name, recipe=recipe)(TinyNet)
        names.append(name)
    yield register
    for name in names:
        registry._REGISTRY.pop(name)


def test_the_recipe_is_the_declared_one_whatever_the_name_says(registered):
    registered("resnet20_cifar_lookalike", "a CIFAR net, 32x32 input", MNIST_LENET)   # the old table said CIFAR
    registered("dict_declared", "", dict(dataset="synthetic", input_size=8, lr=0.5))
    assert recipe_for("resnet20_cifar_lookalike") is MNIST_LENET
    assert recipe_for("dict_declared") == Recipe("synthetic", 8, lr=0.5)


def test_a_model_without_a_recipe_is_refused_in_one_line(registered, capsys):
    registered("no_recipe_net", "a CIFAR net, 32x32 input", None)
    with pytest.raises(MissingRecipeError, match="no_recipe_net was registered without a training recipe"):
        recipe_for("no_recipe_net")
    assert main(["no_recipe_net", "--dataset", "synthetic", "--input-size", "8", "--limit", "16"]) == 2
    assert "register_model(..., recipe=...)" in one_error_line(capsys)
    assert main(["--help"]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines() if "no_recipe_net" in line]
    assert listed[0][:3] == ["no_recipe_net", "[no", "recipe]"]


def test_unknown_names_and_borrowed_recipes():
    with pytest.raises(ValueError, match="unknown model 'nosuchnet'"):
        recipe_for("nosuchnet")
    lent = borrowed(CIFAR_RESNET)
    assert lent.source == f"no recipe of its own; borrowed: {CIFAR_RESNET.source}"
    assert lent.as_dict() | {"source": ""} == CIFAR_RESNET.as_dict() | {"source": ""}


def test_layers_load_in_order():
    """minidl alone loads no models and no training code; the models load the recipes, not the training loop
    (a model file imports its recipe, and building a model should not load data, loop and checkpoint code)."""
    code = ("import sys, minidl; first = sorted(m for m in sys.modules if m.startswith(('minidl.models', "
            "'minidl.training'))); import minidl.models; "
            "print(first, sorted(m for m in sys.modules if m.startswith('minidl.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] ['minidl.training', 'minidl.training.recipes']"
