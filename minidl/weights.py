"""Weights in and out of minidl in the formats other frameworks use, without PyTorch.

    state = minidl.load_weights("resnet50-0676ba61.pth")      # or model.safetensors, weights.npz
    model.load_state_dict(state)
    minidl.save_weights(model, "resnet50.safetensors")        # or "resnet50.npz"

``load_weights`` recognises the file by its content, not its name:

===================  ==========================================================================  =========
format               how it is read                                                              write
===================  ==========================================================================  =========
safetensors          the ``safetensors`` package's NumPy API (optional extra)                    yes
PyTorch zip .pth/.pt ``minidl.torch_checkpoint``: a restricted unpickler, no torch, no code run  no
NumPy .npz           ``np.load(allow_pickle=False)``                                             yes
minidl (``save``)    ``minidl.load``; a training checkpoint gives its ``"model"`` entry          (``save``)
===================  ==========================================================================  =========

Legacy (pre-1.6, non-zip) torch files are refused with the reason. A PyTorch checkpoint that wraps its
state dict (``{"state_dict": ...}`` or ``{"model": ...}``, as timm's and Lightning's training checkpoints
do) gives the wrapped dict. Names are kept as they are: minidl's models use PyTorch's names, so
torchvision's files load directly; ``minidl.models.get_model(name, weights=path)`` also maps the known
naming differences of other sources.

Writes are atomic (``minidl.serialization.atomic_write``), arrays are made C-contiguous first (safetensors
0.8.0 writes wrong values for strided arrays), and an existing file is only replaced with
``overwrite=True``. safetensors files get the metadata ``{"format": "pt"}``, so PyTorch's
``safetensors.torch.load_file`` and Hugging Face tools read them as PyTorch state dicts.
"""
import collections
import io
import struct
import zipfile
from pathlib import Path

import numpy as np

from minidl import backend
from minidl.serialization import SerializationError, atomic_write
from minidl.serialization import load as load_minidl
from minidl.tensor import Tensor
from minidl.torch_checkpoint import is_legacy_torch_file, read_torch_zip

FORMATS = ("safetensors", "pytorch", "npz", "minidl")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


class WeightsFormatError(ValueError):
    """Not a weights file minidl reads, or one whose content is not a flat name -> tensor mapping."""


def detect_format(path):
    """'safetensors', 'pytorch', 'npz', 'minidl', or 'pytorch-legacy' / None for what cannot be read."""
    with open(path, "rb") as f:
        head = f.read(16)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if "header.json" in names:
            return "minidl"
        if any(n.endswith("/data.pkl") or n.endswith("/constants.pkl") for n in names):
            return "pytorch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return None
    if is_legacy_torch_file(head):
        return "pytorch-legacy"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 1:
        return "safetensors"
    return None


def load_weights(path):
    """An OrderedDict name -> Tensor (on the CPU) from a safetensors, PyTorch zip, .npz or minidl file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"minidl.load_weights: {path} does not exist or is not a file")
    fmt = detect_format(path)
    try:
        if fmt == "safetensors":
            arrays = _load_safetensors(path)
        elif fmt == "pytorch":
            arrays = _unwrap(read_torch_zip(path), path)
        elif fmt == "npz":
            with np.load(path, allow_pickle=False) as npz:
                arrays = collections.OrderedDict((name, npz[name]) for name in npz.files)
        elif fmt == "minidl":
            arrays = _unwrap(load_minidl(path), path)
        elif fmt == "pytorch-legacy":
            raise WeightsFormatError(
                f"{path} is a legacy (PyTorch < 1.6, non-zip) torch.save file, which only PyTorch's own "
                f"unpickler reads; re-save it with a current torch.save (zip format) or as safetensors")
        else:
            raise WeightsFormatError(f"{path} is not a weights file minidl reads (safetensors, PyTorch zip "
                                     f".pth/.pt, NumPy .npz, minidl)")
    except (WeightsFormatError, SerializationError) as err:
        raise WeightsFormatError(f"minidl.load_weights: {_without_prefix(err)}") from None
    except ValueError as err:  # the checkpoint reader's UnsafeCheckpointError / CheckpointFormatError
        raise type(err)(f"minidl.load_weights: {path}: {err}") from None
    except (OSError, zipfile.BadZipFile, struct.error) as err:
        raise WeightsFormatError(f"minidl.load_weights: cannot read {path}: it is truncated or corrupt "
                                 f"({type(err).__name__}: {err})") from None
    return collections.OrderedDict((name, Tensor(a)) for name, a in arrays.items())


def save_weights(model_or_state_dict, path, overwrite=False):
    """Write a model's state dict (or a name -> tensor/array dict) as safetensors or .npz, by ``path``'s suffix."""
    path = Path(path)
    state = model_or_state_dict.state_dict() if hasattr(model_or_state_dict, "state_dict") else model_or_state_dict
    if not isinstance(state, dict):
        raise TypeError(f"minidl.save_weights: expected a model or a dict of tensors, got {type(state).__name__}")
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".npz"):
        raise ValueError(f"minidl.save_weights: {path}: the suffix must be .safetensors or .npz, got "
                         f"{suffix or 'none'} (minidl.save writes minidl's own format)")
    if path.exists() and not overwrite:
        raise FileExistsError(f"minidl.save_weights: {path} exists; pass overwrite=True to replace it")
    arrays = collections.OrderedDict()
    for name, value in state.items():
        array = value.data if isinstance(value, Tensor) else value
        if not isinstance(name, str) or not (isinstance(array, np.ndarray) or backend.is_gpu_array(array)):
            raise TypeError(f"minidl.save_weights: entry {name!r} is a {type(value).__name__}; expected str names "
                            f"and tensors or arrays")
        # a copy that owns its memory and is C-contiguous: safetensors 0.8.0 writes strided arrays wrong
        arrays[name] = np.array(backend.as_device_array(array, "cpu"), order="C", copy=True)
    if suffix == ".safetensors":
        data = _safetensors_numpy().save(dict(arrays), metadata={"format": "pt"})
        atomic_write(path, lambda f: f.write(data))
    else:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def _load_safetensors(path):
    module = _safetensors_numpy()
    try:
        return collections.OrderedDict(module.load_file(str(path)))
    except (TypeError, ValueError) as err:  # e.g. bfloat16, which NumPy lacks
        raise WeightsFormatError(f"{path}: safetensors cannot give it as NumPy arrays ({err})") from None
    except Exception as err:  # safetensors' own SafetensorError: a truncated or malformed file
        raise WeightsFormatError(f"{path} is not a valid safetensors file ({err})") from None


def _safetensors_numpy():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("minidl: reading and writing safetensors needs the safetensors package: "
                          "pip install safetensors (or pip install \"minidl[weights]\")") from None
    return safetensors.numpy


def _unwrap(obj, path):
    """A flat name -> array dict from what a checkpoint holds (a state dict, or one wrapped in a dict)."""
    if isinstance(obj, dict) and not _is_flat(obj):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict) and _is_flat(obj[key]):
                return obj[key]
    if isinstance(obj, dict) and _is_flat(obj):
        return obj
    found = f"a dict with keys {list(obj)[:8]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
    raise WeightsFormatError(f"{path} holds {found}, not a state dict (names -> tensors)")


def _is_flat(d):
    return bool(d) and all(isinstance(k, str) and (isinstance(v, (np.ndarray, Tensor)) or backend.is_gpu_array(v))
                           for k, v in d.items())


def _without_prefix(err):
    return str(err).removeprefix("minidl.load: ")

