"""Weight initialisation, in place on a tensor's ``.data``, with PyTorch's names and formulas.

Every function draws from minidl's global generator (``minidl.manual_seed`` makes it reproducible),
writes into the existing array (same dtype, same device) and returns the tensor.

Fans: for a weight of shape (out_features, in_features) or (K, C, KH, KW),
``fan_in = C * KH * KW`` (inputs feeding one output unit) and ``fan_out = K * KH * KW``.

* **Xavier / Glorot** (Glorot & Bengio 2010) keeps the variance of activations and of gradients about
  constant through *linear* (or tanh) layers: ``Var(w) = gain^2 * 2 / (fan_in + fan_out)``.
* **Kaiming / He** (He et al. 2015) does the same for ReLU layers, which zero half of their inputs and
  so halve the variance: ``Var(w) = gain^2 / fan`` with ``gain^2 = 2`` for ReLU, i.e. ``2 / fan_in``.
  The CS231n notes call this "Xavier/2": it is the one-sided Xavier rule ``Var(w) = 1 / fan_in`` with
  fan_in replaced by ``fan_in / 2``, the number of inputs a ReLU lets through on average.

A uniform distribution on [-b, b] has standard deviation ``b / sqrt(3)``, so each ``*_uniform_`` uses
``b = sqrt(3) * std`` for the same std as its ``*_normal_`` sibling.
"""
import math

import numpy as np

from minidl import backend
from minidl.random import default_rng
from minidl.tensor import Tensor

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The factor by which to scale the std of the weights feeding ``nonlinearity`` (PyTorch's values).

    ======================  ===========================================
    linear, conv*, sigmoid  1
    tanh                    5/3
    relu                    sqrt(2)
    leaky_relu              sqrt(2 / (1 + negative_slope^2)), slope ``param`` (default 0.01)
    selu                    3/4
    ======================  ===========================================
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{', '.join(_LINEAR_LIKE)}, tanh, relu, leaky_relu, selu")


def fan_in_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight: dim 1 and dim 0 times the receptive field (dims 2 onwards)."""
    shape = _tensor(tensor, "fan_in_fan_out").shape
    if len(shape) < 2:
        raise ValueError(f"fan_in_fan_out: fans need a tensor with at least 2 dims, got shape {shape}")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _tensor(tensor, op):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a minidl Tensor (e.g. layer.weight), got {type(tensor).__name__}")
    return tensor


def _fill(tensor, values):
    """Write float64 ``values`` into the tensor's array, keeping its dtype and device."""
    array = tensor.data
    tensor.data[...] = backend.as_device_array(np.asarray(values).astype(array.dtype, copy=False), backend.device_of(array))
    return tensor


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"kaiming init: tensor of shape {tensor.shape} has {mode} = 0")
    return fan


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with samples from U(a, b)."""
    _tensor(tensor, "uniform_")
    if a > b:
        raise ValueError(f"uniform_: lower bound a={a} is above upper bound b={b}")
    values = _samples(tensor, "random")
    values *= b - a
    values += a
    return _fill(tensor, values)


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with samples from N(mean, std^2)."""
    _tensor(tensor, "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    values = _samples(tensor, "standard_normal")
    values *= std
    values += mean
    return _fill(tensor, values)


def _samples(tensor, method):
    """Standard samples drawn directly in float32 for float32 tensors: VGG16's 138M weights would
    otherwise be drawn in float64 and cast, which takes seconds and twice the memory."""
    dtype = np.float32 if tensor.dtype == np.float32 else np.float64
    return getattr(default_rng(), method)(tensor.shape, dtype=dtype)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Fill with N(mean, std^2) samples conditioned on lying in [a, b] (absolute bounds, like PyTorch's).

    Samples outside [a, b] are redrawn until none is left, so [a, b] should hold a fair share of the
    distribution (the usual a = mean - 2 std, b = mean + 2 std holds 95%).
    """
    _tensor(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be positive, got {std}")
    mass = 0.5 * (math.erf((b - mean) / (std * math.sqrt(2))) - math.erf((a - mean) / (std * math.sqrt(2))))
    if mass < 1e-3:
        raise ValueError(f"trunc_normal_: [{a}, {b}] holds only {mass:.2g} of N({mean}, {std}^2); "
                         f"sampling it by rejection would take too long")
    rng = default_rng()
    values = rng.normal(mean, std, tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor, val):
    _tensor(tensor, "constant_")
    tensor.data[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def xavier_uniform_(tensor, gain=1.0):
    """Glorot uniform: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fan_in_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)


def xavier_normal_(tensor, gain=1.0):
    """Glorot normal: N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fan_in_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``, ``gain = calculate_gain(nonlinearity, a)``.

    With the defaults (a leaky ReLU of slope 0, i.e. a ReLU) this is ``b = sqrt(6 / fan_in)``.
    ``kaiming_uniform_(w, a=math.sqrt(5))`` is PyTorch's default for Linear and Conv weights, which
    works out to ``b = 1 / sqrt(fan_in)``.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return uniform_(tensor, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He normal ("Xavier/2"): N(0, std^2) with ``std = gain / sqrt(fan)``; ``sqrt(2 / fan_in)`` for ReLU.

    ``mode='fan_out'`` preserves the variance of the gradients in the backward pass instead
    (torchvision's ResNets use ``kaiming_normal_(w, mode='fan_out', nonlinearity='relu')``).
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)
