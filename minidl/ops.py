"""Elementary differentiable ops: the ones Tensor's operators and methods stand for.

Each op is a Function class and a lowercase wrapper side by side. Binary ops broadcast like NumPy; their
backward "un-broadcasts" the gradient with :func:`sum_to`, summing over the axes that were broadcast.
"""
import builtins
import numbers

import numpy as np

from minidl import backend
from minidl.tensor import Function, Tensor


def sum_to(g, shape):
    """Sum ``g`` down to ``shape``: the adjoint of broadcasting ``shape`` up to ``g.shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


def as_tensor(x, like=None):
    """Wrap ``x`` as a Tensor; a Python number takes the dtype (and device) of ``like``."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and like is not None:
        return Tensor(like.xp.asarray(x, dtype=like.dtype if like.dtype.kind == "f" else None))
    return Tensor(x)


def _binary(a, b):
    if isinstance(a, Tensor):
        return a, as_tensor(b, a)
    b = as_tensor(b)
    return as_tensor(a, b), b


def require_float(op, *tensors):
    for t in tensors:
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating-point tensor, got dtype {t.dtype} "
                            f"(convert with .float() or minidl.tensor(..., dtype='float32'))")


class Add(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.a_shape), sum_to(gy, self.b_shape)


def add(a, b):
    return Add()(*_binary(a, b))


class Sub(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.a_shape), sum_to(-gy, self.b_shape)


def sub(a, b):
    return Sub()(*_binary(a, b))


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return sum_to(gy * self.b, self.a.shape), sum_to(gy * self.a, self.b.shape)


def mul(a, b):
    return Mul()(*_binary(a, b))


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        return sum_to(ga, self.a.shape), sum_to(-ga * self.a / self.b, self.b.shape)


def div(a, b):
    return Div()(*_binary(a, b))


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


def neg(x):
    return Neg()(x)


