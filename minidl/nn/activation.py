"""Activation layers: ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``LogSigmoid``, ``Softplus``,
``Softmax``, ``LogSoftmax``.

Each wraps the function of the same name in ``minidl.functions``; they hold no parameters.
"""
import minidl.functions as F
from minidl.nn.module import Module


class ReLU(Module):
    """``max(0, x)``."""

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    """``x`` for x >= 0, ``negative_slope * x`` below."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``."""

    def forward(self, x):
        return F.sigmoid(x)


class LogSigmoid(Module):
    """``log(1 / (1 + exp(-x)))``, stable for large |x|."""

    def forward(self, x):
        return F.logsigmoid(x)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta`` (x itself where beta x > threshold), as ``torch.nn.Softplus``."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """``exp(x_i) / sum_j exp(x_j)`` along ``dim``, as ``torch.nn.Softmax`` (dim=None: torch's deprecated
    implicit choice, with its warning)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``log(softmax(x))`` along ``dim``, computed stably (``x - logsumexp(x)``), as ``torch.nn.LogSoftmax``."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
