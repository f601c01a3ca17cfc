"""Activations and (log-)softmax."""
import numbers
import warnings

import numpy as np

from minidl import kernels, ops
from minidl.kernels import _checks as kernel_checks
from minidl.functions._checks import as_input
from minidl.ops import constant_like, through
from minidl.tensor import Function


class ReLU(Function):
    """max(x, 0) with PyTorch's conventions: -0.0 and NaN pass unchanged, and the gradient is 0 wherever the
    output is 0 (an inf or NaN gradient there gives 0, not NaN). float32/float64 NumPy arrays take
    minidl.kernels.relu_forward / relu_backward (selects, 2.5-6x NumPy's maximum and mask product); other
    arrays the array library's where."""
    # Saves its output, not a mask of x > 0: the next layer (a conv, in every zoo model) keeps that output for
    # its own backward anyway, so the ReLU's share costs nothing, where a mask was a quarter of x more.
    # ResNet-18 CIFAR at batch 128: the memory a training step adds 1,057 -> 993 MB (ResNet-20: 352 -> 331 MB).
    # Nor does it keep its input (keeps_inputs): the batch-norm output it read is freed after forward.
    keeps_inputs = False

    def forward(self, x):
        if x.dtype in _KERNEL_DTYPES and kernels.has_kernel(x, "relu_forward"):
            self.y = kernels.relu_forward(x)
        else:
            self.y = self.xp.where(x < 0, self.xp.zeros((), x.dtype), x)
        return self.y

    def backward(self, gy):
        if gy.dtype == self.y.dtype and gy.dtype in _KERNEL_DTYPES and kernels.has_kernel(gy, "relu_backward"):
            return kernels.relu_backward(gy, self.y)
        return self.xp.where(self.y <= 0, self.xp.zeros((), gy.dtype), gy)

    def backward_graph(self, gy):   # a constant mask: the second derivative is 0 (a.e.), recorded as torch
        return through(gy * constant_like(self.y > 0, gy), self.inputs[0])


_KERNEL_DTYPES = (np.float32, np.float64)


def relu(input):  # noqa: A002 - torch's name
    """max(x, 0)."""
    return ReLU()(as_input(input, "relu"))


class LeakyReLU(Function):
    def __init__(self, negative_slope):
        self.slope = negative_slope

    def forward(self, x):
        self.mask = x > 0
        return self.xp.where(self.mask, x, x * self.slope)

    def backward(self, gy):
        return self.xp.where(self.mask, gy, gy * self.slope)

    def backward_graph(self, gy):   # a constant slope per element: the second derivative is 0 (a.e.)
        return through(gy * constant_like(self.xp.where(self.mask, 1.0, self.slope), gy), self.inputs[0])


def leaky_relu(input, negative_slope=0.01):  # noqa: A002 - torch's name
    """x if x > 0 else negative_slope * x."""
    return LeakyReLU(negative_slope)(as_input(input, "leaky_relu"))


class Tanh(Function):
    """y = outer * tanh(inner * x): tanh itself (outer = inner = 1), or LeCun's scaled tanh in one op
    (``scaled_tanh``). float32 by minidl.kernels.tanh_forward / tanh_backward where the kernel set has them
    (the CPU's: a rational function, ~5x NumPy's tanh, at most 3e-7 off); other dtypes, and CuPy arrays, by
    the array library's tanh."""
    keeps_output = True      # backward_graph differentiates through output_tensor()

    def __init__(self, outer=1.0, inner=1.0):
        self.outer, self.inner = outer, inner

    def forward(self, x):
        outer, inner = self.outer, self.inner
        if x.dtype == np.float32 and kernels.has_kernel(x, "tanh_forward"):
            self.y = kernels.tanh_forward(x, outer, inner)
        elif outer == inner == 1:
            self.y = self.xp.tanh(x)
        else:
            self.y = (outer * self.xp.tanh(inner * x)).astype(x.dtype, copy=False)
        return self.y

    def backward(self, gy):
        outer, inner = self.outer, self.inner
        if gy.dtype == self.y.dtype == np.float32 and gy.shape == self.y.shape \
                and kernels.has_kernel(gy, "tanh_backward"):
            return kernels.tanh_backward(gy, self.y, outer, inner)
        if outer == inner == 1:
            return gy * (1 - self.y * self.y)
        t = self.y / outer
        return (gy * (outer * inner * (1 - t * t))).astype(gy.dtype, copy=False)

    def backward_graph(self, gy):
        y = self.output_tensor()
        if self.outer == self.inner == 1:
            return gy * (1.0 - y * y)
        t = y * (1.0 / self.outer)
        return gy * (self.outer * self.inner) * (1.0 - t * t)


def tanh(input):  # noqa: A002 - torch's name
    return Tanh()(as_input(input, "tanh"))


def scaled_tanh(input, outer=1.7159, inner=2.0 / 3.0):  # noqa: A002
    """outer * tanh(inner * x) as one op: LeCun's squashing function f(a) = 1.7159 tanh(2a/3) (LeNet-5,
    Appendix A; "Efficient BackProp") by default. Not a PyTorch function: there it is
    ``outer * torch.tanh(inner * x)``, three ops, which this computes in one pass forward and one backward.
    ``outer`` and ``inner``: finite nonzero numbers."""
    kernel_checks.tanh_scales("scaled_tanh", outer, inner)
    return Tanh(float(outer), float(inner))(as_input(input, "scaled_tanh"))


