"""Tensor factories: ``minidl.tensor``, ``zeros``, ``ones``, ``randn``, ``rand``, ``arange``, ..."""
import numpy as np

from minidl import backend
from minidl.random import default_rng
from minidl.tensor import Tensor


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"expected a shape of non-negative ints, got {shape}")
    return tuple(int(n) for n in shape)


def _make(array, dtype, device, requires_grad):
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if device is not None:
        array = backend.as_device_array(array, device)
    return Tensor(array, requires_grad=requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """Make a tensor from a list, a number or an array (copied). Python floats become float32."""
    array = data.data if isinstance(data, Tensor) else data
    array = array.copy() if hasattr(array, "copy") and not np.isscalar(array) else array
    return _make(Tensor(array, dtype=dtype).data, None, device, requires_grad)


def zeros(*shape, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.zeros(_shape(shape), dtype=dtype), None, device, requires_grad)


def ones(*shape, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.ones(_shape(shape), dtype=dtype), None, device, requires_grad)


def full(shape, fill_value, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.full(_shape((shape,)), fill_value, dtype=dtype), None, device, requires_grad)


def zeros_like(x, dtype=None, requires_grad=False):
    return Tensor(x.xp.zeros_like(x.data, dtype=dtype), requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad=False):
    return Tensor(x.xp.ones_like(x.data, dtype=dtype), requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, device=None, requires_grad=False):
    """Standard normal samples from minidl's generator (seed it with ``minidl.manual_seed``)."""
    return _make(default_rng().standard_normal(_shape(shape), dtype=np.float64), dtype, device, requires_grad)


def rand(*shape, dtype=np.float32, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from minidl's generator."""
    return _make(default_rng().random(_shape(shape)), dtype, device, requires_grad)


def randint(low, high, shape, device=None):
    return _make(default_rng().integers(low, high, size=_shape((shape,))), np.int64, device, False)


def arange(start, stop=None, step=1, dtype=None, device=None, requires_grad=False):
    array = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and array.dtype.kind == "f":
        dtype = np.float32
    return _make(array, dtype, device, requires_grad)
