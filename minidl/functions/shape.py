"""Joining, splitting and padding tensors (reshape, transpose, flatten and indexing are in minidl.ops)."""
import numbers

import numpy as np

from minidl.functions._checks import check_same_device
from minidl.ops import GetItem, as_tensor
from minidl.tensor import Function, Tensor


class Concat(Function):
    saves_arrays = False

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1].tolist()
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(self.xp.split(gy, self.bounds, axis=self.axis))

    def backward_graph(self, gy):
        pieces = Split(self.bounds, self.axis)(gy)
        return pieces if isinstance(pieces, tuple) else (pieces,)


def _dim_or_axis(op, dim, axis):
    """``dim`` (default 0), or NumPy's name ``axis`` for it."""
    if axis is not None:
        if dim not in (None, 0):
            raise TypeError(f"{op}: pass dim or its alias axis, not both")
        return axis
    return 0 if dim is None else dim


def _check_dim(op, dim, ref):
    if not isinstance(dim, numbers.Integral) or not -ref.ndim <= dim < ref.ndim:
        raise IndexError(f"{op}: dim {dim!r} is out of range for tensors of shape {tuple(ref.shape)} "
                         f"(expected an int in [{-ref.ndim}, {ref.ndim - 1}])")
    return int(dim) % ref.ndim


def cat(tensors, dim=0, *, axis=None):
    """Join tensors along ``dim`` (default 0, as ``torch.cat``; Inception and DenseNet join channels with
    ``dim=1``). ``axis`` is accepted as an alias, as torch does."""
    op = "cat"
    if isinstance(tensors, Tensor):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got a single Tensor")
    xs = [as_tensor(x) for x in tensors]
    if not xs:
        raise ValueError(f"{op}: expected at least one tensor, got none")
    check_same_device(op, *xs)
    ref = xs[0]
    if ref.ndim == 0:
        raise ValueError(f"{op}: zero-dimensional tensors cannot be concatenated")
    dim = _check_dim(op, _dim_or_axis(op, dim, axis), ref)
    for i, x in enumerate(xs[1:], start=1):
        if x.ndim != ref.ndim or any(a != b for d, (a, b) in enumerate(zip(x.shape, ref.shape)) if d != dim):
            raise ValueError(f"{op}: tensor {i} has shape {tuple(x.shape)}, which does not match "
                             f"{tuple(ref.shape)} outside dim {dim}")
        if x.dtype != ref.dtype:
            raise TypeError(f"{op}: tensor {i} has dtype {x.dtype}, tensor 0 has {ref.dtype}")
    return Concat(dim)(*xs)


concat = cat    # torch.concat: another name for cat


class Split(Function):
    saves_arrays = False

    def __init__(self, bounds, axis):
        self.bounds, self.axis = bounds, axis

    def forward(self, x):
        return tuple(self.xp.split(x, self.bounds, axis=self.axis))

    def backward(self, *gys):
        return self.xp.concatenate(gys, axis=self.axis)

    def backward_graph(self, *gys):
        return Concat(self.axis)(*gys)


def split(tensor, split_size_or_sections, dim=0, *, axis=None):
    """Split into pieces along ``dim`` (default 0, as ``torch.split``): an int gives pieces of that size
    (the last may be smaller), a list gives the sizes of the pieces. Returns a tuple of tensors."""
    x = as_tensor(tensor)
    if x.ndim == 0:
        raise ValueError("split: a zero-dimensional tensor cannot be split")
    axis = _check_dim("split", _dim_or_axis("split", dim, axis), x)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} must be non-negative and add up to {n} (axis {axis} of "
                             f"shape {tuple(x.shape)})")
    out = Split(list(np.cumsum(sizes)[:-1]), axis)(x)
    return out if isinstance(out, tuple) else (out,)


class Pad(Function):
    saves_arrays = False

    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        self.slices = tuple(slice(before, before + n) for (before, _), n in zip(self.pad_width, x.shape))
        return self.xp.pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[self.slices]

    def backward_graph(self, gy):
        return GetItem(self.slices)(gy)


def pad(input, pad, mode="constant", value=None):  # noqa: A002 - torch's names
    """Constant padding, as ``torch.nn.functional.pad``: ``pad`` lists (before, after) amounts starting from
    the *last* dim: ``pad(x, (1, 1))`` pads W by one on each side, ``pad(x, (1, 1, 2, 0))`` also pads H by
    two on top, ``pad(x, (0, 0, 0, 0, 0, 3))`` appends three zero channels to N x C x H x W.
    Only ``mode='constant'`` (with ``value``, default 0) exists here; negative amounts (cropping) are
    not supported."""
    op = "pad"
    x = as_tensor(input)
    if mode != "constant":
        raise NotImplementedError(f"{op}: only mode='constant' is implemented, got mode={mode!r}")
    try:
        amounts = [int(p) for p in pad]
    except TypeError:
        raise TypeError(f"{op}: pad must be a sequence of ints (before, after, ...) starting from the last dim, "
                        f"got {pad!r}") from None
    if len(amounts) % 2 or len(amounts) // 2 > x.ndim:
        raise ValueError(f"{op}: pad must hold an even number of ints, at most 2 per dim ({2 * x.ndim} for "
                         f"shape {tuple(x.shape)}), got {pad!r}")
    if min(amounts, default=0) < 0:
        raise ValueError(f"{op}: negative padding (cropping) is not supported, got {pad!r}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(amounts) // 2):
        widths[x.ndim - 1 - i] = (amounts[2 * i], amounts[2 * i + 1])
    return Pad(tuple(widths), 0.0 if value is None else value)(x)
