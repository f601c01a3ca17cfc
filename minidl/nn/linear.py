"""``Linear`` (fully connected) and ``Identity``."""
import math

import numpy as np

import minidl.functions as F
from minidl.nn import init
from minidl.nn.module import Module
from minidl.tensor import Parameter


class Identity(Module):
    """Returns its input; stands in for a layer that a variant leaves out. Arguments are ignored."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """``y = x W^T + b``: x (N, in_features) -> y (N, out_features); any leading dims are kept.

    weight: (out_features, in_features), bias: (out_features,). Initialised like PyTorch:
    ``kaiming_uniform_(weight, a=sqrt(5))``, i.e. U(-1/sqrt(in_features), 1/sqrt(in_features)), and
    the bias from the same range.

    >>> fc = nn.Linear(4096, 1000)
    >>> fc(minidl.randn(8, 4096)).shape
    (8, 1000)
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {n!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected inputs with {self.in_features} features in the last dim, "
                             f"got shape {tuple(x.shape)}")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
