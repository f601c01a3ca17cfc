"""Tensor's operators and methods: one-liners standing for the ops of ``minidl.ops``, and the in-place ops.

Read ``minidl/tensor.py`` first (the engine); this file is what makes ``x @ w + b``, ``x.sum(dim=1)`` or
``w -= lr * w.grad`` work on a Tensor. :class:`TensorOperators` is a base class of Tensor holding no
state: every method here goes through Tensor's public state (``data``, ``requires_grad``, ``_version``)
or calls an op, which builds the result (and its graph) with ``Function.__call__``.
"""
import importlib
import numbers

from minidl import autograd, backend


def _ops():
    # The operators stand for the ops in minidl.ops, which in turn build Tensors: the module is looked up
    # when an operator runs, since minidl.ops imports minidl.tensor, which imports this module.
    from minidl import ops
    return ops


def _core():
    # (``from minidl import tensor`` would give the function minidl.tensor(), which shadows the module)
    return importlib.import_module("minidl.tensor")


def _tensor(array):
    """A Tensor (never a Parameter) holding ``array``, outside any graph: comparisons, any, all."""
    return _core().Tensor(array)


class TensorOperators:
    """Python's operators, torch's Tensor methods and in-place ops, for :class:`minidl.Tensor`."""

    def clone(self):
        """A copy of the data that stays in the graph (its gradient flows back to this tensor)."""
        return _ops().clone(self)

    # -- operators (the ops themselves are in minidl.ops) ----------------------------------------
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __pow__(self, exponent):
        return _ops().pow(self, exponent)

    def __rpow__(self, base):
        return _ops().rpow(base, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().neg(self)

    def __pos__(self):
        return self

    def __getitem__(self, index):
        return _ops().getitem(self, index)

    def _compare(self, other, op):
        other = other.data if isinstance(other, TensorOperators) else other
        return _tensor(op(self.data, other))

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.data)

    def any(self, dim=None, keepdim=False):
        """Whether any element (along ``dim``) is non-zero: a bool tensor, as ``torch.Tensor.any``."""
        return _tensor(self.xp.asarray(self.data.any(axis=dim, keepdims=keepdim)))

    def all(self, dim=None, keepdim=False):
        """Whether every element (along ``dim``) is non-zero: a bool tensor, as ``torch.Tensor.all``."""
        return _tensor(self.xp.asarray(self.data.all(axis=dim, keepdims=keepdim)))

    # -- methods (PyTorch names, arguments and defaults) ---------------------------------------------
    def reshape(self, *shape):
        return _ops().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    view = reshape

    def dim(self):
        """The number of dims (``ndim``), as ``torch.Tensor.dim``."""
        return self.data.ndim

    def contiguous(self):
        """This tensor if its data is C-contiguous, else a contiguous copy that stays in the graph."""
        return self if self.data.flags.c_contiguous else _ops().clone(self)

    def expand(self, *sizes):
        """Broadcast to ``sizes`` (-1 keeps a dim), as ``torch.Tensor.expand``."""
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {len(sizes)} sizes given for a tensor with {self.ndim} dims")
        shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
        return _ops().broadcast_to(self, shape)

    def add(self, other, *, alpha=1):
        return _ops().add(self, other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return _ops().sub(self, other if alpha == 1 else other * alpha)

    mul = __mul__
    div = __truediv__
    matmul = __matmul__
    neg = __neg__

    def transpose(self, dim0, dim1):
        """Swap dims ``dim0`` and ``dim1`` (any rank, negative dims allowed), as ``torch.Tensor.transpose``."""
        return _ops().transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _ops().permute(self, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)

    @property
    def T(self):
        """The dims in reverse order (a matrix's transpose)."""
        return _ops().permute(self, tuple(reversed(range(self.ndim))))

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops().flatten(self, start_dim, end_dim)

    def unsqueeze(self, dim):
        return _ops().unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return _ops().squeeze(self, dim)

    def sum(self, dim=None, keepdim=False, **aliases):
        return _ops().sum(self, dim, keepdim, **aliases)

    def mean(self, dim=None, keepdim=False, **aliases):
        return _ops().mean(self, dim, keepdim, **aliases)

    def var(self, dim=None, *, correction=1, keepdim=False, unbiased=None):
        return _ops().var(self, dim, correction=correction, keepdim=keepdim, unbiased=unbiased)

    def std(self, dim=None, *, correction=1, keepdim=False, unbiased=None):
        return _ops().std(self, dim, correction=correction, keepdim=keepdim, unbiased=unbiased)

    def max(self, dim=None, keepdim=False, **aliases):
        """The largest value; with ``dim``, a named tuple ``(values, indices)``; with a tensor, ``maximum``."""
        return _ops().max(self, dim, keepdim, **aliases)

    def min(self, dim=None, keepdim=False, **aliases):
        """The smallest value; with ``dim``, a named tuple ``(values, indices)``; with a tensor, ``minimum``."""
        return _ops().min(self, dim, keepdim, **aliases)

    def amax(self, dim=(), keepdim=False):
        return _ops().amax(self, dim, keepdim)

    def amin(self, dim=(), keepdim=False):
        return _ops().amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _ops().argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _ops().argmin(self, dim, keepdim)

    def exp(self):
        return _ops().exp(self)

    def log(self):
        return _ops().log(self)

    def sqrt(self):
        return _ops().sqrt(self)

    def abs(self):
        return _ops().abs(self)

    def pow(self, exponent):
        return _ops().pow(self, exponent)

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's argument names
        return _ops().clamp(self, min, max)

    clip = clamp

    # -- in-place ops ------------------------------------------------------------------------------
    # They change ``data`` itself (aliases made by detach() see the change). Autograd allows that only where
    # no graph can need the old value: under ``no_grad()`` (the manual SGD step
    # ``with minidl.no_grad(): w -= lr * w.grad``), or on tensors that take no part in a graph. A later
    # backward through a Function that saved an array changed this way is refused (see ``_version``).
    # While gradients are recorded, the methods (add_, mul_, ...) refuse a tensor that requires grad, and
    # the operators (+=, -=, *=, /=) on a tensor that is not a leaf compute the out-of-place result and
    # rebind the name (``out += identity`` in a residual block works as in PyTorch); unlike PyTorch, other
    # references to the old tensor keep the old value.
    def _check_inplace(self, op, *others):
        if not autograd.is_grad_enabled():
            return
        if self.requires_grad or any(isinstance(o, TensorOperators) and o.requires_grad for o in others):
            which = "a leaf tensor that requires grad" if self.is_leaf else "a tensor that autograd records"
            raise RuntimeError(
                f"{op}: {which} cannot be changed in place while gradients are recorded: backward may need "
                f"its old value. Update parameters under `with minidl.no_grad():`, or write the out-of-place "
                f"form (y = y + x) inside a model")

    def _inplace(self, op, ufunc, other):
        self._check_inplace(op, other)
        value = other.data if isinstance(other, TensorOperators) else other
        if isinstance(value, numbers.Number) and self.dtype.kind == "f":
            value = self.dtype.type(value)
        try:
            ufunc(self.data, value, out=self.data)
        except (TypeError, ValueError) as err:
            shape = getattr(value, "shape", ())
            raise type(err)(f"{op}: cannot update a tensor of shape {self.shape} and dtype {self.dtype} in place "
                            f"with a value of shape {tuple(shape)} and dtype "
                            f"{getattr(value, 'dtype', type(value).__name__)}: {err}") from None
        self._version[0] += 1
        return self

    def _augmented(self, op, ufunc, out_of_place, other):
        recorded = autograd.is_grad_enabled() and (
            self.requires_grad or (isinstance(other, TensorOperators) and other.requires_grad))
        if recorded and not (self.is_leaf and self.requires_grad):
            return out_of_place(self, other)
        return self._inplace(op, ufunc, other)

    def __iadd__(self, other):
        return self._augmented("+=", self.xp.add, _ops().add, other)

    def __isub__(self, other):
        return self._augmented("-=", self.xp.subtract, _ops().sub, other)

    def __imul__(self, other):
        return self._augmented("*=", self.xp.multiply, _ops().mul, other)

    def __itruediv__(self, other):
        return self._augmented("/=", self.xp.true_divide, _ops().div, other)

    def add_(self, other, *, alpha=1):
        """``self += alpha * other`` in place."""
        return self._inplace("add_", self.xp.add, other if alpha == 1 else other * alpha)

    def sub_(self, other, *, alpha=1):
        """``self -= alpha * other`` in place."""
        return self._inplace("sub_", self.xp.subtract, other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return self._inplace("mul_", self.xp.multiply, other)

    def div_(self, other):
        return self._inplace("div_", self.xp.true_divide, other)

    def copy_(self, src):
        """Copy ``src`` (broadcast to this shape, cast to this dtype) into this tensor's data."""
        self._check_inplace("copy_", src)
        value = backend.as_device_array(_core()._as_array(src), self.device)
        try:
            self.data[...] = self.xp.broadcast_to(value, self.shape)
        except ValueError:
            raise ValueError(f"copy_: a source of shape {tuple(value.shape)} does not broadcast to {self.shape}") from None
        self._version[0] += 1
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        self.data.fill(value)
        self._version[0] += 1
        return self

    def zero_(self):
        return self.fill_(0)

    def clamp_(self, min=None, max=None):  # noqa: A002 - torch's argument names
        self._check_inplace("clamp_")
        if min is None and max is None:
            raise ValueError("clamp_: at least one of min and max must be given")
        self.xp.clip(self.data, min, max, out=self.data)
        self._version[0] += 1
        return self
