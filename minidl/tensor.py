"""Tensor and Function: the define-by-run engine, readable in one sitting.

Reading order:

1. :class:`Tensor` (below): an array (``data``) and what autograd keeps beside it: ``requires_grad``, the
   ``creator`` Function that produced it (None for a leaf), ``.grad``. ``backward()`` hands the tensor to
   ``minidl.autograd.run_backward``.
2. :meth:`Function.__call__` (below): runs ``forward`` on the inputs' arrays and, when gradients are
   wanted, links each output to the Function (``creator``) and the Function to its inputs: the graph.
3. ``minidl.autograd.run_backward``: visits the Functions from the newest back, calling each one's
   ``backward`` on the arrays of its outputs' gradients (``backward_graph`` on Tensors when the backward
   pass is itself recorded, ``create_graph=True``), and hands each leaf its gradient.
4. An op, e.g. ``minidl.ops.Mul``: ``forward(a, b)`` returns ``a * b``, ``backward(gy)`` returns
   ``(gy * b, gy * a)``.

The contract between the two modules: autograd reads a tensor's ``creator``, ``requires_grad`` and
``retains_grad`` and writes gradients only through :meth:`Tensor.accumulate_grad`; it reads a Function's
``inputs``, ``outputs`` (weak references), ``output_meta``, ``generation`` and ``sequence`` and calls its
``check_versions``, ``backward`` / ``backward_graph``, ``zero_grad_output`` and ``release``. Nothing else.

Tensor's operators and methods (``x + y``, ``x.sum(1)``, ``w -= lr * g``, ...) are one-liners in
``minidl/_tensor_ops.py`` standing for the ops of ``minidl.ops``; everything else is in ``minidl.functions``.
"""
import collections
import itertools
import numbers
import weakref

import numpy as np

from minidl import autograd, backend
from minidl._tensor_ops import TensorOperators, _ops

# Functions are numbered as they are created: backprop breaks ties between Functions of the same generation
# by this number, so the order in which gradient contributions are summed (and so every rounding) is the
# same in every run. Ordering by id() (a memory address) made GoogLeNet and FractalNet training differ
# from run to run under the same seed.
_function_counter = itertools.count()

# What ``max(dim=...)`` / ``min(dim=...)`` return, as ``torch.return_types.max``: ``values, indices``.
MaxMinResult = collections.namedtuple("MaxMinResult", ["values", "indices"])


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


