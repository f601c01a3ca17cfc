"""Readers for the on-disk formats: IDX (MNIST, Fashion-MNIST), CIFAR python batches, image files.

Every reader checks what it reads and names the file in its error, so a bad download surfaces as
"train-images-idx3-ubyte.gz: IDX header says 60000 x 28 x 28 ..." rather than a reshape error.
"""
import gzip
import io
import pickle
import pickletools
import struct
import zlib
from pathlib import Path

import numpy as np

class DataFileError(ValueError):
    """A data file that cannot be read (truncated, corrupt, not an image); the message names it.

    The training command catches it while it trains, saves the last completed step and stops (exit 2)."""


# IDX type codes (http://yann.lecun.com/exdb/mnist/, bottom of the page); multi-byte types are big-endian.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_bytes(path):
    """The file's bytes, gunzipped when it is gzip; a truncated or corrupt gzip is a ValueError."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path}: truncated or corrupt gzip file ({err})") from None


def read_idx(path):
    """Read an IDX file (gzipped or not) into an array of the shape its header gives.

    Layout: two zero bytes, a type code, the number of dimensions D, D big-endian uint32 sizes, data.
    """
    data = read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {data[:4].hex() or 'missing'}, "
                         f"expected 0000 + type code + ndim, e.g. 00000803 for images)")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header cut short ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes of data) "
                         f"but the file holds {len(data) - header} bytes")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: a CIFAR batch needs nothing else, and
    refusing every other global keeps a tampered file from running code."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("_codecs", "encode")}  # how Python 3 writes bytes into a protocol-2 pickle

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":  # the name NumPy 1 wrote; NumPy 2 moved it
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


# Opcodes of pickle protocol 5 (out-of-band buffers), which no CIFAR batch holds (they are protocol 2)
_PROTOCOL_5_OPCODES = {"BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"}


def read_pickle(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        # The stream's framing is checked first, in Python: pickletools reads each opcode and its argument and
        # builds nothing. Random bytes fed straight to the C unpickler could make it allocate a length read
        # from the garbage and print CPython's own error to stderr ("SystemError: deallocated bytearray object
        # has exported buffers", a protocol-5 BYTEARRAY8 read from the file), beside minidl's one line.
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name in _PROTOCOL_5_OPCODES:
                raise pickle.UnpicklingError(f"opcode {opcode.name} of pickle protocol 5")
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # garbage bytes make the unpickler fail in many ways; name the file
        raise ValueError(f"{path}: not a CIFAR python batch ({type(err).__name__}: {err})") from None


def read_cifar_batch(path, image_shape=(3, 32, 32)):
    """One batch of the CIFAR python version: uint8 images (N, 3, 32, 32) and int64 labels (N,).

    The file is a pickled dict with ``b"data"`` (N x 3072 uint8, each row the red plane, then green,
    then blue, each 32 x 32 row-major) and ``b"labels"`` (N ints; ``b"fine_labels"`` in CIFAR-100).
    """
    batch = read_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    labels = batch.get("labels", batch.get("fine_labels"))
    if "data" not in batch or labels is None:
        raise ValueError(f"{path}: a CIFAR batch needs 'data' and 'labels' entries, found {sorted(batch)}")
    data, labels = np.asarray(batch["data"]), np.asarray(labels, dtype=np.int64)
    size = int(np.prod(image_shape))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size or len(data) != len(labels):
        raise ValueError(f"{path}: expected uint8 data of shape (N, {size}) and N labels, got data "
                         f"{data.dtype} {data.shape} and {len(labels)} labels")
    return data.reshape(len(data), *image_shape), labels


def read_image(path, mode="RGB"):
    """Read an image file with Pillow into a uint8 array (H, W, C), or (H, W) for mode "L"."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image files needs Pillow: pip install 'minidl[images]'") from None
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))
