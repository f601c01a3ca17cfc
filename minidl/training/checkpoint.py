"""Training checkpoints: one ``minidl.save`` file with everything needed to resume a run exactly.

A checkpoint is a dict::

    format            "minidl-checkpoint"          format_version   1
    minidl_version    "0.1.0"                      model_name       "lenet5"
    config            the run's settings (the training command's config.json)
    model             model.state_dict(): parameters and buffers
    optimizer         optimizer.state_dict(): momentum buffers / Adam moments, lrs
    scheduler         the lr schedule's state_dict(), or None
    progress          epoch (completed), batches_done (of the epoch under way), step (global),
                      epoch_meter (running train sums of the epoch under way), best {metric, value, epoch},
                      history (one metrics row per completed epoch)
    rng               minidl: minidl's global generator; train_loader: the DataLoader's state_dict()
                      (epoch, position in it, shuffling generator)

Nothing non-finite is ever written: :func:`save_checkpoint` checks every parameter, buffer and
optimizer array first and raises :class:`NonFiniteError` naming the first bad one.
"""
import numpy as np

from minidl import backend
from minidl.serialization import SerializationError, load, save
from minidl.tensor import Tensor

FORMAT = "minidl-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("model_name", "config", "model", "optimizer", "scheduler", "progress", "rng")


class CheckpointError(ValueError):
    """A file that is not a training checkpoint, or one that does not fit the model it is loaded into."""


class NonFiniteError(FloatingPointError):
    """A NaN or infinity in the training state: it must not reach a checkpoint."""


def make_checkpoint(model_name, config, model, optimizer, scheduler, progress, rng):
    from minidl import __version__
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "minidl_version": __version__,
            "model_name": model_name, "config": config, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": None if scheduler is None else scheduler.state_dict(),
            "progress": progress, "rng": rng}


def save_checkpoint(checkpoint, path):
    """Check ``checkpoint`` is finite, then write it atomically to ``path``."""
    check_finite(checkpoint["model"], "model")
    check_finite(checkpoint["optimizer"]["state"], "optimizer state")
    save(checkpoint, path)


def load_checkpoint(path):
    """Read a checkpoint; :class:`CheckpointError` (naming the file) for anything that is not one."""
    try:
        checkpoint = load(path)
    except SerializationError as err:
        raise CheckpointError(str(err)) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        what = "model weights (a state dict)" if _looks_like_state_dict(checkpoint) else "not a training checkpoint"
        raise CheckpointError(f"{path} is a minidl file but {what}: a checkpoint is written by the training "
                              f"command (last.ckpt, best.ckpt)")
    if checkpoint.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {checkpoint['format_version']} is newer than this "
                              f"minidl reads ({FORMAT_VERSION}); upgrade minidl")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)} (truncated or written by hand?)")
    return checkpoint


def load_model_weights(model, state_dict, path, model_name=None, saved_name=None):
    """``model.load_state_dict`` with an error that names the file and both architectures."""
    if saved_name is not None and model_name is not None and saved_name != model_name:
        raise CheckpointError(f"{path} holds a {saved_name} model, not {model_name}")
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, ValueError) as err:
        saved = f" (saved from {saved_name})" if saved_name else ""
        raise CheckpointError(f"{path}{saved} does not fit {model_name or type(model).__name__}: {err}") from None


def check_finite(tree, where):
    """Raise :class:`NonFiniteError` naming the first array in ``tree`` holding a NaN or infinity."""
    for name, array in _arrays(tree, where):
        if array.dtype.kind in "fc" and not bool(backend.get_array_module(array).isfinite(array).all()):
            raise NonFiniteError(f"{name} has non-finite values")


def _arrays(tree, where):
    if isinstance(tree, Tensor):
        yield where, tree.data
    elif isinstance(tree, np.ndarray) or backend.is_gpu_array(tree):
        yield where, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _arrays(value, f"{where} {key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _arrays(value, f"{where} {i}")


def _looks_like_state_dict(obj):
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, (Tensor, np.ndarray)) for v in obj.values())
