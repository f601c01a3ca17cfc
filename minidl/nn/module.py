"""``nn.Module``: the base class of every layer and model.

A Module owns three kinds of named members, found by assigning attributes in ``__init__``:

* **parameters**: :class:`minidl.Parameter` tensors, what an optimizer updates;
* **buffers**: tensors that are state but not learned (BatchNorm's running statistics), declared with
  :meth:`Module.register_buffer`;
* **submodules**: other Modules, which makes a model a tree.

>>> class TwoLayer(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.fc1 = nn.Linear(4, 8)     # registered as submodule "fc1"
...         self.fc2 = nn.Linear(8, 2)
...     def forward(self, x):
...         return self.fc2(F.relu(self.fc1(x)))
>>> [name for name, _ in TwoLayer().named_parameters()]
['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']

Every registered member is kept both in its registry (``_parameters``, ``_buffers``, ``_modules``: they
give the order of ``state_dict``) and as a plain instance attribute, so ``self.conv1`` in a forward pass
is an ordinary attribute read, with no ``__getattr__`` fallback. ``__setattr__`` and ``__delattr__`` keep
the two in step; names are PyTorch's, and so are ``state_dict`` keys and their order.
"""
import itertools
import threading
import weakref
from collections import OrderedDict, namedtuple

import numpy as np

from minidl import backend
from minidl.performance import guarded
from minidl.tensor import Parameter, Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_hook_ids = itertools.count()


class RemovableHandle:
    """Returned by ``register_forward_hook`` and friends; ``handle.remove()`` unregisters the hook.

    Also a context manager: ``with model.fc.register_forward_hook(h): model(x)``.
    """

    def __init__(self, hooks):
        self._hooks = weakref.ref(hooks)
        self.id = next(_hook_ids)

    def remove(self):
        hooks = self._hooks()
        if hooks is not None:
            hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _split_to_args(args, device, dtype):
    """``to('gpu')``, ``to('float64')``, ``to(np.float64)``, ``to('gpu', 'float64')``: sort out which is which."""
    for arg in args:
        if isinstance(arg, str):
            try:
                device = backend.normalize_device(arg)
                continue
            except ValueError:
                pass
        try:
            dtype = np.dtype(arg)
        except TypeError:
            raise TypeError(f"Module.to: expected a device ('cpu', 'gpu') or a dtype, got {arg!r}") from None
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise TypeError(f"Module.to: only floating-point dtypes are allowed, got {np.dtype(dtype)}")
    return device, dtype


# Errors raised inside a forward pass are located for the user: the innermost module that saw the error is
# remembered, and the outermost call (the model) prefixes the message with that module's path in the model
# and its input shape: "features.5 (MaxPool2d), input (1, 256, 1, 1): max_pool2d: kernel (3, 3) is larger ...".
_calls = threading.local()
_LOCATED_ERRORS = (ValueError, TypeError, IndexError, RuntimeError, ArithmeticError)


def _locate_error(err, module, args, outermost):
    if getattr(err, "_minidl_located", False):
        return
    if not hasattr(err, "_minidl_module"):
        shapes = [tuple(a.shape) for a in args if isinstance(a, Tensor)]
        err._minidl_module, err._minidl_shapes = module, shapes
    if not outermost or not err.args or not isinstance(err.args[0], str):
        return
    inner = err._minidl_module
    path = next((name for name, m in module.named_modules() if m is inner), None)
    where = f"{type(inner).__name__}" if not path else f"{path} ({type(inner).__name__})"
    shapes = err._minidl_shapes
    if shapes:
        where += ", input " + ", ".join(_format_shape(s) for s in shapes)
    err.args = (f"{where}: {err.args[0]}",) + err.args[1:]
    err._minidl_located = True


