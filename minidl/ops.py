"""Elementary differentiable ops: the ones Tensor's operators and methods stand for.

Each op is a Function class and a lowercase wrapper side by side. Binary ops broadcast like NumPy; their
backward "un-broadcasts" the gradient with :func:`sum_to`, summing over the axes that were broadcast.
"""
import builtins
import numbers

import numpy as np

from minidl import backend
from minidl.kernels import threads
from minidl.tensor import Function, MaxMinResult, Tensor


def sum_to(g, shape):
    """Sum ``g`` down to ``shape``: the adjoint of broadcasting ``shape`` up to ``g.shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


class SumTo(Function):
    """``sum_to`` as a differentiable op (the adjoint of broadcasting): what broadcasting ops' second-order
    gradients are made of."""
    saves_arrays = False

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return sum_to(x, self.shape)

    def backward(self, gy):
        return self.xp.broadcast_to(gy, self.x_shape).copy()

    def backward_graph(self, gy):
        return broadcast_to(gy, self.x_shape)


def sum_to_size(x, shape):
    """Sum ``x`` down to ``shape`` (over the dims broadcasting would add), as ``torch.Tensor.sum_to_size``."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


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
    saves_arrays = False
    keeps_inputs = False     # its backward needs shapes only: a batch-norm output it read is not kept

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        if type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype:
            return threads.elementwise(np.add, np.empty(a.shape, a.dtype), a, b)   # on minidl's threads
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.a_shape), sum_to(gy, self.b_shape)

    def backward_graph(self, gy):
        return sum_to_size(gy, self.a_shape), sum_to_size(gy, self.b_shape)


def add(a, b):
    return Add()(*_binary(a, b))


class Sub(Function):
    saves_arrays = False

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.a_shape), sum_to(-gy, self.b_shape)

    def backward_graph(self, gy):
        return sum_to_size(gy, self.a_shape), sum_to_size(neg(gy), self.b_shape)


def sub(a, b):
    return Sub()(*_binary(a, b))


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        # An input that needs no gradient (a constant factor, the images) gets none: each is a full pass
        # over gy and a reduction (the faithful LeNet-5's step: 18 muls, 2.2 -> 1.1 ms of backward).
        a_in, b_in = self.inputs
        return (sum_to(gy * self.b, self.a.shape) if a_in.requires_grad else None,
                sum_to(gy * self.a, self.b.shape) if b_in.requires_grad else None)

    def backward_graph(self, gy):
        a, b = self.inputs
        return sum_to_size(mul(gy, b), a.shape), sum_to_size(mul(gy, a), b.shape)


def mul(a, b):
    return Mul()(*_binary(a, b))


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        return (sum_to(ga, self.a.shape) if self.inputs[0].requires_grad else None,
                sum_to(-ga * self.a / self.b, self.b.shape) if self.inputs[1].requires_grad else None)

    def backward_graph(self, gy):
        a, b = self.inputs
        ga = div(gy, b)
        return sum_to_size(ga, a.shape), sum_to_size(neg(div(mul(ga, a), b)), b.shape)


def div(a, b):
    return Div()(*_binary(a, b))


class Neg(Function):
    saves_arrays = False

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy

    def backward_graph(self, gy):
        return neg(gy)


def neg(x):
    return Neg()(x)


