"""What the training command is built from: recipes, data, the loop, checkpoints and metrics.

    from minidl.training import Trainer, build_data, recipe_for
    data = build_data("mnist", channels=1, input_size=32, batch_size=64, seed=0)
    trainer = Trainer(model, optimizer, None, data.train_loader, data.val_loader)
    trainer.fit(epochs=5)

The command itself is ``minidl.train`` (``python -m minidl.train MODEL``).
"""
from minidl.training.checkpoint import (CheckpointError, NonFiniteError, load_checkpoint, make_checkpoint,
                                        save_checkpoint)
from minidl.training.data import DataError, build_data
from minidl.training.loop import NonFiniteLossError, Trainer
from minidl.training.metrics import EpochMeter, plot_curves, write_metrics_csv
from minidl.training.recipes import Recipe, make_optimizer, make_scheduler, recipe_for

__all__ = [
    "CheckpointError", "DataError", "EpochMeter", "NonFiniteError", "NonFiniteLossError", "Recipe", "Trainer",
    "build_data", "load_checkpoint", "make_checkpoint", "make_optimizer", "make_scheduler", "plot_curves",
    "recipe_for", "save_checkpoint", "write_metrics_csv",
]