class Tensor(TensorOperators):
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
        self._grad = None
        self.creator = None
        self.retains_grad = False     # keep .grad on a non-leaf (retain_grad()); the engine reads it
        # Bumped by every in-place op on ``data``; shared with ``detach()``ed aliases of the same array, so
        # backward can refuse a gradient computed from an array that was changed after the forward pass.
        self._version = [0]
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

    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Backpropagate from this tensor; leaf gradients accumulate into ``.grad``, as ``torch.Tensor.backward``.

        ``create_graph=True`` records the backward pass itself as a graph, so that the gradients (Tensors
        with a creator) can be differentiated again; ``retain_graph`` defaults to ``create_graph``, and
        without it the graph is freed as backward goes (a second backward through it raises).
        """
        if retain_graph is None:
            retain_graph = create_graph
        grad = _root_gradient("backward", 0, self, gradient, create_graph)
        autograd.run_backward(self, grad, retain_graph=retain_graph, create_graph=create_graph)

    @property
    def grad(self):
        """The gradient accumulated by backward (a Tensor that owns its memory), or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad: expected a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape or value.dtype != self.dtype or value.device != self.device:
                raise ValueError(f"grad: the assigned gradient has shape {value.shape}, dtype {value.dtype} on "
                                 f"{value.device}; this tensor has shape {self.shape}, dtype {self.dtype} on "
                                 f"{self.device}")
        self._grad = value

    def accumulate_grad(self, g):
        """Add the gradient ``g`` into ``.grad``: the engine's (``minidl.autograd``) one way to write it.

        ``g`` is an array (first-order backward) or a Tensor (``create_graph=True``). An array is copied the
        first time: backward hands the same array to several inputs (x + y gives both the output's gradient)
        and the caller's own array to the root, and a leaf's .grad must not alias any of them; later ones
        are added in place, as PyTorch does. A Tensor is cloned, later ones added out of place, both
        recorded (PyTorch too), so that ``.grad`` stays differentiable.
        """
        if isinstance(g, Tensor):
            self._grad = _ops().clone(g) if self._grad is None else self._grad + g
        elif self._grad is None:
            self._grad = Tensor(g.copy())
        else:
            self._grad.data += g
            self._grad._version[0] += 1

    def retain_grad(self):
        """Keep ``.grad`` on a non-leaf tensor after backward (leaves always keep theirs)."""
        self.retains_grad = True
        return self

    def requires_grad_(self, flag=True):
        """Set ``requires_grad`` in place (on a leaf) and return the tensor, as in PyTorch."""
        if self.creator is not None and not flag:
            raise RuntimeError("requires_grad_: only a leaf tensor's flag can be switched off; use .detach()")
        self.requires_grad = flag
        return self

    def detach(self):
        """A tensor sharing this one's data (in-place changes show in both), cut from the graph."""
        out = Tensor(self.data)
        out._version = self._version
        return out

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

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of a single element can be converted to an index, got dtype {self.dtype}")
        return int(self.item())

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
        """As PyTorch prints: values, then what differs from the defaults (float32 or int64, cpu, no grad):
        ``tensor([[1., 2.]], dtype=float64, device='gpu', grad_fn=<Mul>)``. PyTorch shows the size only
        of an empty tensor; here ``shape=`` also follows values elided with ``...`` (over 60 elements).
        Four digits after the point, as PyTorch's default print precision."""
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(", threshold=60, precision=4)
        extras = [f"shape={tuple(self.shape)}"] if self.data.size == 0 or self.data.size > 60 else []
        if self.dtype not in (np.float32, np.int64):
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn=<{self.creator.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    __hash__ = object.__hash__


class Parameter(Tensor):
    """A tensor that is a learnable parameter: ``requires_grad`` is on, and ``nn.Module`` registers it."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def _zeros_view(xp, shape, dtype):
    """A read-only array of zeros of ``shape`` that takes no memory: one element, every stride 0 (for NumPy
    built directly, 2.5x faster than ``broadcast_to``: backward makes one for every freed output)."""
    if xp is np:
        array = np.ndarray(shape, dtype, buffer=np.zeros(1, dtype), strides=(0,) * len(shape))
        array.flags.writeable = False
        return array
    return xp.broadcast_to(xp.zeros((), dtype=dtype), shape)


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
            # An input made by another Function is held through that Function (creator, output index) when
            # this one's backward reads none of its inputs' arrays (keeps_inputs False): the array is freed
            # with its last other reference (a ReLU does not keep the batch-norm output it read alive).
            self._inputs = tensors if self.keeps_inputs else [
                t if t.creator is None or t.creator.keeps_output else (t.creator, t.creator.outputs_index(t))
                for t in tensors]
            self.generation = max(t.creator.generation if t.creator is not None else 0 for t in tensors) + 1
            self.sequence = next(_function_counter)
            self.outputs = [weakref.ref(r) for r in results]
            self.output_meta = [(y.shape, y.dtype) for y in outputs]
            if self.saves_arrays:
                self.versions = [(t._version, t._version[0]) for t in tensors + results]
            for r in results:
                if r.requires_grad:
                    r.creator = self
        return results[0] if len(results) == 1 else tuple(results)

    # Whether backward reads arrays of the inputs or outputs (saved in forward). Ops whose backward needs
    # only shapes (add, reshape, indexing, ...) say False, so that changing an input in place afterwards
    # does not make their backward refuse to run.
    saves_arrays = True
    # Whether this Function holds its input Tensors (and so their arrays) until backward. Ops whose backward
    # and backward_graph read no input array (relu keeps its output, add needs shapes) say False: an input
    # made by another Function is then held through that Function, and ``inputs`` gives the Tensor while it
    # lives, else a stand-in without an array (``output``).
    keeps_inputs = True
    # Whether this Function's backward_graph needs its output Tensor itself (``output_tensor``): then every
    # Function that reads the output holds it, whatever its keeps_inputs.
    keeps_output = False

    @property
    def inputs(self):
        """The input Tensors (None before forward records, and after backward released them)."""
        stored = self.__dict__.get("_inputs")
        if stored is None:
            return None
        return [x if isinstance(x, Tensor) else x[0].output(x[1]) for x in stored]

    @inputs.setter
    def inputs(self, tensors):
        self.__dict__["_inputs"] = tensors

    def outputs_index(self, t):
        """The position of Tensor ``t`` among this Function's outputs."""
        for i, ref in enumerate(self.outputs):
            if ref() is t:
                return i
        raise ValueError(f"{self.name}: the tensor is not one of its outputs")

    def output(self, i, create=True):
        """Output ``i``: the Tensor forward made while it lives, else its stand-in: a Tensor of the same
        shape and dtype, made by this Function, whose array is a read-only broadcast zero (no memory). One
        stand-in an output, so that every Function that read it reaches the same Tensor in backward.
        ``create=False``: None if the output is gone and no stand-in was made."""
        out = self.outputs[i]()
        if out is not None:
            return out
        standins = self.__dict__.setdefault("_standins", {})
        if i not in standins and create:
            shape, dtype = self.output_meta[i]
            standin = Tensor(_zeros_view(self.xp, shape, dtype), requires_grad=True)
            standin.creator = self
            standins[i] = standin
        return standins.get(i)

    def check_versions(self):
        """Refuse to run backward if an array it saved was changed in place after the forward pass."""
        for counter, version in getattr(self, "versions", ()):
            if counter[0] != version:
                raise RuntimeError(
                    f"backward: an array that {self.name} saved for its gradient was changed in place after "
                    f"the forward pass (version {counter[0]}, expected {version}); change a copy instead "
                    f"(x = x.clone()), or do the in-place update after backward()")

    @property
    def name(self):
        return type(self).__name__

    def forward(self, *xs):
        raise NotImplementedError(f"{self.name} must implement forward")

    def backward(self, *gys):
        raise NotImplementedError(f"{self.name} has no backward: it is not differentiable")

    def backward_graph(self, *gys):
        """The gradients as differentiable ops on Tensors, for ``backward(create_graph=True)``.

        ``gys`` are Tensors (one per output; zeros where an output got no gradient), ``self.inputs`` the
        input Tensors; arrays saved in forward may serve as constants. Returns one Tensor (or None) per
        input, computed with minidl ops so that the backward pass is itself recorded as a graph.
        """
        raise NotImplementedError(f"{self.name}: second-order gradients (backward with create_graph=True) "
                                  "are not implemented")

    def output_tensor(self, i=0):
        """The ``i``-th output Tensor, alive while backward runs through this Function (for a
        ``backward_graph`` that needs the forward's result, e.g. exp's y: gx = gy * y)."""
        out = self.outputs[i]()
        if out is None:
            raise RuntimeError(f"{self.name}: output {i} no longer exists; recompute it from self.inputs")
        return out

    def zero_grad_output(self, i, as_tensor=False):
        """Zeros shaped like output ``i``: the gradient of an output that got none (an array, or a Tensor)."""
        shape, dtype = self.output_meta[i]
        zeros = self.xp.zeros(shape, dtype=dtype)
        return Tensor(zeros) if as_tensor else zeros

    def release(self):
        """Drop saved arrays and input references once backward has run."""
        generation, sequence = self.generation, self.sequence
        self.__dict__.clear()
        self.generation, self.sequence = generation, sequence
        self.inputs = None


def _root_gradient(op, k, root, gradient, create_graph):
    """The gradient that backward starts from at ``root`` (the ``k``-th output): ones for a single element,
    else ``gradient`` checked against the root's shape; an array, or a Tensor when ``create_graph``."""
    if not root.requires_grad:
        raise RuntimeError(
            f"{op}: element {k} of the tensors to differentiate does not require grad and has no graph (was it "
            f"computed under no_grad(), from tensors without requires_grad, or is it a gradient computed "
            f"without create_graph=True?)")
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"{op}: a gradient can be created implicitly only for a single-element "
                               f"tensor, this one has shape {root.shape}; pass the gradient explicitly")
        grad = root.xp.ones_like(root.data)
    elif create_graph and isinstance(gradient, Tensor):
        grad = gradient   # kept whole: the new graph runs through it (a gradient penalty's v in J^T v)
    else:
        grad = backend.as_device_array(_as_array(gradient, root.dtype), root.device)
    if grad.shape != root.shape:
        raise ValueError(f"{op}: gradient has shape {tuple(grad.shape)}, expected {root.shape}")
    return Tensor(grad) if create_graph and not isinstance(grad, Tensor) else grad


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, as ``torch.autograd.grad``.

    ``outputs`` and ``inputs`` are a Tensor or a sequence of them; ``grad_outputs`` gives, per output, the
    vector v of the vector-Jacobian product (None: ones, for single-element outputs). Returns a tuple with
    one Tensor per input, sum over the outputs of v^T d output / d input, without touching any ``.grad``.
    ``create_graph=True`` records the computation so the result can be differentiated again (Hessian-vector
    products: ``grad((g * v).sum(), x)`` for ``g, = grad(loss, x, create_graph=True)``); ``retain_graph``
    defaults to ``create_graph``. An input that no output depends on raises, unless ``allow_unused`` (then
    its entry is None, as in PyTorch).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs given for {len(outputs)} outputs")
    for i, t in enumerate(outputs + inputs):
        if not isinstance(t, Tensor):
            which = f"outputs[{i}]" if i < len(outputs) else f"inputs[{i - len(outputs)}]"
            raise TypeError(f"grad: {which} must be a Tensor, got {type(t).__name__}")
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"grad: inputs[{i}] does not require grad (create it with requires_grad=True)")
    if retain_graph is None:
        retain_graph = create_graph
    roots = [_root_gradient("grad", k, y, g, create_graph) for k, (y, g) in enumerate(zip(outputs, grad_outputs))]
    found = autograd.run_backward(outputs, roots, retain_graph=retain_graph, create_graph=create_graph,
                                  inputs=inputs)
    result = []
    for i, g in enumerate(found):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: inputs[{i}] (shape {inputs[i].shape}) was not used to compute the outputs (or the graph "
                               "to it was freed by a backward() without retain_graph); "
                               "pass allow_unused=True to get None for it")
        result.append(g if g is None or isinstance(g, Tensor) else Tensor(g.copy()))
    return tuple(result)
