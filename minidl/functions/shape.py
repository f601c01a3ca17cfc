"""Joining, splitting and padding tensors (reshape, transpose, flatten and indexing are in minidl.ops)."""
import numbers

import numpy as np

from minidl.functions._checks import check_same_device
from minidl.ops import as_tensor
from minidl.tensor import Function


class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1].tolist()
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(self.xp.split(gy, self.bounds, axis=self.axis))


def concat(xs, axis=1):
    """Join tensors along ``axis`` (the channel axis by default, as Inception and DenseNet do)."""
    xs = [as_tensor(x) for x in xs]
    if not xs:
        raise ValueError("concat: expected at least one tensor, got none")
    check_same_device("concat", *xs)
    ref = xs[0]
    axis = axis % ref.ndim if -ref.ndim <= axis < ref.ndim else None
    if axis is None:
        raise ValueError(f"concat: axis is out of range for tensors of shape {tuple(ref.shape)}")
    for i, x in enumerate(xs[1:], start=1):
        if x.ndim != ref.ndim or any(a != b for d, (a, b) in enumerate(zip(x.shape, ref.shape)) if d != axis):
            raise ValueError(f"concat: tensor {i} has shape {tuple(x.shape)}, which does not match "
                             f"{tuple(ref.shape)} outside axis {axis}")
    return Concat(axis)(*xs)


cat = concat


class Split(Function):
    def __init__(self, bounds, axis):
        self.bounds, self.axis = bounds, axis

    def forward(self, x):
        return tuple(self.xp.split(x, self.bounds, axis=self.axis))

    def backward(self, *gys):
        return self.xp.concatenate(gys, axis=self.axis)


def split(x, split_size_or_sections, axis=1):
    """Split into pieces along ``axis``: an int gives pieces of that size (the last may be smaller), a list
    gives the sizes of the pieces (like ``torch.split``). Returns a tuple of tensors."""
    x = as_tensor(x)
    axis = axis % x.ndim
    n = x.shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} must be non-negative and add up to {n} (axis {axis} of "
                             f"shape {tuple(x.shape)})")
    out = Split(list(np.cumsum(sizes)[:-1]), axis)(x)
    return out if isinstance(out, tuple) else (out,)


class Pad(Function):
    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        self.slices = tuple(slice(before, before + n) for (before, _), n in zip(self.pad_width, x.shape))
        return self.xp.pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[self.slices]


def pad(x, pad_width, value=0.0):
    """Constant padding. ``pad_width`` is NumPy's: one (before, after) pair per axis, or one pair or int for
    all axes. ``pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))`` pads H and W of an N x C x H x W tensor by 1."""
    x = as_tensor(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2)) \
        if np.ndim(pad_width) < 2 else np.asarray(pad_width, dtype=np.int64)
    if widths.shape != (x.ndim, 2) or (widths < 0).any():
        raise ValueError(f"pad: pad_width must give a non-negative (before, after) pair for each of the "
                         f"{x.ndim} axes of shape {tuple(x.shape)}, got {pad_width!r}")
    return Pad(tuple(map(tuple, widths.tolist())), value)(x)