class Sigmoid(Function):
    """1 / (1 + exp(-x)), written so that both tails keep full relative precision: with e = exp(-|x|),
    sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0 (float32 sigmoid(-20) = 2.06e-9, where
    the tanh form 0.5 tanh(x / 2) + 0.5 gives 0)."""
    keeps_output = True      # backward_graph differentiates through output_tensor()

    def forward(self, x):
        xp = self.xp
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)

    def backward_graph(self, gy):
        y = self.output_tensor()
        return gy * y * (1.0 - y)


def sigmoid(input):  # noqa: A002 - torch's name
    return Sigmoid()(as_input(input, "sigmoid"))


class LogSigmoid(Function):
    """log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)), exact for large |x| of either sign; its gradient is
    sigmoid(-x) = 1 - sigmoid(x), computed as exp(-|x|)-based too."""

    def forward(self, x):
        xp = self.xp
        self.x = x
        return (xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))).astype(x.dtype, copy=False)

    def backward(self, gy):
        xp, x = self.xp, self.x
        e = xp.exp(-xp.abs(x))
        return gy * xp.where(x >= 0, e / (1 + e), 1 / (1 + e)).astype(gy.dtype, copy=False)

    def backward_graph(self, gy):   # d/dx log sigmoid(x) = sigmoid(-x), through the stable Sigmoid
        return gy * Sigmoid()(-self.inputs[0])


def logsigmoid(input):  # noqa: A002 - torch's name
    """log(sigmoid(x)), stable: -softplus(-x)."""
    return LogSigmoid()(as_input(input, "logsigmoid"))


class Softplus(Function):
    """(1 / beta) log(1 + exp(beta x)), and x itself where beta x > threshold (as torch: the two differ by
    less than float32's resolution there). Computed as max(z, 0) + log1p(exp(-|z|)) with z = beta x."""

    def __init__(self, beta, threshold):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        xp = self.xp
        self.x = x
        z = x * self.beta
        soft = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / self.beta
        return xp.where(z > self.threshold, x, soft).astype(x.dtype, copy=False)

    def backward(self, gy):
        xp = self.xp
        z = self.x * self.beta
        e = xp.exp(-xp.abs(z))
        sig = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return gy * xp.where(z > self.threshold, 1, sig).astype(gy.dtype, copy=False)

    def backward_graph(self, gy):   # sigmoid(beta x), and 1 (second derivative 0) above the threshold
        x, = self.inputs
        linear = self.x * self.beta > self.threshold
        sig = Sigmoid()(x * float(self.beta))
        return gy * (sig * constant_like(~linear, gy) + constant_like(linear, gy))


def softplus(input, beta=1.0, threshold=20.0):  # noqa: A002 - torch's name
    """A smooth ReLU: log(1 + exp(beta x)) / beta, as ``torch.nn.functional.softplus``."""
    x = as_input(input, "softplus")
    if beta == 0:
        raise ValueError("softplus: beta must be non-zero")
    return Softplus(beta, threshold)(x)


def _softmax_dim(x, dim, op):
    if dim is None:
        # torch's legacy rule for an implicit dim, with its warning
        dim = 0 if x.ndim in (0, 1, 3) else 1
        warnings.warn(f"{op}: implicit dimension choice is deprecated (as in PyTorch); pass dim= "
                      f"(dim={dim} was used for a {x.ndim}-D input)", UserWarning, stacklevel=3)
    n = max(x.ndim, 1)
    if not isinstance(dim, numbers.Integral) or not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim!r} is out of range for a tensor of shape {tuple(x.shape)}")
    return int(dim) % n if x.ndim else None


class Softmax(Function):
    keeps_output = True      # backward_graph differentiates through output_tensor()

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        z = self.xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = z / z.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        gx = self.y * gy
        return gx - self.y * gx.sum(axis=self.axis, keepdims=True)

    def backward_graph(self, gy):
        y = self.output_tensor()
        gx = y * gy
        return gx - y * ops.sum(gx, self.axis, keepdim=True)


def softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002 - torch's names
    """exp(x) / sum(exp(x)) along ``dim``, as ``torch.nn.functional.softmax`` (pass dim: without it the
    deprecated implicit choice is made and warned about, as in torch). ``dtype`` casts the input first."""
    x = as_input(input, "softmax")
    axis = _softmax_dim(x, dim, "softmax")
    if dtype is not None:
        x = x.to(dtype=dtype)
    return Softmax(axis)(x)


def _log_softmax(xp, x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    keeps_output = True      # backward_graph differentiates through output_tensor()

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = _log_softmax(self.xp, x, self.axis)
        return self.y

    def backward(self, gy):
        return gy - self.xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)

    def backward_graph(self, gy):
        return gy - ops.exp(self.output_tensor()) * ops.sum(gy, self.axis, keepdim=True)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002 - torch's names
    """x - logsumexp(x) along ``dim``, computed stably, as ``torch.nn.functional.log_softmax``."""
    x = as_input(input, "log_softmax")
    axis = _softmax_dim(x, dim, "log_softmax")
    if dtype is not None:
        x = x.to(dtype=dtype)
    return LogSoftmax(axis)(x)
