"""What the training command is built from: recipes, data, the loop, checkpoints and metrics.

    from minidl.training import Trainer, build_data, recipe_for
    data = build_data("mnist", channels=1, input_size=32, batch_size=64, seed=0)
    trainer = Trainer(model, optimizer, None, data.train_loader, data.val_loader)
    trainer.fit(epochs=5)

The command itself is ``minidl.train`` (``python -m minidl.train MODEL``).

The names below are loaded when first used: every model file imports ``minidl.training.recipes`` to declare
its recipe, and building a model should not load the data, loop and checkpoint code (and tqdm, urllib, ...).
"""
import importlib

_HOMES = {
    "checkpoint": ("CheckpointError", "NonFiniteError", "load_checkpoint", "make_checkpoint", "save_checkpoint"),
    "data": ("DataError", "build_data"),
    "loop": ("NonFiniteLossError", "Trainer"),
    "metrics": ("EpochMeter", "plot_curves", "write_metrics_csv"),
    "recipes": ("Recipe", "make_optimizer", "make_scheduler", "recipe_for"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_HOME_OF)


def __getattr__(name):
    if name not in _HOME_OF:
        raise AttributeError(f"module 'minidl.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"minidl.training.{_HOME_OF[name]}"), name)
