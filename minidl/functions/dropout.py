"""Dropout (Srivastava et al. 2014) and drop-path (stochastic depth, FractalNet)."""
import numpy as np

from minidl.functions._checks import as_input
from minidl.random import default_rng
from minidl.tensor import Function, Tensor


def bernoulli_mask(xp, shape, keep, dtype):
    """A 0/1 mask with P(1) = keep, drawn from minidl's generator (moved to the GPU when needed)."""
    mask = (default_rng().random(shape) < keep).astype(dtype)
    return mask if xp is np else xp.asarray(mask)


class Dropout(Function):
    def __init__(self, p, mask_shape):
        self.p, self.mask_shape = p, mask_shape

    def forward(self, x):
        keep = 1.0 - self.p
        shape = self.mask_shape(x.shape)
        self.scale = bernoulli_mask(self.xp, shape, keep, x.dtype) / x.dtype.type(keep) if keep > 0 \
            else self.xp.zeros(shape, dtype=x.dtype)
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale

    def backward_graph(self, gy):   # the same mask again: linear in x, the second derivative is 0
        return gy * Tensor(self.scale)


def _check_p(p, op):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: drop probability must be in [0, 1], got {p}")


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002 - torch's names
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) ("inverted" dropout, so the
    expected value is unchanged and evaluation is the identity). Identity when not ``training``."""
    if inplace:
        raise NotImplementedError("dropout: inplace=True is not implemented (autograd keeps every input)")
    x = as_input(input, "dropout")
    _check_p(p, "dropout")
    if not training or p == 0.0:
        return x
    return Dropout(p, lambda shape: shape)(x)


def drop_path(x, p=0.0, training=True):
    """Drop whole samples of a residual branch with probability ``p`` (scaling survivors by 1/(1-p)).

    Stochastic depth (Huang et al. 2016) and FractalNet's local drop-path use it on a branch before it is
    added or joined; the scaling makes the expected branch equal to its evaluation-time value, which is the
    same as the paper's "multiply by the survival probability at test time". Identity when not ``training``.
    """
    x = as_input(x, "drop_path")
    _check_p(p, "drop_path")
    if not training or p == 0.0:
        return x
    return Dropout(p, lambda shape: (shape[0],) + (1,) * (len(shape) - 1))(x)