class Pow(Function):
    """x ** c for a constant exponent c."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        self.x = x
        return x ** self.c

    def backward(self, gy):
        return gy * self.c * self.x ** (self.c - 1)


class PowTensor(Function):
    """a ** b with both differentiable (a > 0 where b's gradient is needed)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        ga = gy * self.b * self.a ** (self.b - 1)
        gb = gy * self.y * self.xp.log(self.xp.where(self.a > 0, self.a, 1))
        return sum_to(ga, self.a.shape), sum_to(gb, self.b.shape)


def pow(x, exponent):
    if isinstance(exponent, numbers.Number):
        require_float("pow", as_tensor(x))
        return Pow(exponent)(x)
    return PowTensor()(*_binary(x, exponent))


def rpow(base, x):
    return PowTensor()(*_binary(base, x))


class MatMul(Function):
    """a @ b with NumPy's matmul rules: 1-D operands are promoted, leading dims broadcast."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        xp, a, b = self.xp, self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a  # promote 1-D operands as matmul does
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        gy = gy.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = sum_to(gy @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        gb = sum_to(xp.swapaxes(a2, -1, -2) @ gy, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    a, b = _binary(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    return MatMul()(a, b)


class Exp(Function):
    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


def exp(x):
    x = as_tensor(x)
    require_float("exp", x)
    return Exp()(x)


class Log(Function):
    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, gy):
        return gy / self.x


def log(x):
    x = as_tensor(x)
    require_float("log", x)
    return Log()(x)


class Sqrt(Function):
    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


def sqrt(x):
    x = as_tensor(x)
    require_float("sqrt", x)
    return Sqrt()(x)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, gy):
        return gy * self.xp.sign(self.x)


def abs(x):  # noqa: A001 - mirrors torch.abs
    return Abs()(as_tensor(x))


def _normalize_axis(axis, ndim, op):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % builtins.max(ndim, 1))
    return tuple(sorted(out))


def _expand_reduced(g, shape, axes):
    """Reshape a reduced gradient so that it broadcasts against the input again."""
    if axes is None:
        return g.reshape((1,) * len(shape))
    kept = list(shape)
    for a in axes:
        kept[a] = 1
    return g.reshape(kept)


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return self.xp.asarray(x.sum(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy):
        g = _expand_reduced(gy, self.x_shape, self.axes)
        return self.xp.broadcast_to(g, self.x_shape).copy()


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors torch.sum
    x = as_tensor(x)
    return Sum(_normalize_axis(axis, x.ndim, "sum"), keepdims)(x)


def mean(x, axis=None, keepdims=False):
    x = as_tensor(x)
    require_float("mean", x)
    axes = _normalize_axis(axis, x.ndim, "mean")
    count = x.data.size if axes is None else int(np.prod([x.shape[a] for a in axes]))
    return mul(Sum(axes, keepdims)(x), 1.0 / builtins.max(count, 1))


class MaxMin(Function):
    """max or min over axes; the gradient is shared equally among tied extreme elements."""

    def __init__(self, axes, keepdims, take_max):
        self.axes, self.keepdims, self.take_max = axes, keepdims, take_max

    def forward(self, x):
        reduce = x.max if self.take_max else x.min
        self.x = x
        self.y = reduce(axis=self.axes, keepdims=True)
        y = self.y if self.keepdims else self.y.reshape([n for i, n in enumerate(x.shape)
                                                         if self.axes is not None and i not in self.axes])
        return self.xp.asarray(y)

    def backward(self, gy):
        mask = (self.x == self.y)
        g = _expand_reduced(gy, self.x.shape, self.axes)
        return g * mask / mask.sum(axis=self.axes, keepdims=True)


def max(x, axis=None, keepdims=False):  # noqa: A001 - mirrors torch.max
    x = as_tensor(x)
    return MaxMin(_normalize_axis(axis, x.ndim, "max"), keepdims, True)(x)


def min(x, axis=None, keepdims=False):  # noqa: A001 - mirrors torch.min
    x = as_tensor(x)
    return MaxMin(_normalize_axis(axis, x.ndim, "min"), keepdims, False)(x)


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.x_shape)


def reshape(x, shape):
    x = as_tensor(x)
    shape = tuple(int(n) for n in shape)
    known = int(np.prod([n for n in shape if n != -1]))
    if shape.count(-1) > 1 or (-1 not in shape and known != x.numel()) or \
            (-1 in shape and (known == 0 or x.numel() % known)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) into {shape}")
    if shape == x.shape:
        return x
    return Reshape(shape)(x)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        return gy.transpose(tuple(int(a) for a in np.argsort(self.axes)))


def transpose(x, axes=None):
    """Permute dims (NumPy semantics: ``axes`` is a full permutation, ``None`` reverses them)."""
    x = as_tensor(x)
    if axes is not None:
        axes = tuple(a % x.ndim for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} dims of {x.shape}")
    return Transpose(axes)(x)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one (``flatten(x, 1)`` turns N x C x H x W into N x CHW)."""
    x = as_tensor(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = start_dim % x.ndim, end_dim % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    shape = x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:]
    return reshape(x, shape)


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return self.xp.asarray(x[self.index])

    def backward(self, gy):
        gx = self.xp.zeros(self.x_shape, dtype=gy.dtype)
        if _is_basic_index(self.index):   # slices and ints select each element at most once: a plain store
            gx[self.index] = gy
        else:
            self.xp.add.at(gx, self.index, gy)  # repeated indices accumulate (add.at is ~10x slower)
        return gx


def _is_basic_index(index):
    """Whether ``index`` is basic indexing (ints, slices, None, Ellipsis), which never repeats an element."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(type(i) in (int, slice) or i is None or i is Ellipsis for i in parts)   # type(True) is bool


def _unwrap_index(index):
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def getitem(x, index):
    x = as_tensor(x)
    index = _unwrap_index(index)
    try:
        return GetItem(index)(x)
    except IndexError as err:
        raise IndexError(f"getitem: index {index!r} is out of range for a tensor of shape {x.shape}: {err}") from None


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return self.xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.x_shape)


def broadcast_to(x, shape):
    x = as_tensor(x)
    return x if x.shape == tuple(shape) else BroadcastTo(tuple(shape))(x)


class ToDevice(Function):
    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.as_device_array(x, self.device)

    def backward(self, gy):
        return backend.as_device_array(gy, self.source)


def to_device(x, device):
    return ToDevice(backend.normalize_device(device))(as_tensor(x))


class AsType(Function):
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.x_dtype)


def astype(x, dtype):
    return AsType(dtype)(as_tensor(x))