class Pow(Function):
    """x ** c for a constant exponent c. The gradient c x^(c-1) is 0 where c = 0 (x^0 is constant, also at
    x = 0, where the formula would give 0 * inf), as in PyTorch."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        self.x = x
        return x ** self.c

    def backward(self, gy):
        if self.c == 0:
            return self.xp.zeros_like(gy)
        return gy * self.c * self.x ** (self.c - 1)

    def backward_graph(self, gy):
        if self.c == 0:
            return mul(gy, 0.0)
        x, = self.inputs
        return mul(mul(gy, float(self.c)), pow(x, self.c - 1))


class PowTensor(Function):
    """a ** b with both differentiable, with PyTorch's values at the edges:

        d/da = b a^(b-1), taken as 0 where b = 0;   d/db = a^b log(a), taken as 0 where a = 0 and b >= 0
        (the limit), and NaN for a < 0 (a^b is not real-differentiable in b there).

    Second order: the same formulas as ops, each edge's 0 kept by KeepWhere, whose gradient is 0 there too
    (as torch.where in PyTorch's pow_backward): at b = 0 exactly, d/db of the gradient in a is 0.
    """
    keeps_output = True      # backward_graph differentiates through output_tensor()

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        xp, a, b = self.xp, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = xp.where(b == 0, 0, gy * b * a ** (b - 1))
            gb = xp.where((a == 0) & (b >= 0), 0, gy * self.y * xp.log(a))
        return sum_to(ga.astype(gy.dtype, copy=False), a.shape), sum_to(gb.astype(gy.dtype, copy=False), b.shape)

    def backward_graph(self, gy):   # KeepWhere, not a multiplication by a mask: 0 * inf would be NaN
        a, b = self.inputs
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = KeepWhere(b.data != 0)(gy * b * pow(a, b - 1.0))
            gb = KeepWhere(~((a.data == 0) & (b.data >= 0)))(gy * self.output_tensor() * log(a))
        return sum_to_size(ga, a.shape), sum_to_size(gb, b.shape)


class KeepWhere(Function):
    """``x`` where ``keep`` (a constant bool array broadcasting to x) is true, 0 elsewhere, without
    computing 0 * x (which is NaN for an infinite x): ``torch.where(keep, x, 0)``."""
    saves_arrays = False

    def __init__(self, keep):
        self.keep = keep

    def forward(self, x):
        return self.xp.where(self.keep, x, x.dtype.type(0))

    backward = forward

    def backward_graph(self, gy):
        return KeepWhere(self.keep)(gy)


def constant_like(mask, like):
    """A constant Tensor (no gradient) from an array or mask, in ``like``'s dtype: a mask, slope or weight
    inside a second-order gradient (``backward_graph``)."""
    return Tensor(mask.astype(like.dtype, copy=False))


class RecordedThrough(Function):
    """y = g, recorded as a function of g and of ``xs`` with a zero derivative in each x (see ``through``)."""
    saves_arrays = False

    def forward(self, g, *xs):
        return g.copy()

    def backward(self, gy):
        return (gy, *(self.xp.zeros(x.shape, x.dtype) for x in self.inputs[1:]))

    def backward_graph(self, gy):
        return (gy, *(Tensor(self.xp.zeros(x.shape, x.dtype)) for x in self.inputs[1:]))


def through(g, *xs):
    """The gradient ``g`` of a piecewise-linear op, recorded as depending on its input(s) ``xs``, whose only
    influence was a piecewise-constant mask (relu's x > 0, max pooling's switches): differentiating it
    again gives zeros in x, as PyTorch records it (ThresholdBackwardBackward0, MaxPool2DWithIndicesBackward-
    Backward0, ...), instead of "does not require grad" or a None ``.grad``."""
    return RecordedThrough()(g, *xs)


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

    def backward_graph(self, gy):
        a, b = self.inputs
        a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
        b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        gy = reshape(gy, batch + (a2.shape[-2], b2.shape[-1]))
        ga = reshape(sum_to_size(matmul(gy, transpose(b2, -1, -2)), a2.shape), a.shape)
        gb = reshape(sum_to_size(matmul(transpose(a2, -1, -2), gy), b2.shape), b.shape)
        return ga, gb


def matmul(a, b):
    a, b = _binary(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    return MatMul()(a, b)


class Exp(Function):
    keeps_output = True      # backward_graph differentiates through output_tensor()

    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y

    def backward_graph(self, gy):
        return mul(gy, self.output_tensor())


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

    def backward_graph(self, gy):
        return div(gy, self.inputs[0])


def log(x):
    x = as_tensor(x)
    require_float("log", x)
    return Log()(x)


class Sqrt(Function):
    keeps_output = True      # backward_graph differentiates through output_tensor()

    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)

    def backward_graph(self, gy):
        return div(gy, mul(self.output_tensor(), 2.0))


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

    def backward_graph(self, gy):   # sign(x) is a constant: the second derivative is 0 (a.e.), recorded as torch
        return through(mul(gy, constant_like(self.xp.sign(self.x), gy)), self.inputs[0])


def abs(x):  # noqa: A001 - mirrors torch.abs
    return Abs()(as_tensor(x))


def _dim_argument(op, dim, keepdim, aliases):
    """PyTorch's ``dim`` / ``keepdim``, also accepting NumPy's ``axis`` / ``keepdims`` (as torch does)."""
    unknown = set(aliases) - {"axis", "keepdims"}
    if unknown:
        raise TypeError(f"{op}: unexpected keyword argument {sorted(unknown)[0]!r}")
    if "axis" in aliases:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or its alias axis, not both")
        dim = aliases["axis"]
    if "keepdims" in aliases:
        keepdim = aliases["keepdims"]
    return dim, bool(keepdim)


def _normalize_axis(axis, ndim, op):
    """``dim`` as a sorted tuple of non-negative axes (None: every axis; an empty tuple too, as in torch)."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    if not axes:
        return None
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {axis!r}")
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise IndexError(f"{op}: dim {a} is out of range for a tensor with {ndim} dims "
                             f"(expected in [{-builtins.max(ndim, 1)}, {builtins.max(ndim, 1) - 1}])")
        out.append(a % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {axis!r} names an axis twice")
    return tuple(sorted(out)) if ndim else None


def _expand_reduced(g, shape, axes):
    """Reshape a reduced gradient so that it broadcasts against the input again."""
    if axes is None:
        return g.reshape((1,) * len(shape))
    kept = list(shape)
    for a in axes:
        kept[a] = 1
    return g.reshape(kept)


def _reduced_count(shape, axes):
    return int(np.prod(shape if axes is None else [shape[a] for a in axes]))


class Sum(Function):
    saves_arrays = False

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return self.xp.asarray(x.sum(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy):
        g = _expand_reduced(gy, self.x_shape, self.axes)
        return self.xp.broadcast_to(g, self.x_shape).copy()

    def backward_graph(self, gy):
        return broadcast_to(_expand_reduced(gy, self.x_shape, self.axes), self.x_shape)


def sum(x, dim=None, keepdim=False, **aliases):  # noqa: A001 - mirrors torch.sum
    """Sum over ``dim`` (an int, a tuple, or None for every element), as ``torch.sum``."""
    x = as_tensor(x)
    dim, keepdim = _dim_argument("sum", dim, keepdim, aliases)
    return Sum(_normalize_axis(dim, x.ndim, "sum"), keepdim)(x)


class Mean(Function):
    saves_arrays = False

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        self.count = _reduced_count(x.shape, self.axes)
        with np.errstate(invalid="ignore", divide="ignore"):   # an empty mean is NaN, as in NumPy and torch
            y = x.sum(axis=self.axes, keepdims=self.keepdims) / x.dtype.type(self.count)
        return self.xp.asarray(y, dtype=x.dtype)

    def backward(self, gy):
        g = _expand_reduced(gy, self.x_shape, self.axes)
        return self.xp.broadcast_to(g / gy.dtype.type(builtins.max(self.count, 1)), self.x_shape).copy()

    def backward_graph(self, gy):
        g = _expand_reduced(gy, self.x_shape, self.axes)
        return broadcast_to(div(g, float(builtins.max(self.count, 1))), self.x_shape)


def mean(x, dim=None, keepdim=False, **aliases):
    """Mean over ``dim``, as ``torch.mean``; the mean of no elements is NaN."""
    x = as_tensor(x)
    require_float("mean", x)
    dim, keepdim = _dim_argument("mean", dim, keepdim, aliases)
    return Mean(_normalize_axis(dim, x.ndim, "mean"), keepdim)(x)


def var(x, dim=None, *, correction=1, keepdim=False, unbiased=None):
    """Variance over ``dim``: sum((x - mean)^2) / (n - correction), as ``torch.var`` (``unbiased=False`` is
    ``correction=0``). With n <= correction the result is inf or NaN, as in torch."""
    x = as_tensor(x)
    require_float("var", x)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = _normalize_axis(dim, x.ndim, "var")
    dof = builtins.max(_reduced_count(x.shape, axes) - correction, 0)
    centered = sub(x, mean(x, axes, keepdim=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        return div(sum(mul(centered, centered), axes, keepdim), float(dof))


def std(x, dim=None, *, correction=1, keepdim=False, unbiased=None):
    """Standard deviation: sqrt(var), as ``torch.std``."""
    return sqrt(var(x, dim, correction=correction, keepdim=keepdim, unbiased=unbiased))


class AMaxMin(Function):
    """max or min over dims; the gradient is shared equally among tied extreme elements (torch.amax)."""

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

    def backward_graph(self, gy):   # a constant share per element: the second derivative is 0 (a.e.)
        mask = self.x == self.y
        share = constant_like(mask / mask.sum(axis=self.axes, keepdims=True), gy)
        return mul(_expand_reduced(gy, self.x.shape, self.axes), share)


def _check_nonempty(op, x, axes):
    if x.numel() == 0 and (axes is None or any(x.shape[a] == 0 for a in axes)):
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {x.shape} over "
                         f"{'all dims' if axes is None else 'dim ' + str(axes)}: the result has no identity")


def amax(x, dim=(), keepdim=False):
    """Largest value over ``dim`` (default: every dim), values only, as ``torch.amax``; ties share the
    gradient equally."""
    x = as_tensor(x)
    axes = _normalize_axis(dim, x.ndim, "amax")
    _check_nonempty("amax", x, axes)
    return AMaxMin(axes, keepdim, True)(x)


def amin(x, dim=(), keepdim=False):
    """Smallest value over ``dim`` (default: every dim), as ``torch.amin``."""
    x = as_tensor(x)
    axes = _normalize_axis(dim, x.ndim, "amin")
    _check_nonempty("amin", x, axes)
    return AMaxMin(axes, keepdim, False)(x)


class MaxMinDim(Function):
    """max or min along one dim with the index of the (first) extreme element; the gradient goes to that
    element alone, as in torch.max(x, dim)."""

    def __init__(self, axis, keepdims, take_max):
        self.axis, self.keepdims, self.take_max = axis, keepdims, take_max

    def forward(self, x):
        xp = self.xp
        self.x_shape = x.shape
        index = (x.argmax if self.take_max else x.argmin)(axis=self.axis, keepdims=True)
        self.index = index
        values = xp.take_along_axis(x, index, axis=self.axis)
        if not self.keepdims:
            values, index = values.squeeze(self.axis), index.squeeze(self.axis)
        return values, index.astype(np.int64)

    def backward(self, gy, g_index):
        g = gy if self.keepdims else self.xp.expand_dims(gy, self.axis)
        return _put_along(self.xp, self.x_shape, self.index, g, self.axis)

    def backward_graph(self, gy, g_index):   # routes through the recorded indices: linear in gy
        g = gy if self.keepdims else unsqueeze(gy, self.axis)
        return PutAlongAxis(self.index, self.axis, self.x_shape)(g)


def _put_along(xp, shape, index, g, axis):
    out = xp.zeros(shape, dtype=g.dtype)
    xp.put_along_axis(out, index, g, axis=axis)
    return out


class PutAlongAxis(Function):
    """Zeros of ``shape`` with ``g`` placed at ``index`` along ``axis`` (one place per slice): the adjoint
    of ``take_along_axis``, which is its gradient (max/min along a dim differentiated twice)."""
    saves_arrays = False

    def __init__(self, index, axis, shape):
        self.index, self.axis, self.shape = index, axis, shape

    def forward(self, g):
        return _put_along(self.xp, self.shape, self.index, g, self.axis)

    def backward(self, gy):
        return self.xp.take_along_axis(gy, self.index, axis=self.axis)

    def backward_graph(self, gy):
        return TakeAlongAxis(self.index, self.axis)(gy)


class TakeAlongAxis(Function):
    """``take_along_axis(x, index, axis)`` with a constant index: PutAlongAxis's gradient."""
    saves_arrays = False

    def __init__(self, index, axis):
        self.index, self.axis = index, axis

    def forward(self, x):
        self.x_shape = x.shape
        return self.xp.take_along_axis(x, self.index, axis=self.axis)

    def backward(self, gy):
        return _put_along(self.xp, self.x_shape, self.index, gy, self.axis)

    def backward_graph(self, gy):
        return PutAlongAxis(self.index, self.axis, self.x_shape)(gy)


def _max_min(op, take_max, x, dim, keepdim, aliases):
    x = as_tensor(x)
    if isinstance(dim, Tensor):
        if aliases or keepdim:
            raise TypeError(f"{op}: with a tensor as second argument, {op} is elementwise and takes no other arguments")
        return maximum(x, dim) if take_max else minimum(x, dim)
    dim, keepdim = _dim_argument(op, dim, keepdim, aliases)
    if dim is None:
        _check_nonempty(op, x, None)
        return AMaxMin(None, False, take_max)(x)
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int (use a{op} to reduce several dims), got {dim!r}")
    axis = _normalize_axis(dim, x.ndim, op)
    if axis is None:    # a 0-d tensor: itself, at index 0
        return MaxMinResult(*MaxMinDim(0, False, take_max)(reshape(x, (1,))))
    _check_nonempty(op, x, axis)
    return MaxMinResult(*MaxMinDim(axis[0], keepdim, take_max)(x))


def max(x, dim=None, keepdim=False, **aliases):  # noqa: A001 - mirrors torch.max
    """As ``torch.max``: ``max(x)`` the largest value (ties share the gradient); ``max(x, dim)`` a named
    tuple ``(values, indices)`` along ``dim`` (the gradient goes to the index); ``max(x, other)`` the
    elementwise maximum."""
    return _max_min("max", True, x, dim, keepdim, aliases)


def min(x, dim=None, keepdim=False, **aliases):  # noqa: A001 - mirrors torch.min
    """As ``torch.min``: see :func:`max`."""
    return _max_min("min", False, x, dim, keepdim, aliases)


def argmax(x, dim=None, keepdim=False):
    """Index of the (first) largest value: over the flattened tensor, or along ``dim`` (int64)."""
    x = as_tensor(x)
    return _arg_extreme("argmax", x.data.argmax, x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    """Index of the (first) smallest value, as :func:`argmax`."""
    x = as_tensor(x)
    return _arg_extreme("argmin", x.data.argmin, x, dim, keepdim)


def _arg_extreme(op, reduce, x, dim, keepdim):
    axes = None if dim is None else _normalize_axis(dim, x.ndim, op)
    _check_nonempty(op, x, axes)
    if axes is None:
        index = reduce()
        if keepdim and dim is None and x.ndim:
            return Tensor(x.xp.asarray(index, dtype=np.int64).reshape((1,) * x.ndim))
        return Tensor(x.xp.asarray(index, dtype=np.int64))
    return Tensor(x.xp.asarray(reduce(axis=axes[0], keepdims=keepdim), dtype=np.int64))


class Maximum(Function):
    """Elementwise max or min of two tensors; where they are equal each gets half the gradient (torch)."""

    def __init__(self, take_max):
        self.take_max = take_max

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.xp.maximum(a, b) if self.take_max else self.xp.minimum(a, b)

    def backward(self, gy):
        a_wins = (self.a > self.b) if self.take_max else (self.a < self.b)
        tie = self.a == self.b
        wa, wb = self._weights()
        return sum_to(gy * wa.astype(gy.dtype), self.a.shape), sum_to(gy * wb.astype(gy.dtype), self.b.shape)

    def _weights(self):
        a_wins = (self.a > self.b) if self.take_max else (self.a < self.b)
        tie = self.a == self.b
        return a_wins + 0.5 * tie, (~a_wins & ~tie) + 0.5 * tie

    def backward_graph(self, gy):   # constant weights: the second derivative is 0 (a.e.)
        wa, wb = self._weights()
        a, b = self.inputs
        return sum_to_size(mul(gy, constant_like(wa, gy)), a.shape), sum_to_size(mul(gy, constant_like(wb, gy)), b.shape)


def maximum(a, b):
    return Maximum(True)(*_binary(a, b))


def minimum(a, b):
    return Maximum(False)(*_binary(a, b))


class Clamp(Function):
    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        self.x = x
        return self.xp.clip(x, self.low, self.high)

    def backward(self, gy):
        return gy * self._inside()

    def _inside(self):
        inside = self.xp.ones(self.x.shape, dtype=bool)    # strictly inside, as torch: 0 at a bound itself
        if self.low is not None:
            inside &= self.x > self.low
        if self.high is not None:
            inside &= self.x < self.high
        return inside

    def backward_graph(self, gy):   # the second derivative is 0 (a.e.)
        return KeepWhere(self._inside())(gy)


def clamp(x, min=None, max=None):  # noqa: A002 - torch's argument names
    """Limit values to [min, max] (either may be None); the gradient passes where min < x < max (as in
    torch: a value exactly at a bound gets none)."""
    x = as_tensor(x)
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not isinstance(bound, numbers.Real):
            raise TypeError(f"clamp: {name} must be a number or None, got {type(bound).__name__}")
    return Clamp(min, max)(x)


clip = clamp


class Clone(Function):
    saves_arrays = False

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy

    def backward_graph(self, gy):
        return gy


def clone(x):
    return Clone()(as_tensor(x))


class Reshape(Function):
    saves_arrays = False

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.x_shape)

    def backward_graph(self, gy):
        return reshape(gy, self.x_shape)


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


class Permute(Function):
    saves_arrays = False

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(tuple(int(a) for a in np.argsort(self.axes)))

    def backward_graph(self, gy):
        return permute(gy, tuple(int(a) for a in np.argsort(self.axes)))


def _dim(op, dim, ndim):
    n = builtins.max(ndim, 1)
    if not isinstance(dim, numbers.Integral) or not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim!r} is out of range for a tensor with {ndim} dims "
                         f"(expected an int in [{-n}, {n - 1}])")
    return int(dim) % n


def permute(x, dims):
    """Reorder the dims: ``permute(x, (0, 2, 3, 1))`` turns N x C x H x W into N x H x W x C."""
    x = as_tensor(x)
    axes = tuple(_dim("permute", d, x.ndim) for d in dims) if x.ndim else ()
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of the {x.ndim} dims of {x.shape}")
    return x if axes == tuple(range(x.ndim)) else Permute(axes)(x)


def transpose(x, dim0, dim1):
    """Swap two dims (any rank, negative dims allowed), as ``torch.transpose``."""
    x = as_tensor(x)
    axes = list(range(x.ndim))
    if x.ndim == 0:
        _dim("transpose", dim0, 0), _dim("transpose", dim1, 0)
        return x
    d0, d1 = _dim("transpose", dim0, x.ndim), _dim("transpose", dim1, x.ndim)
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return permute(x, axes)


def unsqueeze(x, dim):
    """Insert a dim of size 1 at ``dim`` (in [-ndim - 1, ndim])."""
    x = as_tensor(x)
    d = _dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def squeeze(x, dim=None):
    """Drop dims of size 1: all of them, or those of ``dim`` (an int or a tuple) that have size 1."""
    x = as_tensor(x)
    if dim is None:
        drop = {i for i, n in enumerate(x.shape) if n == 1}
    else:
        dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
        drop = {d for d in (_dim("squeeze", d, x.ndim) for d in dims) if x.ndim and x.shape[d] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


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
    saves_arrays = False

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

    def backward_graph(self, gy):
        return IndexScatter(self.index, self.x_shape)(gy)


class IndexScatter(Function):
    """The adjoint of ``x[index]``: zeros of ``shape`` with ``g`` added at ``index`` (GetItem's gradient as
    a differentiable op; its own gradient is the indexing again)."""
    saves_arrays = False
    forward = GetItem.backward

    def __init__(self, index, shape):
        self.index, self.x_shape = index, shape

    def backward(self, gy):
        return self.xp.asarray(gy[self.index])

    def backward_graph(self, gy):
        return GetItem(self.index)(gy)


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
    saves_arrays = False

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return self.xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.x_shape)

    def backward_graph(self, gy):
        return sum_to_size(gy, self.x_shape)


def broadcast_to(x, shape):
    x = as_tensor(x)
    return x if x.shape == tuple(shape) else BroadcastTo(tuple(shape))(x)


class ToDevice(Function):
    saves_arrays = False

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.as_device_array(x, self.device)

    def backward(self, gy):
        return backend.as_device_array(gy, self.source)

    def backward_graph(self, gy):
        return to_device(gy, self.source)


def to_device(x, device):
    return ToDevice(backend.normalize_device(device))(as_tensor(x))


class AsType(Function):
    saves_arrays = False

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.x_dtype)

    def backward_graph(self, gy):
        return astype(gy, self.x_dtype)


def astype(x, dtype):
    return AsType(dtype)(as_tensor(x))
