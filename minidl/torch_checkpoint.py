"""Read PyTorch ``.pth`` / ``.pt`` files (``torch.save``'s zip format) without PyTorch, and without running
any code from the file.

A zip checkpoint holds ``<name>/data.pkl`` (a pickle of the saved object) and ``<name>/data/<key>`` (each
tensor storage's raw bytes, little-endian unless ``<name>/byteorder`` says otherwise). In the pickle, each
storage is a *persistent id* ``("storage", torch.FloatStorage, key, location, numel)`` and each tensor a
call ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``.

Unpickling runs whatever callables the file names, so a pickle is code. This reader's unpickler resolves
only these globals, each to a function of its own (never to anything imported from the file's names):

    collections.OrderedDict                          -> a plain OrderedDict
    torch._utils._rebuild_tensor_v2, _rebuild_tensor -> a NumPy array viewed from the storage, copied
    torch._utils._rebuild_parameter(_with_state)     -> the array
    torch.<Dtype>Storage (Float, Double, Half, BFloat16, Long, Int, Short, Char, Byte, Bool)

Any other global (``os.system``, ``builtins.eval``, a model class, a NumPy reconstructor) is refused by
name before anything is called. The BUILD opcode (``__setstate__``) is accepted only on an OrderedDict
(torch.save stores a state dict's ``_metadata`` that way, and it is dropped). Legacy (pre-1.6,
non-zip) torch files and TorchScript archives are refused with the reason. bfloat16 tensors become float32
(exactly: NumPy has no bfloat16).
"""
import _compat_pickle
import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

# torch.save's first pickle in the legacy format is this magic number (protocol 2, LONG1 of 10 bytes)
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """The pickle names a global this reader does not allow; nothing from it was run."""


class CheckpointFormatError(ValueError):
    """Not a PyTorch zip checkpoint, or a malformed one."""


class _StorageType:
    """Stands for ``torch.<Dtype>Storage`` in a persistent id."""

    def __init__(self, name):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _view(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _view(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _view(storage, offset, size, stride):
    """A copy of the strided view of ``storage`` (1-D array), bounds-checked before any memory is read."""
    if not isinstance(storage, np.ndarray):
        raise CheckpointFormatError(f"a tensor is rebuilt from a {type(storage).__name__}, not a storage")
    size, stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride) or offset < 0:
        raise CheckpointFormatError(f"bad tensor geometry: size {size}, stride {stride}, offset {offset}")
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    last = int(offset) + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise CheckpointFormatError(f"a tensor of size {size}, stride {stride} at offset {offset} reads past its "
                                    f"storage of {storage.size} elements")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(s * item for s in stride), writeable=False)
    return np.array(view)  # a contiguous copy: never hand out a strided view (TESTING.md)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
_ALLOWED.update({("torch", name): _StorageType(name) for name in _STORAGE_DTYPES})


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with find_class, persistent_load and BUILD restricted (module docstring).

    The pure-Python one, not the C one: its opcode table can be changed, so BUILD cannot reach any
    ``__setstate__`` but OrderedDict's attribute update.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, read_storage):
        super().__init__(file)
        self._read_storage = read_storage
        self._storages = {}

    def find_class(self, module, name):
        if self.proto < 3 and isinstance(module, str):  # Python 2 names, as the standard unpickler maps them
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"refuses the global {module}.{name}: only tensor storages, tensor rebuilds and OrderedDict are "
                f"allowed (a pickle can run any function it names; this file was not run)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise CheckpointFormatError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, storage_type.dtype, int(numel))
        return self._storages[key]

    def load_build(self):
        self.stack.pop()  # the state: torch.save's per-module _metadata, not needed by minidl
        inst = self.stack[-1]
        if not isinstance(inst, collections.OrderedDict):
            raise UnsafeCheckpointError(f"refuses to set the state of a {type(inst).__name__} (BUILD); only an "
                                        f"OrderedDict's metadata may be set")

    dispatch[pickle.BUILD[0]] = load_build


def is_legacy_torch_file(head):
    return head.startswith(LEGACY_MAGIC)


def read_torch_zip(path):
    """The object a PyTorch zip checkpoint holds, tensors as NumPy arrays."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            kind = "a TorchScript archive (torch.jit.save)" if any(n.endswith("/constants.pkl") for n in names) \
                else "a ZIP archive without a data.pkl"
            raise CheckpointFormatError(f"{path} is {kind}, not a torch.save checkpoint")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointFormatError(f"{path}: unknown byteorder {byteorder!r}")

        def read_storage(key, dtype, numel):
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise CheckpointFormatError(f"{path} lacks the storage {entry}")
            raw = archive.read(entry)
            return _storage_array(raw, dtype, numel, byteorder, entry)

        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), read_storage)
        try:
            return unpickler.load()
        except (UnsafeCheckpointError, CheckpointFormatError):
            raise
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise CheckpointFormatError(f"{path}: malformed pickle ({type(err).__name__}: {err})") from None


def _storage_array(raw, dtype, numel, byteorder, entry):
    if dtype == "bfloat16":  # the upper half of a float32: widen exactly
        bits = np.frombuffer(raw, dtype="<u2" if byteorder == "little" else ">u2")
        array = (bits.astype(np.uint32) << 16).view(np.float32)
    else:
        dt = np.dtype(dtype).newbyteorder("<" if byteorder == "little" else ">")
        if len(raw) % dt.itemsize:
            raise CheckpointFormatError(f"{entry}: {len(raw)} bytes is not a whole number of {np.dtype(dtype)} values")
        array = np.frombuffer(raw, dtype=dt).astype(np.dtype(dtype), copy=False)
    if array.size < numel:
        raise CheckpointFormatError(f"{entry} holds {array.size} values, the pickle says {numel} (truncated?)")
    return array
