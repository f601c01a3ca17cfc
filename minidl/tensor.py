"""Tensor and Function: the define-by-run core.

A :class:`Tensor` wraps a NumPy or CuPy array. Calling a :class:`Function` on tensors runs its
``forward`` on their arrays and, when gradients are wanted, links the result back to the Function so
that :meth:`Tensor.backward` can run each ``backward`` in reverse order (see ``minidl.autograd``).

The elementary ops that Tensor's operators stand for (add, mul, matmul, sum, reshape, indexing, ...)
are defined in ``minidl.ops``; everything else lives in ``minidl.functions``.
"""
import weakref

import numpy as np

from minidl import autograd, backend


def _as_array(data, dtype=None):
    """Turn Python data or an array into an array; Python floats become float32 (the default dtype)."""
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_gpu_array(data) or isinstance(data, np.ndarray):
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    array = np.asarray(data)
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if array.dtype == np.float64 and not isinstance(data, np.floating):
        return array.astype(np.float32)  # Python floats and lists of them: float32, like torch.tensor
    if array.dtype.kind not in "biuf":
        raise TypeError(f"tensor: cannot make a tensor from data of type {type(data).__name__} (dtype {array.dtype})")
    return array


class Tensor:
    """An n-dimensional array that can record the ops applied to it and backpropagate through them.

    >>> x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.numpy()
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __array_priority__ = 1000  # so `ndarray + Tensor` dispatches to Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.creator = None
        self._retain_grad = False
        self.requires_grad = requires_grad

    # -- autograd ------------------------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self._requires_grad = bool(flag)

    @property
    def is_leaf(self):
        return self.creator is None

    def backward(self, gradient=None, retain_graph=False):
        """Backpropagate from this tensor; leaf gradients accumulate into ``.grad``."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph "
                               "(was it computed under no_grad(), or from tensors without requires_grad?)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: a gradient can be created implicitly only for a single-element "
                                   f"tensor, this one has shape {self.shape}; pass gradient=")
            grad = self.xp.ones_like(self.data)
        else:
            grad = backend.as_device_array(_as_array(gradient, self.dtype), self.device)
            if grad.shape != self.shape:
                raise ValueError(f"backward: gradient has shape {grad.shape}, expected {self.shape}")
        autograd.run_backward(self, grad, retain_graph=retain_graph)

    def _accumulate_grad(self, g):
        if self.grad is None:
            self.grad = Tensor(g)
        else:
            self.grad = Tensor(self.grad.data + g)

    def retain_grad(self):
        """Keep ``.grad`` on a non-leaf tensor after backward (leaves always keep theirs)."""
        self._retain_grad = True
        return self

    def requires_grad_(self, flag=True):
        """Set ``requires_grad`` in place (on a leaf) and return the tensor, as in PyTorch."""
        if self.creator is not None and not flag:
            raise RuntimeError("requires_grad_: only a leaf tensor's flag can be switched off; use .detach()")
        self.requires_grad = flag
        return self

    def detach(self):
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    # -- array facts ---------------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def xp(self):
        return backend.get_array_module(self.data)

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a single-element tensor converts to a Python number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        return backend.as_device_array(self.data, "cpu")

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        """Move to 'cpu' or 'gpu' and/or cast; differentiable, like ``torch.Tensor.to``."""
        from minidl import ops
        out = self
        if device is not None and backend.normalize_device(device) != self.device:
            out = ops.to_device(out, device)
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = ops.astype(out, dtype)
        return out

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(", threshold=60)
        extras = [] if self.dtype == np.float32 else [f"dtype={self.dtype}"]
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn={self.creator.name}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    __hash__ = object.__hash__

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
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

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

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())

    # -- methods (PyTorch names) ---------------------------------------------------------------------
    def reshape(self, *shape):
        return _ops().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    view = reshape

    def transpose(self, *dims):
        """``x.transpose(d0, d1)`` swaps two dims (PyTorch); a full permutation or no argument also works."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if len(dims) == 2 and self.ndim != 2:
            axes = list(range(self.ndim))
            axes[dims[0]], axes[dims[1]] = axes[dims[1]], axes[dims[0]]
            dims = axes
        return _ops().transpose(self, dims or None)

    def permute(self, *dims):
        return _ops().transpose(self, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)

    @property
    def T(self):
        return _ops().transpose(self, None)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops().flatten(self, start_dim, end_dim)

    def sum(self, axis=None, keepdims=False, dim=None):
        return _ops().sum(self, axis if dim is None else dim, keepdims)

    def mean(self, axis=None, keepdims=False, dim=None):
        return _ops().mean(self, axis if dim is None else dim, keepdims)

    def max(self, axis=None, keepdims=False, dim=None):
        return _ops().max(self, axis if dim is None else dim, keepdims)

    def min(self, axis=None, keepdims=False, dim=None):
        return _ops().min(self, axis if dim is None else dim, keepdims)

    def argmax(self, axis=None, dim=None):
        return Tensor(self.data.argmax(axis=axis if dim is None else dim))

    def argmin(self, axis=None, dim=None):
        return Tensor(self.data.argmin(axis=axis if dim is None else dim))

    def exp(self):
        return _ops().exp(self)

    def log(self):
        return _ops().log(self)

    def sqrt(self):
        return _ops().sqrt(self)

    def abs(self):
        return _ops().abs(self)


def _ops():
    # Tensor's operators stand for the ops in minidl.ops, which in turn build Tensors: the module is
    # looked up when an operator runs, since each of the two modules needs the other.
    from minidl import ops
    return ops


class Parameter(Tensor):
    """A tensor that is a learnable parameter: ``requires_grad`` is on, and ``nn.Module`` registers it."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Function:
    """An op with a forward and a backward on arrays.

    Subclasses implement ``forward(*arrays)`` returning an array (or a tuple of arrays) and
    ``backward(*grads)`` returning one gradient array per input (``None`` where there is none). One body
    serves NumPy and CuPy: use ``self.xp`` (the inputs' array module) instead of ``np``. Save what
    backward needs as attributes of ``self``; they are freed after backward.
    """

    def __call__(self, *inputs):
        tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
        arrays = [t.data for t in tensors]
        self.xp = xp = backend.get_array_module(*arrays)
        if xp is not np and not all(backend.is_gpu_array(a) for a in arrays):
            devices = ", ".join(t.device for t in tensors)
            raise RuntimeError(f"{self.name}: inputs are on different devices ({devices}); move them with .to()")
        outputs = self.forward(*arrays)
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        needs_grad = autograd.is_grad_enabled() and any(t._requires_grad for t in tensors)
        results = [Tensor(y, requires_grad=needs_grad and y.dtype.kind == "f") for y in outputs]
        if needs_grad:
            self.inputs = tensors
            self.generation = max(t.creator.generation if t.creator is not None else 0 for t in tensors) + 1
            self.outputs = [weakref.ref(r) for r in results]
            self.output_meta = [(y.shape, y.dtype) for y in outputs]
            for r in results:
                if r.requires_grad:
                    r.creator = self
        return results[0] if len(results) == 1 else tuple(results)

    @property
    def name(self):
        return type(self).__name__

    def forward(self, *xs):
        raise NotImplementedError(f"{self.name} must implement forward")

    def backward(self, *gys):
        raise NotImplementedError(f"{self.name} has no backward: it is not differentiable")

    def release(self):
        """Drop saved arrays and input references once backward has run."""
        generation = self.generation
        self.__dict__.clear()
        self.generation = generation
        self.inputs = None
