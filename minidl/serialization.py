"""``minidl.save`` and ``minidl.load``: weights and checkpoints in one safe, atomic file format.

    minidl.save(model.state_dict(), "lenet5.weights")
    model.load_state_dict(minidl.load("lenet5.weights"))

What can be saved: nested dicts (string or integer keys), lists and tuples of Tensors, NumPy (or CuPy)
arrays, Python numbers, strings, booleans and None: state dicts of models, optimizers, schedulers and
data loaders, and the checkpoints the training command writes (see ``minidl.training.checkpoint``).

The file is a ZIP archive (uncompressed, like ``np.savez``)::

    header.json        {"format": "minidl", "format_version": 1, "minidl_version": "0.1.0", "tree": ...}
    arrays/0.npy       every array, in NumPy's .npy format, written C-contiguous
    arrays/1.npy       ...

``tree`` is the saved object in JSON, where each array is replaced by ``{"type": "tensor"|"ndarray",
"array": i}`` and the values JSON cannot hold exactly (tuples, dicts with non-string keys, infinities,
NumPy scalars) are tagged the same way. Nothing is pickled, so loading a file runs no code from it, and
every array's CRC is checked as it is read: a truncated or corrupted file is an error, never wrong values.

Writes are atomic: the archive goes to a temporary file in the destination's directory, is flushed and
fsync'ed, then renamed over the destination (``os.replace``), so a crash mid-save leaves the previous
file as it was, loadable.
"""
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from minidl import backend
from minidl.tensor import Tensor

FORMAT = "minidl"
FORMAT_VERSION = 1
HEADER = "header.json"


class SerializationError(ValueError):
    """A file that is not a minidl file, is truncated or corrupt, or an object that cannot be saved."""


def save(obj, path):
    """Write ``obj`` (a state dict or a nested dict/list of tensors, arrays and numbers) to ``path``, atomically.

    >>> minidl.save({"model": model.state_dict(), "epoch": 3}, "run.ckpt")
    """
    from minidl import __version__
    path = Path(path)
    arrays = []
    tree = _encode(obj, arrays, "obj")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "minidl_version": __version__,
              "num_arrays": len(arrays), "tree": tree}
    header_bytes = json.dumps(header, allow_nan=False).encode("utf-8")
    atomic_write(path, lambda f: _write_archive(f, header_bytes, arrays))


