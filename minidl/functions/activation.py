"""Activations and (log-)softmax."""
from minidl.functions._checks import as_input
from minidl.tensor import Function


class ReLU(Function):
    # Saves its output, not a mask of x > 0: the next layer (a conv, in every zoo model) keeps that output for
    # its own backward anyway, so the ReLU's share costs nothing, where a mask was a quarter of x more.
    # ResNet-18 CIFAR at batch 128: the memory a training step adds 1,057 -> 993 MB (ResNet-20: 352 -> 331 MB).
    def forward(self, x):
        self.y = y = self.xp.maximum(x, 0)
        return y

    def backward(self, gy):
        return gy * (self.y > 0)


def relu(x):
    """max(x, 0)."""
    return ReLU()(as_input(x, "relu"))


class LeakyReLU(Function):
    def __init__(self, negative_slope):
        self.slope = negative_slope

    def forward(self, x):
        self.mask = x > 0
        return self.xp.where(self.mask, x, x * self.slope)

    def backward(self, gy):
        return self.xp.where(self.mask, gy, gy * self.slope)


def leaky_relu(x, negative_slope=0.01):
    """x if x > 0 else negative_slope * x."""
    return LeakyReLU(negative_slope)(as_input(x, "leaky_relu"))


class Tanh(Function):
    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


def tanh(x):
    return Tanh()(as_input(x, "tanh"))


class Sigmoid(Function):
    def forward(self, x):
        # 1 / (1 + exp(-x)) written through tanh: no overflow for large |x|
        self.y = 0.5 * self.xp.tanh(0.5 * x) + 0.5
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


def sigmoid(x):
    return Sigmoid()(as_input(x, "sigmoid"))


def _check_axis(x, axis, op):
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")


class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        z = self.xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = z / z.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        gx = self.y * gy
        return gx - self.y * gx.sum(axis=self.axis, keepdims=True)


def softmax(x, axis=1):
    """exp(x) / sum(exp(x)) along ``axis`` (the class axis of N x C logits by default)."""
    x = as_input(x, "softmax")
    _check_axis(x, axis, "softmax")
    return Softmax(axis)(x)


def _log_softmax(xp, x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = _log_softmax(self.xp, x, self.axis)
        return self.y

    def backward(self, gy):
        return gy - self.xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis=1):
    """x - logsumexp(x) along ``axis``, computed stably."""
    x = as_input(x, "log_softmax")
    _check_axis(x, axis, "log_softmax")
    return LogSoftmax(axis)(x)
