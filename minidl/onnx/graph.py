"""From a traced minidl graph to ONNX nodes, inputs, outputs and initializers.

A tensor is one of: the graph input (the example), an initializer (a parameter or buffer under its
state_dict name, or any other value that depends on neither the input nor a parameter, folded to its
value), or the output ``i`` of a recorded Function.
Functions are converted in generation order (each after all of its inputs, see ``minidl.autograd``).
"""
import numpy as np
from onnx import helper, numpy_helper

from minidl.onnx import ExportError
from minidl.onnx.ops import CONVERTERS


class GraphBuilder:
    def __init__(self, opset, names):
        self.opset = opset
        self.param_names = names      # id(array) -> state_dict name
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._const_names = {}        # id(array) -> initializer name
        self._keep_alive = []         # arrays whose id() is a key above
        self._tensor_names = {}       # id(tensor) -> value name
        self._counter = 0
        self._input = None
        self._depends = {}            # id(func) -> whether it depends on the input
        self._live = {}               # id(func) -> whether it depends on the input or a parameter
        self._producers = {}          # id(tensor) -> the Function that made it (see discover)

    # -- names and constants -----------------------------------------------------------------------
    def fresh(self, hint):
        self._counter += 1
        return f"{hint}_{self._counter}"

    def const(self, array, hint="const"):
        """An initializer holding ``array`` (reused when the same array object is passed again)."""
        key = id(array)
        if key in self._const_names:
            return self._const_names[key]
        name = self.param_names.get(key) or self.fresh(hint)
        value = np.ascontiguousarray(array.data if isinstance(array, np.ndarray) else array)
        self.initializers.append(numpy_helper.from_array(value, name))
        self._const_names[key] = name
        self._keep_alive.append(array)
        return name

    def ints(self, values, hint="shape"):
        return self.const(np.asarray(list(values), dtype=np.int64), hint)

    def scalar(self, value, dtype, hint="scalar"):
        return self.const(np.asarray(value, dtype=dtype), hint)

    def node(self, op_type, inputs, outputs=None, n_out=1, **attrs):
        """Append a node; returns its output names (a list), fresh ones unless ``outputs`` is given."""
        outputs = outputs or [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), **attrs))
        return outputs

    # -- the traced graph ---------------------------------------------------------------------------
    def add_input(self, x, name):
        self._input = x
        self._tensor_names[id(x)] = name
        self.inputs.append(helper.make_tensor_value_info(name, _onnx_type(x.dtype), list(x.shape)))

    def discover(self, outputs):
        """Find the Functions behind all outputs first: an integer output (the indices of ``max(x, dim)``)
        records no creator, and is found as the second output of a Function found through another."""
        for t in outputs:
            if t.creator is not None:
                for func in self._functions_behind(t):
                    for out in (ref() for ref in func.outputs):
                        if out is not None:
                            self._producers[id(out)] = func

    def add_output(self, t, name):
        creator = t.creator or self._producers.get(id(t))
        if t is self._input or creator is None or not self._depends_on_input(creator):
            raise ExportError("minidl.onnx.export: an output does not depend on the input (a constant or the "
                              "input itself); nothing to export")
        for func in self._functions_behind(t, creator):
            self._convert(func)
        self.node("Identity", [self.value(t)], [name])
        self.outputs.append(helper.make_tensor_value_info(name, _onnx_type(t.dtype), list(t.shape)))

    def value(self, t):
        """The ONNX name of tensor ``t``: the input, a converted Function's output, or a folded constant."""
        name = self._tensor_names.get(id(t))
        if name is not None:
            return name
        if t.creator is not None and self._is_live(t.creator):
            raise ExportError(f"minidl.onnx.export: internal error: {t.creator.name} used before it was converted")
        return self.const(t.data, "const")

    def _depends_on_input(self, func):
        return self._reaches(func, lambda t: t is self._input, self._depends)

    def _is_live(self, func):
        """Whether ``func`` is exported as nodes: it reads the input or a parameter or buffer (by name).
        Ops on parameters stay ops, so the initializers are the state dict itself: LeNet-5's C3 weight is a
        Gather through the connection table from its 1,516 parameters, not a folded 16 x 6 x 5 x 5 copy."""
        return self._reaches(func, lambda t: t is self._input or id(t.data) in self.param_names, self._live)

    @staticmethod
    def _reaches(func, is_source, memo):
        """Whether a tensor satisfying ``is_source`` feeds ``func`` (memoised per Function in ``memo``)."""
        stack = [func]
        while stack:  # iterative: ResNet-152's graph is too deep for recursion
            f = stack.pop()
            if id(f) in memo:
                continue
            pending = [t.creator for t in f.inputs if t.creator is not None and id(t.creator) not in memo]
            if pending:
                stack.append(f)
                stack.extend(pending)
                continue
            memo[id(f)] = any(is_source(t) or (t.creator is not None and memo[id(t.creator)]) for t in f.inputs)
        return memo[id(func)]

    def _functions_behind(self, t, creator=None):
        """Every Function ``t`` needs that is exported as nodes (see _is_live), oldest generation first."""
        seen, stack, found = set(), [creator or t.creator], []
        while stack:
            f = stack.pop()
            if id(f) in seen or not self._is_live(f):
                continue
            seen.add(id(f))
            found.append(f)
            stack.extend(x.creator for x in f.inputs if x.creator is not None)
        return sorted(found, key=lambda f: f.generation)

    def _convert(self, func):
        outputs = [func.output(i) for i in range(len(func.outputs))]   # a stand-in where the output is gone
        if any(id(o) in self._tensor_names for o in outputs if o is not None):
            return  # already converted (shared by two outputs)
        converter = CONVERTERS.get(func.name)
        if converter is None:
            raise ExportError(f"minidl.onnx.export: no ONNX conversion for the op {func.name}")
        names = [self.fresh(func.name.lower()) for _ in outputs]
        converter(self, func, [self.value(x) for x in func.inputs], names)
        for o, name in zip(outputs, names):
            if o is not None:
                self._tensor_names[id(o)] = name


def _onnx_type(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