def load(path, device=None):
    """Read what :func:`save` wrote. Tensors come back as Tensors (on the CPU, or on ``device``).

    Raises :class:`SerializationError` naming the file when it is not a minidl file, or is truncated
    or corrupt; FileNotFoundError when it does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"minidl.load: {path} does not exist")
    if path.is_dir():
        raise SerializationError(f"minidl.load: {path} is a directory, not a minidl file")
    try:
        with zipfile.ZipFile(path) as archive:
            header = _read_header(archive, path)
            arrays = [_read_array(archive, i, path) for i in range(header["num_arrays"])]
    except zipfile.BadZipFile as err:
        raise SerializationError(f"minidl.load: {path} is not a minidl file, or it is truncated or corrupt "
                                 f"({err})") from None
    except (OSError, EOFError, ValueError, KeyError) as err:
        if isinstance(err, SerializationError):
            raise
        raise SerializationError(f"minidl.load: cannot read {path}: it is truncated or corrupt "
                                 f"({type(err).__name__}: {err})") from None
    try:
        return _decode(header["tree"], arrays, device)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise SerializationError(f"minidl.load: {path} has a malformed header ({type(err).__name__}: {err})") from None


def file_info(path):
    """The header of a minidl file without its tree or arrays: format version and minidl version."""
    with zipfile.ZipFile(path) as archive:
        header = _read_header(archive, Path(path))
    return {k: v for k, v in header.items() if k != "tree"}


def atomic_write(path, write):
    """Call ``write(f)`` on a temporary file next to ``path``, fsync it, then rename it over ``path``.

    On any error (or KeyboardInterrupt) the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def process_alive(pid):
    """True when a process ``pid`` exists (POSIX: signal 0); a zombie still counts, its PID is not free.

    Elsewhere always True (Windows' ``os.kill`` would terminate the process): nothing is then cleaned up."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, ValueError, OverflowError):
        return False
    return True


def remove_stale_temporaries(directory, names, suffix=".tmp"):
    """Delete ``.NAME.PID[.more].SUFFIX`` files in ``directory`` left by a killed minidl process.

    Only files named the way :func:`atomic_write` (``suffix=".tmp"``) or a download (``".part"``) names its
    temporary copies of one of ``names``, and only when process PID is gone: a live writer's file is left
    alone, and nothing else is ever touched. Returns the paths removed.
    """
    directory, removed = Path(directory), []
    if not directory.is_dir():
        return removed
    for name in names:
        for tmp in directory.glob(f".{name}.*{suffix}"):
            middle = tmp.name[len(name) + 2:-len(suffix)].split(".")
            if not middle[0].isdigit() or not all(part.isdigit() for part in middle):
                continue
            pid = int(middle[0])
            if pid != os.getpid() and not process_alive(pid):
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except OSError:
                    pass
    return removed


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); not possible, and not needed, on Windows."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_archive(f, header_bytes, arrays):
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(HEADER, header_bytes)
        for i, array in enumerate(arrays):
            with archive.open(f"arrays/{i}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def _read_header(archive, path):
    try:
        raw = archive.read(HEADER)
    except KeyError:
        raise SerializationError(f"minidl.load: {path} is a ZIP archive but not a minidl file "
                                 f"(it has no {HEADER})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SerializationError(f"minidl.load: {path}: {HEADER} is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SerializationError(f"minidl.load: {path} is not a minidl file ({HEADER} has no format 'minidl')")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SerializationError(f"minidl.load: {path} has format version {version!r}; this minidl reads up to "
                                 f"{FORMAT_VERSION} (upgrade minidl)")
    if not isinstance(header.get("num_arrays"), int) or "tree" not in header:
        raise SerializationError(f"minidl.load: {path}: {HEADER} lacks num_arrays or tree")
    return header


def _read_array(archive, index, path):
    name = f"arrays/{index}.npy"
    try:
        with archive.open(name) as entry:
            array = np.lib.format.read_array(entry, allow_pickle=False)
    except KeyError:
        raise SerializationError(f"minidl.load: {path} is missing {name} (truncated or corrupt)") from None
    return array


def _encode(obj, arrays, where):
    """``obj`` as JSON-able data, its arrays appended to ``arrays``. ``where`` names it in errors."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"type": "float", "value": repr(obj)}  # 'inf', '-inf', 'nan'
    if isinstance(obj, Tensor):
        return {"type": "tensor", "array": _add_array(obj.data, arrays, where)}
    if isinstance(obj, np.ndarray) or backend.is_gpu_array(obj):
        return {"type": "ndarray", "array": _add_array(obj, arrays, where)}
    if isinstance(obj, np.generic):
        return {"type": "scalar", "array": _add_array(np.asarray(obj), arrays, where)}
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise SerializationError(f"minidl.save: {where} has a key {key!r} of type {type(key).__name__}; "
                                         f"keys must be str or int")
            items.append([key, _encode(value, arrays, f"{where}[{key!r}]")])
        return {"type": "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        items = [_encode(value, arrays, f"{where}[{i}]") for i, value in enumerate(obj)]
        return items if isinstance(obj, list) else {"type": "tuple", "items": items}
    hint = " (save its state_dict() instead)" if hasattr(obj, "state_dict") else ""
    raise SerializationError(f"minidl.save: cannot save {where} of type {type(obj).__name__}{hint}; "
                             f"only dicts, lists, tuples, Tensors, arrays, numbers, strings and None")


def _add_array(array, arrays, where):
    array = backend.as_device_array(array, "cpu")
    if array.dtype.hasobject or array.dtype.kind not in "biufc":
        raise SerializationError(f"minidl.save: {where} is an array of dtype {array.dtype}; only numeric arrays "
                                 f"can be saved")
    if not array.flags.c_contiguous:  # TESTING.md: never hand a writer a strided array
        array = np.ascontiguousarray(array)  # (not for 0-d ones: ascontiguousarray makes them 1-d)
    arrays.append(array)
    return len(arrays) - 1


def _decode(node, arrays, device):
    if not isinstance(node, (dict, list)):
        return node
    if isinstance(node, list):
        return [_decode(value, arrays, device) for value in node]
    kind = node["type"]
    if kind == "dict":
        return {key: _decode(value, arrays, device) for key, value in node["items"]}
    if kind == "tuple":
        return tuple(_decode(value, arrays, device) for value in node["items"])
    if kind == "float":
        return float(node["value"])
    if kind == "tensor":
        array = arrays[node["array"]]
        return Tensor(array if device is None else backend.as_device_array(array, device))
    if kind == "ndarray":
        return arrays[node["array"]]
    if kind == "scalar":
        return arrays[node["array"]][()]
    raise ValueError(f"unknown node type {kind!r}")