def _format_shape(shape):
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _add_indent(text, spaces):
    lines = text.split("\n")
    return lines[0] if len(lines) == 1 else lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class for layers and models: subclass it, assign members in ``__init__``, write ``forward``.

    Call the module (``model(x)``), not ``forward``, so that forward hooks run.
    """

    def __init__(self):
        set_plain = object.__setattr__
        set_plain(self, "training", True)
        set_plain(self, "_parameters", OrderedDict())
        set_plain(self, "_buffers", OrderedDict())
        set_plain(self, "_non_persistent_buffers", set())
        set_plain(self, "_modules", OrderedDict())
        set_plain(self, "_forward_hooks", OrderedDict())
        set_plain(self, "_forward_pre_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(): define forward(self, ...) in the subclass")

    @guarded   # minidl's thread policy while the forward pass runs (minidl/performance.py)
    def __call__(self, *args, **kwargs):
        _calls.depth = getattr(_calls, "depth", 0) + 1
        try:
            if self._forward_pre_hooks:
                for hook in list(self._forward_pre_hooks.values()):
                    result = hook(self, args)
                    if result is not None:
                        args = result if isinstance(result, tuple) else (result,)
            output = self.forward(*args, **kwargs)
            if self._forward_hooks:
                for hook in list(self._forward_hooks.values()):
                    result = hook(self, args, output)
                    if result is not None:
                        output = result
            return output
        except _LOCATED_ERRORS as err:
            _locate_error(err, self, args, outermost=_calls.depth == 1)
            raise
        finally:
            _calls.depth -= 1

    # -- registration --------------------------------------------------------------------------------
    def _check_ready(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() is called: "
                                 f"call super().__init__() first in {type(self).__name__}.__init__")

    def _forget(self, name):
        """Drop ``name`` from every registry (not from the instance attributes)."""
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers.discard(name)
        self._modules.pop(name, None)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._check_ready("parameters")
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_ready("submodules")
            self._forget(name)
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter '{name}' of "
                                f"{type(self).__name__}: expected a minidl.Parameter or None")
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule '{name}' of "
                                f"{type(self).__name__}: expected a Module or None")
            self._modules[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer '{name}' of "
                                f"{type(self).__name__}: expected a Tensor or None")
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._forget(name)
        object.__delattr__(self, name)

    def _check_new_name(self, name, kind):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{kind} name must be a non-empty string without '.', got {name!r}")
        registered = name in self._parameters or name in self._buffers or name in self._modules
        if hasattr(self, name) and not registered:
            raise KeyError(f"attribute '{name}' already exists on {type(self).__name__}")

    def register_parameter(self, name, param):
        """Add a parameter (a ``Parameter`` or ``None``, e.g. a layer built with ``bias=False``)."""
        self._check_ready("parameters")
        self._check_new_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a minidl.Parameter or None, "
                            f"got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer: state saved in ``state_dict`` (unless ``persistent=False``) but not learned."""
        self._check_ready("buffers")
        self._check_new_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        """Add a submodule under ``name`` (what attribute assignment does, for names that are not identifiers)."""
        self._check_ready("submodules")
        self._check_new_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module
        object.__setattr__(self, name, module)

    register_module = add_module

    def get_submodule(self, target):
        """``model.get_submodule("layer1.0.conv1")``."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"get_submodule: {type(module).__name__} has no submodule '{part}' "
                                     f"(looking up '{target}')")
            module = module._modules[part]
        return module

    # -- iteration over members --------------------------------------------------------------------
    def named_modules(self, memo=None, prefix=""):
        """Yield ``(name, module)`` for this module and every descendant, each once, parents first."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse):
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        seen = set()
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True):
        """Yield ``(name, parameter)``; a parameter shared by two modules is yielded once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def num_parameters(self, trainable_only=False):
        """Number of scalar parameters (``sum(p.numel() for p in model.parameters())``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- modes, gradients, devices ---------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (dropout active, BatchNorm uses batch statistics) on every module."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Freeze (``False``) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self):
        """Set every parameter's ``.grad`` to None (the next backward starts from zero)."""
        for p in self.parameters():
            p.grad = None

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule (children first) and on this one; returns self.

        >>> model.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def to(self, *args, device=None, dtype=None):
        """Move parameters and buffers to ``device`` and/or cast floating ones to ``dtype``, in place.

        ``model.to('gpu')``, ``model.to('float64')``, ``model.to(np.float64)``, ``model.to('cpu', 'float32')``.
        The Parameter objects are kept (only their ``.data`` and ``.grad`` change), so an optimizer built
        before the call keeps updating the same parameters. Integer buffers such as BatchNorm's
        ``num_batches_tracked`` are moved but never cast.
        """
        device, dtype = _split_to_args(args, device, dtype)
        device = None if device is None else backend.normalize_device(device)

        def convert(array):
            if device is not None and backend.device_of(array) != device:
                array = backend.as_device_array(array, device)
            if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
                array = array.astype(dtype)
            return array

        for p in self.parameters():
            p.data = convert(p.data)
            if p.grad is not None:
                p.grad = Tensor(convert(p.grad.data))
        for buf in self.buffers():
            buf.data = convert(buf.data)
        return self

    def cpu(self):
        return self.to(device="cpu")

    def gpu(self):
        return self.to(device="gpu")

    cuda = gpu

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # -- hooks ---------------------------------------------------------------------------------------
    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; a non-None return replaces the output.

        ``inputs`` is the tuple of positional arguments. Returns a handle; ``handle.remove()`` undoes it.
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, inputs)`` before every forward; a non-None return replaces the inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # -- state dict ------------------------------------------------------------------------------------
    def state_dict(self, prefix="", keep_vars=False):
        """An OrderedDict from names (``"layer1.0.bn1.running_mean"``) to tensors, PyTorch's keys and order.

        Per module: its parameters, then its persistent buffers, in registration order; then each
        submodule's entries. The tensors share memory with the model (like PyTorch's): save or copy them
        before training further. ``keep_vars=True`` gives the Parameter objects themselves.
        """
        destination = OrderedDict()
        self._save_to(destination, prefix + "." if prefix else "", keep_vars)
        return destination

    def _save_to(self, destination, dotted, keep_vars):
        # A module reachable along two paths is saved under both names (as in PyTorch): no memo here.
        for name, param in self._parameters.items():
            if param is not None:
                destination[dotted + name] = param if keep_vars else Tensor(param.data)
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers:
                destination[dotted + name] = buf if keep_vars else Tensor(buf.data)
        for name, module in self._modules.items():
            if module is not None:
                module._save_to(destination, dotted + name + ".", keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` (tensors or arrays) into this model's parameters and buffers.

        Values are written into the existing arrays: cast to each parameter's dtype and kept on its
        device. With ``strict=True`` (the default) any missing or unexpected key is an error; a shape
        mismatch always is. The error lists every problem at once. Returns ``(missing_keys,
        unexpected_keys)``.
        """
        own = self.state_dict(keep_vars=True)
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        mismatched = []
        for key, target in own.items():
            if key in state_dict:
                shape = tuple(np.shape(_array_of(state_dict[key])))
                if shape != target.shape:
                    mismatched.append(f"{key}: expected {_format_shape(target.shape)}, got {_format_shape(shape)}")
        problems = []
        if mismatched:
            problems.append("wrong shape for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(f"load_state_dict: cannot load into {type(self).__name__}:\n  " + "\n  ".join(problems))
        for key, target in own.items():
            if key in state_dict:
                value = backend.as_device_array(_array_of(state_dict[key]), target.device)
                target.data[...] = value.astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # -- printing --------------------------------------------------------------------------------------
    def extra_repr(self):
        """The text inside ``Name(...)`` for this module alone, e.g. ``in_features=4, out_features=2``."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _add_indent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"


def _array_of(value):
    """The array inside a Tensor, or the value itself as an array (NumPy, CuPy, or anything array-like)."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray) or backend.is_gpu_array(value):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, e.g. copied weights
        return value.detach().cpu().numpy()
    return np.asarray(value)
