"""``Optimizer``: the base class of SGD, Adam and AdamW, with PyTorch's parameter groups and state dicts.

An optimizer holds *parameter groups*: dicts with a ``'params'`` list and that group's hyper-parameters
(``'lr'``, ``'momentum'``, ...), so that different layers can get different settings:

>>> optim.SGD([{"params": model.features.parameters()},
...            {"params": model.classifier.parameters(), "lr": 1e-3}], lr=1e-2, momentum=0.9)

Per-parameter state (momentum buffers, Adam's moments, step counts) lives in ``optimizer.state[param]``.
``state_dict()`` names parameters by their position across the groups (0, 1, ...), so it can be loaded
into a new optimizer built over a new copy of the same model.
"""
import copy

import numpy as np

from minidl import backend
from minidl.autograd import enable_grad, no_grad
from minidl.tensor import Tensor


def match_array(array, like):
    """``array`` on the device and in the dtype of ``like`` (``Module.to()`` may have moved a parameter)."""
    if type(array) is type(like) and array.dtype == like.dtype:
        return array
    return backend.as_device_array(array, backend.device_of(like)).astype(like.dtype, copy=False)


class Optimizer:
    """Base class: subclasses set ``defaults`` through ``__init__`` and implement ``_update_group``."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters or of dicts, "
                            "got a single Tensor (wrap it in a list)")
        if isinstance(params, set):
            raise TypeError(f"{type(self).__name__}: params must be an ordered collection, not a set "
                            "(the order names the parameters in state_dict)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list "
                             "(did the model register its layers as attributes or in nn.ModuleList?)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group (a dict with ``'params'``); hyper-parameters it leaves out take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: expected a dict with 'params', got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("add_param_group: the group has no 'params'")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("add_param_group: params must be an ordered collection, not a set "
                            "(the order names the parameters in state_dict)")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: parameter {i} is not a leaf tensor (it was computed "
                                 "from others): optimize the tensors it came from")
            if p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: parameter {i} has dtype {p.dtype}; only floating-point "
                                "tensors can be optimized")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{type(self).__name__}: some parameters appear more than once "
                             "(in this group or in an earlier one)")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group):
        """Subclasses raise ValueError for a bad value in ``group``."""

    def zero_grad(self):
        """Set the gradient of every parameter to None (the next backward starts from zero)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure`` (optional) recomputes and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if params:
                    self._update_group(group, params)
        return loss

    def _update_group(self, group, params):
        raise NotImplementedError(f"{type(self).__name__} must implement _update_group(group, params)")

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self):
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``, like PyTorch's.

        The arrays are the optimizer's own (not copies): save the dict before stepping further.
        """
        index_of = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
                packed["params"].append(index_of[id(p)])
            groups.append(packed)
        state = {index_of[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index_of}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and per-parameter state saved by :meth:`state_dict` (copied in).

        Arrays are cast to their parameter's dtype and moved to its device.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state dict has {len(saved_groups)} "
                             f"parameter groups, this optimizer {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {i} has {len(saved['params'])} "
                                 f"parameters in the state dict, {len(group['params'])} here")
        param_of = {index: p for saved, group in zip(saved_groups, self.param_groups)
                    for index, p in zip(saved["params"], group["params"])}
        self.state = {}
        for index, saved_state in state_dict["state"].items():
            p = param_of[int(index)]
            self.state[p] = {key: self._restore(value, p) for key, value in saved_state.items()}
        for saved, group in zip(saved_groups, self.param_groups):
            for key, value in saved.items():
                if key != "params":
                    group[key] = copy.deepcopy(value)

    @staticmethod
    def _restore(value, param):
        if isinstance(value, Tensor):
            value = value.data
        if isinstance(value, np.ndarray) or backend.is_gpu_array(value):
            return match_array(value, param.data).copy()
        return copy.deepcopy(value)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        lines.append(")")
        return "\n".join(lines)
