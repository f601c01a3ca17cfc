"""The one table of op cases for ``minidl.functions`` and the Tensor methods: every row runs every check it can.

A case is an :class:`OpCase`: an id (``NAME`` or ``NAME-variant``, NAME the public function it exercises),
``call(M, *tensors)`` written once for both libraries (M is ``minidl.functions``, or torch with its
``torch.nn.functional`` names first), the inputs (NumPy float64 arrays, cast to the dtype a check runs in;
integer arrays such as labels stay integers), the inputs that require grad (None: every floating-point
one), and ``skip``: the checks that do not apply, each with the reason. The checks (``CHECKS``), each
driven by one test over the whole table:

- ``gradcheck``: float64 gradients against central finite differences (``minidl.gradcheck``);
  tests/functions/test_op_table.py.
- ``torch``: forward values, shapes, dtypes and gradients against PyTorch in float64 and float32, with
  PyTorch's argument names and defaults (tinygrad's ``helper_test_op``); tests/functions/test_op_table.py,
  skipped without torch.
- ``gpu``: outputs and gradients on the GPU against the CPU in float32 and float64
  (tests/gpu/test_functions_gpu.py, skipped without CuPy and a device); tests/gpu/test_harness_on_cpu.py runs
  the same comparison with the CPU as the device, so a broken case shows up in CI first.

A new check is one more name in ``CHECKS`` and one test that runs ``cases_for(name)``; rows it cannot apply
to say why in their ``skip``. Inputs include the boundary values (0, -0, +-inf, huge logits, empty tensors,
ties); finite differences do not apply to those rows (``BOUNDARY``), the other checks do.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import minidl
import minidl.functions as F

CHECKS = ("gradcheck", "torch", "gpu")
ALIASES = {"concat": "cat", "clip": "clamp"}   # names in F.__all__ that are the same function as another one

BOUNDARY = "boundary values (0 at a kink, +-inf, ties): finite differences do not apply"
NOT_FINITE = "non-finite values: the device comparison measures relative error, PyTorch compares them"
NO_GRADIENT = "no differentiable output"
EMPTY = "an empty input: no element to nudge"
STATEFUL = "each call updates the running statistics it then reads: not a function of its inputs alone"
MINIDL_ONLY = "a minidl name or argument PyTorch does not have"


@dataclass(frozen=True)
class OpCase:
    id: str
    call: Callable
    inputs: list
    grads: tuple = None
    skip: dict = field(default_factory=dict)

    @property
    def name(self):
        """The public function the case exercises."""
        return self.id.split("-")[0]

    def runs(self, check):
        return check not in self.skip

    def arrays(self, dtype):
        """The inputs with floating-point arrays cast to ``dtype``."""
        return [a.astype(dtype) if a.dtype.kind == "f" else a for a in map(np.asarray, self.inputs)]

    def requires_grad(self, i, array):
        return np.asarray(array).dtype.kind == "f" and (self.grads is None or i in self.grads)


rng = np.random.default_rng(0)
INF = np.inf


def normal(*shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def distinct(*shape, scale=0.37):
    """Distinct values (a shuffled arange): no ties for max, min and max pooling, valid finite differences."""
    n = int(np.prod(shape, dtype=int))
    return (rng.permutation(n).reshape(shape) - n / 2) * scale


def edges(*extra):
    """The usual boundary values, plus ``extra``."""
    return np.array([0.0, -0.0, 1.0, -1.0, 2.5, -3.5, 1e-30, -1e-30, 50.0, -50.0, *extra])


def case(case_id, call, inputs, grads=None, **skip):
    return OpCase(case_id, call, inputs, grads, skip)


LABELS = np.array([0, 3, 1, 4, 4, 2])
WITH_IGNORED = np.array([0, -100, 1, 4, -100, 2])
LABELS5 = np.array([0, 3, 1, 4, 4])
X4 = normal(2, 4, 9, 8)
POOLED, SWITCHES = (t.numpy() for t in F.max_pool2d(minidl.tensor(distinct(2, 3, 8, 8, scale=0.01)), 2,
                                                       return_indices=True))   # max_unpool2d's input


def _sum_to(M, x):
    """sum_to works on arrays: the reduction behind broadcasting's gradient."""
    return minidl.Tensor(M.sum_to(x.data, (1, 5)))


CASES = [
    # arithmetic and its edges
    case("add", lambda M, a, b: M.add(a, b), [normal(3, 1, 5), normal(4, 1)]),
    case("add-broadcast", lambda M, a, b: a + b, [normal(3, 1, 4), normal(5, 1)]),
    case("sub", lambda M, a, b: M.sub(a, b), [normal(3, 5), normal(5)]),
    case("sub-scalar", lambda M, a: 2.0 - a, [normal(3, 4)]),
    case("mul", lambda M, a, b: M.mul(a, b), [normal(2, 3, 5), normal(3, 1)]),
    case("mul-inf", lambda M, a, b: a * b, [np.array([INF, -INF, 2.0, 0.5]), np.array([2.0, 3.0, INF, -1.0])],
         gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("div", lambda M, a, b: M.div(a, b), [normal(3, 5), positive(3, 5)]),
    *(case(f"{op}-unbroadcast-{'x'.join(map(str, sa))}-{'x'.join(map(str, sb))}",
           lambda M, a, b, op=op: getattr(M, op)(a, b), [rng.uniform(0.5, 2.0, sa), rng.uniform(0.5, 2.0, sb)])
      for op in ("add", "sub", "mul", "div")
      for sa, sb in [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4)), ((2, 1, 4), (3, 1))]),
    case("div-zero", lambda M, a, b: a / b, [np.array([1.0, -1.0, 0.0, 3.0]), np.array([0.0, 0.0, 2.0, -INF])],
         gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("neg", lambda M, a: -a, [normal(3, 4)]),
    case("neg-function", lambda M, a: M.neg(a), [normal(3, 5)]),
    case("pow-constant", lambda M, a: M.pow(a, 3), [normal(3, 5)]),
    case("pow-zero-exponent", lambda M, a: a ** 0, [edges()], gradcheck=BOUNDARY),
    case("pow-int-negative-base", lambda M, a: a ** 3, [edges(INF, -INF)], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("pow-square-at-zero", lambda M, a: a ** 2, [edges()], gradcheck=BOUNDARY),
    case("pow-half", lambda M, a: a ** 0.5, [np.array([0.0, 0.25, 4.0, INF])], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("pow-negative-exponent", lambda M, a: a ** -2, [np.array([0.0, 0.5, -2.0, INF])], gradcheck=BOUNDARY,
         gpu=NOT_FINITE),
    case("pow-tensor", lambda M, a, b: a ** b, [positive(3, 4), normal(4)]),
    case("pow-tensor-function", lambda M, a, b: M.pow(a, b), [positive(3, 5), normal(5)]),
    case("pow-tensor-zero-base", lambda M, a, b: a ** b,
         [np.array([0.0, 0.0, 0.0, 2.0]), np.array([2.0, 0.0, 1.0, 0.0])], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("rpow", lambda M, a: 2.0 ** a, [normal(3, 4)]),
    case("exp", lambda M, a: M.exp(a), [normal(3, 5)]),
    case("exp-edges", lambda M, a: M.exp(a), [edges(-INF, 700.0)], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("log", lambda M, a: M.log(a), [positive(3, 5)]),
    case("log-edges", lambda M, a: M.log(a), [np.array([0.0, 1e-30, 1.0, 7.5, INF])], gradcheck=BOUNDARY,
         gpu=NOT_FINITE),
    case("sqrt", lambda M, a: M.sqrt(a), [positive(3, 5)]),
    case("sqrt-edges", lambda M, a: M.sqrt(a), [np.array([0.0, 1e-30, 1.0, 7.5, INF])], gradcheck=BOUNDARY,
         gpu=NOT_FINITE),
    case("abs", lambda M, a: M.abs(a), [normal(3, 5) + 0.1]),
    case("abs-edges", lambda M, a: M.abs(a), [edges(INF, -INF)], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    *(case(f"{name}-from{low:g}", call, [rng.uniform(low, low + 4, (3, 5))])    # a 4-wide interval from ``low``
      for name, call, low in [("exp", lambda M, a: M.exp(a), -2), ("log", lambda M, a: M.log(a), 0.5),
                              ("sqrt", lambda M, a: M.sqrt(a), 0.5), ("tanh", lambda M, a: M.tanh(a), -3),
                              ("sigmoid", lambda M, a: M.sigmoid(a), -5), ("pow", lambda M, a: M.pow(a, 3), -2),
                              ("pow", lambda M, a: M.pow(a, 0.5), 0.5), ("rpow", lambda M, a: 2.0 ** a, -1),
                              ("abs", lambda M, a: M.abs(a), 0.2)]),
    case("matmul", lambda M, a, b: a @ b, [normal(3, 4), normal(4, 2)]),
    case("matmul-2d", lambda M, a, b: M.matmul(a, b), [normal(6, 7), normal(7, 5)]),
    case("matmul-batched", lambda M, a, b: M.matmul(a, b), [normal(2, 1, 3, 4), normal(5, 4, 2)]),
    case("matmul-batched-broadcast", lambda M, a, b: M.matmul(a, b), [normal(3, 1, 4, 6), normal(2, 6, 5)]),
    case("matmul-vector", lambda M, a, b: a @ b, [normal(4), normal(4, 3)]),
    case("matmul-vector-function", lambda M, a, b: M.matmul(a, b), [normal(6), normal(6, 5)]),
    case("matmul-empty", lambda M, a, b: a @ b, [normal(0, 3), normal(3, 2)]),
    *(case(f"matmul-{'x'.join(map(str, sa))}-{'x'.join(map(str, sb))}", lambda M, a, b: M.matmul(a, b),
           [normal(*sa), normal(*sb)])
      for sa, sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
                     ((4,), (4,))]),
    # reductions, with torch's dim / keepdim and the empty cases
    case("sum-all", lambda M, a: a.sum(), [normal(3, 4)]),
    case("sum-all-function", lambda M, a: M.sum(a), [normal(3, 4, 5)]),
    case("sum-axes", lambda M, a: M.sum(a, axis=(0, 2), keepdims=True), [normal(3, 4, 5)], torch=MINIDL_ONLY),
    case("sum-dim-keepdim", lambda M, a: a.sum(1, keepdim=True), [normal(3, 4, 2)]),
    case("sum-dims", lambda M, a: M.sum(a, dim=(0, 2)), [normal(3, 4, 2)]),
    case("sum-empty", lambda M, a: a.sum(dim=0), [normal(0, 3)], gradcheck=EMPTY),
    case("sum_to", _sum_to, [normal(3, 5)], (), gradcheck=NO_GRADIENT, torch=MINIDL_ONLY),
    case("mean", lambda M, a: M.mean(a, axis=1), [normal(3, 4, 5)], torch=MINIDL_ONLY),
    case("mean-dim", lambda M, a: a.mean(dim=-1), [normal(3, 4)]),
    case("mean-empty", lambda M, a: a.mean(), [normal(0, 3)], gradcheck=EMPTY, gpu=NOT_FINITE),
    case("mean-empty-dim", lambda M, a: M.mean(a, 0, keepdim=True), [normal(0, 3)], gradcheck=EMPTY, gpu=NOT_FINITE),
    case("var", lambda M, a: a.var(dim=1), [normal(3, 5)]),
    case("var-dims", lambda M, a: M.var(a, dim=(0, 2)), [normal(3, 4, 5)]),
    case("var-biased-keepdim", lambda M, a: M.var(a, dim=(0, 1), correction=0, keepdim=True), [normal(3, 5, 2)]),
    case("var-unbiased-false", lambda M, a: a.var(unbiased=False), [normal(3, 5)]),
    case("var-all", lambda M, a: a.var(), [normal(3, 4)]),
    case("std", lambda M, a: M.std(a, 0), [normal(4, 3)]),
    case("std-biased-keepdim", lambda M, a: M.std(a, 1, correction=0, keepdim=True), [normal(3, 4, 5)]),
    case("max-all", lambda M, a: a.max(), [distinct(3, 4)]),
    case("max-all-ties", lambda M, a: M.max(a), [np.array([1.0, 3.0, 3.0, -2.0])], gradcheck=BOUNDARY),
    case("max-dim", lambda M, a: a.max(dim=1), [distinct(3, 4)]),
    case("max-dim-values", lambda M, a: M.max(a, dim=1).values, [distinct(3, 4, 5)]),
    case("max-dim-positional-keepdim", lambda M, a: M.max(a, 0, True), [distinct(3, 4)]),
    case("max-dim-index-0", lambda M, a: a.max(dim=1)[0], [distinct(3, 4)]),
    case("max-elementwise", lambda M, a, b: M.max(a, b), [np.array([1.0, 4.0, 2.0]), np.array([3.0, 2.0, 2.0])],
         gradcheck=BOUNDARY),
    case("min-all", lambda M, a: M.min(a), [distinct(3, 4, 5)]),
    case("min-dim", lambda M, a: M.min(a, dim=-1, keepdim=True), [distinct(2, 3, 4)]),
    case("min-dim-positional", lambda M, a: M.min(a, -1, keepdim=True), [distinct(3, 4, 5)]),
    case("maximum", lambda M, a, b: M.maximum(a, b), [distinct(3, 4), distinct(4)]),
    case("maximum-ties", lambda M, a, b: M.maximum(a, b), [np.array([1.0, 4.0, 2.0]), np.array([3.0, 2.0, 2.0])],
         gradcheck=BOUNDARY),
    case("minimum", lambda M, a, b: M.minimum(a, b), [distinct(3, 4), distinct(3, 1)]),
    case("minimum-broadcast", lambda M, a, b: M.minimum(a, b), [distinct(3, 4), distinct(4)]),
    case("amax", lambda M, a: M.amax(a, dim=(0, 2)), [distinct(3, 4, 2)]),
    case("amax-dims", lambda M, a: M.amax(a, dim=(0, 2)), [distinct(3, 4, 5)]),
    case("amax-ties", lambda M, a: a.amax(), [np.array([[1.0, 3.0], [3.0, 0.0]])], gradcheck=BOUNDARY),
    case("amin", lambda M, a: M.amin(a, dim=1), [distinct(3, 4, 5)]),
    case("amin-dim", lambda M, a: a.amin(1, keepdim=True), [distinct(3, 4)]),
    case("argmax", lambda M, a: a.argmax(), [distinct(3, 4)], (), gradcheck=NO_GRADIENT),
    case("argmax-dim", lambda M, a: M.argmax(a, dim=1, keepdim=True), [distinct(3, 4)], (), gradcheck=NO_GRADIENT),
    case("argmax-function", lambda M, a: M.argmax(a, dim=1), [distinct(3, 4, 5)], (), gradcheck=NO_GRADIENT),
    case("argmin", lambda M, a: M.argmin(a), [distinct(3, 4, 5)], (), gradcheck=NO_GRADIENT),
    case("argmin-dim", lambda M, a: a.argmin(dim=0), [distinct(3, 4)], (), gradcheck=NO_GRADIENT),
    case("clamp", lambda M, a: M.clamp(a, -0.5, 0.7), [normal(3, 5)]),
    case("clamp-edges", lambda M, a: M.clamp(a, -1.0, 1.0), [edges(INF, -INF)], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("clamp-min", lambda M, a: a.clamp(min=0.5), [normal(3, 4)]),
    case("clone", lambda M, a: M.clone(a), [normal(3, 5)]),
    case("clone-method", lambda M, a: a.clone() * 2, [normal(3, 4)]),
    case("clone-times-input", lambda M, a: M.clone(a) * a, [normal(3, 4)]),      # two paths into one gradient
    # shapes
    case("squeeze", lambda M, a: M.squeeze(a, 1), [normal(3, 1, 5)]),
    case("squeeze-all", lambda M, a: a.squeeze(), [normal(1, 3, 1)]),
    case("squeeze-dim", lambda M, a: M.squeeze(a, 0), [normal(1, 3, 1)]),
    case("squeeze-dim-not-one", lambda M, a: a.squeeze(1), [normal(1, 3, 1)]),
    case("unsqueeze", lambda M, a: a.unsqueeze(-1), [normal(2, 3)]),
    case("unsqueeze-function", lambda M, a: M.unsqueeze(a, -1), [normal(3, 5)]),
    case("reshape", lambda M, a: a.reshape(4, -1), [normal(2, 3, 4)]),
    case("reshape-function", lambda M, a: M.reshape(a, (4, -1)), [normal(2, 3, 4)]),
    case("view", lambda M, a: a.view(6, 4), [normal(2, 3, 4)]),
    case("permute", lambda M, a: a.permute(2, 0, 1), [normal(2, 3, 4)]),
    case("permute-function", lambda M, a: M.permute(a, (0, 2, 1)), [normal(2, 3, 4)]),
    case("transpose", lambda M, a: M.transpose(a, 0, -1), [normal(2, 3, 4)]),
    case("transpose-2d", lambda M, a: a.transpose(0, 1), [normal(2, 3)]),
    case("transpose-2d-negative", lambda M, a: a.transpose(-2, -1), [normal(2, 3)]),
    case("transpose-same", lambda M, a: a.transpose(0, 0), [normal(2, 3)]),
    case("transpose-4d", lambda M, a: M.transpose(a, 1, -1), [normal(2, 3, 4, 5)]),
    case("T", lambda M, a: a.T, [normal(2, 3)]),
    case("flatten", lambda M, a: M.flatten(a, 1), [normal(2, 3, 4)]),
    case("flatten-4d", lambda M, a: M.flatten(a, 1), [X4]),
    case("broadcast_to", lambda M, a: M.broadcast_to(a, (3, 4, 5)), [normal(4, 1)]),
    case("getitem", lambda M, a: a[1:, ::2], [normal(3, 4)]),
    case("getitem-slices", lambda M, a: a[:, 1:3, ...], [normal(3, 4, 5)]),
    case("getitem-repeated-indices", lambda M, a: M.getitem(a, np.array([0, 2, 0, 0])), [normal(3, 5)],
         torch=MINIDL_ONLY),
    case("getitem-channels", lambda M, a: a[:, np.array([2, 0, 2])], [X4]),        # LeNet-5's C3 gather
    # basic indices (ints, slices, None, Ellipsis) store the gradient, the others accumulate it with add.at
    *(case(f"getitem-index{i}", lambda M, a, index=index: a[index] * 2.0, [normal(2, 3, 4)])
      for i, index in enumerate([(slice(None), 1), (0, slice(1, 3), slice(None, None, 2)), (Ellipsis, -1),
                                 (None, slice(None), 0), 1, True, (np.array([0, 1, 1]),),
                                 (slice(None), np.array([2, 0, 2])), (np.int64(1), slice(None))])),
    case("cat", lambda M, a, b, c: M.cat([a, b, c], dim=1), [normal(2, 1, 3), normal(2, 4, 3), normal(2, 2, 3)]),
    case("cat-default-dim", lambda M, a, b: M.cat([a, b]), [normal(2, 3), normal(4, 3)]),
    case("cat-dim", lambda M, a, b: M.cat((a, b), dim=1), [normal(2, 3), normal(2, 1)]),
    case("cat-empty", lambda M, a, b: M.cat([a, b]), [normal(0, 3), normal(2, 3)]),
    case("concat", lambda M, a, b: M.concat([a, b], dim=-1), [normal(2, 3), normal(2, 1)]),
    case("split", lambda M, a: M.split(a, [1, 3, 2], dim=1), [normal(2, 6, 3)]),
    case("split-default-dim", lambda M, a: M.split(a, 2), [normal(5, 3)]),
    case("split-sections-dim", lambda M, a: M.split(a, [1, 2], dim=1), [normal(2, 3)]),
    case("pad", lambda M, a: M.pad(a, (2, 1, 1, 2), value=0.5), [X4]),
    case("pad-last-dim", lambda M, a: M.pad(a, (1, 2)), [normal(2, 3, 4)]),
    case("pad-two-dims-value", lambda M, a: M.pad(a, (1, 1, 2, 0), value=0.5), [normal(2, 3, 4)]),
    case("pad-channels", lambda M, a: M.pad(a, (0, 0, 0, 0, 0, 2)), [normal(1, 2, 3, 3)]),
    # Tensor methods with PyTorch's meaning
    case("method-expand", lambda M, a: a.expand(2, -1, 4), [normal(3, 1)]),
    case("method-contiguous", lambda M, a: a.T.contiguous() * 3, [normal(3, 4)]),
    case("method-add-alpha", lambda M, a, b: a.add(b, alpha=2.0).sub(b).mul(a).div(b.abs() + 1),
         [normal(3, 4), normal(4)]),
    case("method-matmul-neg", lambda M, a, b: a.matmul(b).neg(), [normal(3, 4), normal(4, 2)]),
    case("method-any-all", lambda M, a: (a.any(), a.all(dim=1), a.any(1, keepdim=True)),
         [np.array([[0.0, 1.0], [0.0, 0.0]])], (), gradcheck=NO_GRADIENT),
    # activations, at ordinary and extreme logits
    case("relu", lambda M, a: M.relu(a), [distinct(3, 5, scale=0.13)]),
    case("relu-edges", lambda M, a: M.relu(a), [edges(INF, -INF)], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("leaky_relu", lambda M, a: M.leaky_relu(a, 0.2), [distinct(3, 5, scale=0.13)]),
    case("leaky_relu-edges", lambda M, a: M.leaky_relu(a, negative_slope=0.2), [edges(INF, -INF)],
         gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("leaky_relu-default", lambda M, a: M.leaky_relu(a), [distinct(3, 5, scale=0.13)]),
    case("tanh", lambda M, a: M.tanh(a), [normal(3, 5)]),
    case("tanh-edges", lambda M, a: M.tanh(a), [edges(INF, -INF, 20.0)], gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("scaled_tanh", lambda M, a: M.scaled_tanh(a), [normal(3, 5, scale=2)], torch=MINIDL_ONLY),
    case("scaled_tanh-scales", lambda M, a: M.scaled_tanh(a, outer=-0.5, inner=3.0), [normal(3, 5)],
         torch=MINIDL_ONLY),
    case("sigmoid", lambda M, a: M.sigmoid(a), [normal(3, 5, scale=5)]),
    case("sigmoid-edges", lambda M, a: M.sigmoid(a), [edges(INF, -INF, -20.0, -15.0, -88.0, 30.0)],
         gradcheck=BOUNDARY, gpu=NOT_FINITE),
    case("sigmoid-then-log", lambda M, a: M.log(M.sigmoid(a)), [np.array([-20.0, -15.0, -5.0, 0.0, 10.0])]),
    case("logsigmoid", lambda M, a: M.logsigmoid(a), [normal(3, 5, scale=10)]),
    case("logsigmoid-edges", lambda M, a: M.logsigmoid(a), [edges(INF, -INF, -1000.0, 1000.0)], gradcheck=BOUNDARY,
         gpu=NOT_FINITE),
    case("softplus", lambda M, a: M.softplus(a, beta=2.0, threshold=5.0), [normal(3, 5, scale=3)]),
    case("softplus-edges", lambda M, a: M.softplus(a), [edges(INF, -INF, 19.0, 21.0, -1000.0)], gradcheck=BOUNDARY,
         gpu=NOT_FINITE),
    case("softplus-beta-threshold", lambda M, a: M.softplus(a, beta=2.0, threshold=5.0), [edges(2.4, 2.6)],
         gradcheck=BOUNDARY),
    case("softmax", lambda M, a: M.softmax(a, dim=1), [normal(3, 5, scale=30)]),
    case("softmax-small-logits", lambda M, a: M.softmax(a, dim=1), [normal(4, 6, scale=3)]),
    case("softmax-huge", lambda M, a: M.softmax(a, dim=-1), [np.array([[1000.0, 0.0, -1000.0]])]),
    case("softmax-dim0", lambda M, a: M.softmax(a, 0), [normal(3, 5)]),
    case("log_softmax", lambda M, a: M.log_softmax(a, dim=1), [np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])]),
    case("log_softmax-dim0", lambda M, a: M.log_softmax(a, dim=0), [normal(4, 6, scale=3)]),
    # losses
    case("cross_entropy", lambda M, x, t: M.cross_entropy(x, t), [normal(6, 5), LABELS]),
    case("cross_entropy-smoothing", lambda M, x, t: M.cross_entropy(x, t, label_smoothing=0.1),
         [normal(5, 6), LABELS5]),
    case("cross_entropy-weight", lambda M, x, t, w: M.cross_entropy(x, t, w),
         [normal(6, 5), LABELS, positive(5)], (0,)),
    case("cross_entropy-ignore_index", lambda M, x, t: M.cross_entropy(x, t, ignore_index=-100),
         [normal(6, 5), WITH_IGNORED]),
    case("cross_entropy-weight-ignore", lambda M, x, t, w: M.cross_entropy(x, t, w, ignore_index=4),
         [normal(5, 6), LABELS5, positive(6)], (0,)),
    case("cross_entropy-weight-ignore-smoothing",
         lambda M, x, t, w: M.cross_entropy(x, t, weight=w, label_smoothing=0.3),
         [normal(6, 5), WITH_IGNORED, positive(5)], (0,)),
    case("cross_entropy-sum", lambda M, x, t: M.cross_entropy(x, t, reduction="sum"), [normal(6, 5), LABELS]),
    case("cross_entropy-none", lambda M, x, t: M.cross_entropy(x, t, reduction="none"), [normal(5, 6), LABELS5]),
    case("cross_entropy-none-weight", lambda M, x, t, w: M.cross_entropy(x, t, w, reduction="none"),
         [normal(6, 5), WITH_IGNORED, positive(5)], (0,)),
    case("cross_entropy-spatial", lambda M, x, t: M.cross_entropy(x, t),
         [normal(2, 3, 2, 2), np.array([[[0, 2], [1, 1]], [[2, 0], [0, 1]]])]),
    case("cross_entropy-probabilities", lambda M, x, q: M.cross_entropy(x, q, label_smoothing=0.1),
         [normal(4, 5), positive(4, 5) / 5]),
    case("cross_entropy-probabilities-2d", lambda M, x, q: M.cross_entropy(x, q, label_smoothing=0.2),
         [normal(2, 6, 3, 2), positive(2, 6, 3, 2)]),
    case("cross_entropy-1d", lambda M, x, t: M.cross_entropy(x, t), [normal(5), np.array(2)]),
    case("cross_entropy-huge-logits", lambda M, x, t: M.cross_entropy(x, t),
         [np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 5.0]]), np.array([0, 1])]),
    *(case(f"cross_entropy-{reduction}-smoothing{smoothing}",
           lambda M, x, t, r=reduction, ls=smoothing: M.cross_entropy(x, t, reduction=r, label_smoothing=ls),
           [normal(8, 5, scale=3), rng.integers(0, 5, 8)])
      for reduction in ("mean", "sum", "none") for smoothing in (0.0, 0.2)),
    case("mse_loss", lambda M, a, b: M.mse_loss(a, b), [normal(3, 4), normal(3, 4)]),
    case("mse_loss-sum", lambda M, a, b: M.mse_loss(a, b, reduction="sum"), [normal(3, 4), normal(3, 4)]),
    # layers as functions
    case("linear", lambda M, x, w, b: M.linear(x, w, b), [normal(4, 5), normal(3, 5), normal(3)]),
    case("linear-no-bias", lambda M, x, w: M.linear(x, w), [normal(2, 4, 5), normal(3, 5)]),
    case("linear-wide", lambda M, x, w, b: M.linear(x, w, b), [normal(5, 7), normal(3, 7), normal(3)]),
    case("conv2d", lambda M, x, w, b: M.conv2d(x, w, b, stride=2, padding=1),
         [normal(2, 3, 7, 7), normal(4, 3, 3, 3), normal(4)]),
    case("conv2d-padded", lambda M, x, w, b: M.conv2d(x, w, b, padding=1), [X4, normal(5, 4, 3, 3), normal(5)]),
    case("conv2d-groups-dilation", lambda M, x, w: M.conv2d(x, w, padding=2, dilation=2, groups=2),
         [normal(1, 4, 6, 6), normal(4, 2, 3, 3)]),
    case("conv2d-grouped-strided-dilated", lambda M, x, w: M.conv2d(x, w, stride=2, padding=2, dilation=2, groups=2),
         [X4, normal(6, 2, 3, 3)]),
    case("conv2d-depthwise", lambda M, x, w: M.conv2d(x, w, padding=1, groups=4), [X4, normal(4, 1, 3, 3)]),
    case("conv2d-pointwise-strided", lambda M, x, w: M.conv2d(x, w, stride=2), [X4, normal(3, 4, 1, 1)]),
    case("conv_transpose2d", lambda M, x, w, b: M.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
         [X4, normal(4, 3, 3, 3), normal(3)]),
    case("conv_transpose2d-grouped", lambda M, x, w: M.conv_transpose2d(x, w, stride=1, groups=2),
         [X4, normal(4, 3, 2, 2)]),
    *(case(f"conv2d-stride{s}-pad{p}-dilation{d}-groups{g}",
           lambda M, x, w, b, s=s, p=p, d=d, g=g: M.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g),
           [normal(2, 4, 7, 6), normal(8, 4 // g, 3, 3), normal(8)])
      for s, p, d, g in [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (2, 1, 1, 2), (1, 1, 1, 4), (3, 0, 1, 1)]),
    *(case(f"conv_transpose2d-stride{s}-pad{p}-outpad{o}-groups{g}",
           lambda M, x, w, b, s=s, p=p, o=o, g=g: M.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=o,
                                                                     groups=g),
           [normal(2, 4, 5, 5), normal(4, 3, 3, 3), normal(3 * g)])
      for s, p, o, g in [(1, 0, 0, 1), (2, 1, 1, 1), (2, 0, 0, 2)]),
    case("max_pool2d", lambda M, x: M.max_pool2d(x, 3, 2, padding=1), [distinct(2, 2, 7, 6)]),
    case("max_pool2d-ceil", lambda M, x: M.max_pool2d(x, 3, 2, padding=1, ceil_mode=True),
         [distinct(2, 3, 9, 8, scale=0.01)]),
    case("max_unpool2d", lambda M, x, i: M.max_unpool2d(x, i, 2), [POOLED, SWITCHES], (0,)),
    case("avg_pool2d", lambda M, x: M.avg_pool2d(x, 2), [normal(2, 2, 6, 6)]),
    case("avg_pool2d-ceil-exclude-pad",
         lambda M, x: M.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False), [X4]),
    *(case(f"max_pool2d-kernel{k}-stride{s}-pad{p}{'-ceil' if c else ''}-indices",
           lambda M, x, k=k, s=s, p=p, c=c: M.max_pool2d(x, k, s, padding=p, ceil_mode=c, return_indices=True),
           [distinct(2, 3, 9, 8, scale=0.01)])
      for k, s, p, c in [(2, 2, 0, False), (3, 2, 1, False), (3, 2, 0, True), (2, 2, 1, True), (3, 1, 1, False)]),
    *(case(f"avg_pool2d-kernel{k}-stride{s}-pad{p}{'-ceil' if c else ''}{'' if i else '-exclude-pad'}",
           lambda M, x, k=k, s=s, p=p, c=c, i=i: M.avg_pool2d(x, k, s, padding=p, ceil_mode=c, count_include_pad=i),
           [normal(2, 3, 9, 8)])
      for k, s, p, c, i in [(2, 2, 0, False, True), (3, 2, 1, False, True), (3, 2, 1, True, False),
                            (3, 2, 1, True, True), (2, 3, 1, True, False)]),
    *(case(f"adaptive_avg_pool2d-{size}", lambda M, x, size=size: M.adaptive_avg_pool2d(x, size),
           [normal(2, 3, 7, 10)]) for size in (1, 3, (2, 5))),
    case("adaptive_avg_pool2d", lambda M, x: M.adaptive_avg_pool2d(x, (2, 3)), [normal(2, 2, 5, 7)]),
    case("adaptive_avg_pool2d-bins", lambda M, x: M.adaptive_avg_pool2d(x, (4, 3)), [X4]),
    case("adaptive_avg_pool2d-divisible", lambda M, x: M.adaptive_avg_pool2d(x, (3, 4)), [X4]),
    case("global_avg_pool2d", lambda M, x: M.global_avg_pool2d(x), [X4], torch=MINIDL_ONLY),
    case("batch_norm-train", lambda M, x, w, b: M.batch_norm(x, None, None, w, b, training=True),
         [normal(4, 3, 2, 2), positive(3), normal(3)]),
    case("batch_norm-train-running", lambda M, x, w, b, m, v: (M.batch_norm(x, m, v, w, b, training=True), m, v),
         [X4, positive(4), normal(4), normal(4), positive(4)], (0, 1, 2)),
    *(case(f"batch_norm-momentum-then-eval-{len(shape)}d",   # the running statistics, then eval mode on them
           lambda M, x, w, b, m, v: (M.batch_norm(x, m, v, w, b, training=True, momentum=0.2),
                                     M.batch_norm(x, m, v, w, b), m, v),
           [normal(*shape, scale=2) + 1, positive(3), normal(3), np.zeros(3), np.ones(3)], (0, 1, 2),
           gradcheck=STATEFUL)
      for shape in [(4, 3, 5, 5), (6, 3)]),
    case("batch_norm-eval", lambda M, x, m, v: M.batch_norm(x, m, v), [normal(4, 3, 2, 2), normal(3), positive(3)],
         (0,)),
    case("batch_norm-eval-affine", lambda M, x, w, b, m, v: M.batch_norm(x, m, v, w, b, training=False),
         [X4, positive(4), normal(4), normal(4), positive(4)], (0, 1, 2)),
    case("batch_norm-2d", lambda M, x, w, b: M.batch_norm(x, None, None, w, b, training=True),
         [normal(6, 4), positive(4), normal(4)]),
    *(case(f"batch_norm-train-no-affine-{len(shape)}d", lambda M, x: M.batch_norm(x, None, None, training=True),
           [normal(*shape, scale=2) + 1]) for shape in [(4, 3, 2, 2), (5, 3)]),
    *(case(f"batch_norm-eval-affine-{len(shape)}d",
           lambda M, x, w, b, m, v: M.batch_norm(x, m, v, w, b, training=False),
           [normal(*shape), positive(3), normal(3), normal(3), positive(3)], (0, 1, 2))
      for shape in [(4, 3, 2, 2), (5, 3)]),
    case("local_response_norm", lambda M, x: M.local_response_norm(x, size=3, alpha=0.1, k=1.0), [X4],
         torch="minidl's alpha is the paper's (undivided by size); tested in PyTorch's convention below"),
    case("local_response_norm-defaults", lambda M, x: M.local_response_norm(x, 3), [normal(2, 5, 3, 3, scale=10)]),
    *(case(f"local_response_norm-size{n}", lambda M, x, n=n: M.local_response_norm(x, n, alpha=1e-2, beta=0.75, k=1.0),
           [normal(2, 7, 4, 4, scale=3)]) for n in (2, 3, 5)),
    *(case(f"local_response_norm-size{n}-k2-{'alpha-over-size' if over else 'paper-alpha'}",
           lambda M, x, n=n, over=over: M.local_response_norm(x, n, alpha=0.5, beta=0.75, k=2.0,
                                                              **({} if over else {"alpha_over_size": False})),
           [normal(2, 6, 3, 3)], **({} if over else {"torch": MINIDL_ONLY}))
      for n in (1, 2, 3, 5) for over in (False, True)),
    case("dropout", lambda M, x: M.dropout(x, 0.3), [normal(4, 50)],
         torch="random masks: minidl's generator is not torch's"),
    case("dropout-off", lambda M, x: M.dropout(x, 0.5, training=False), [normal(3, 4)]),
    case("drop_path", lambda M, x: M.drop_path(x, 0.5), [X4], torch=MINIDL_ONLY),
]


def cases_for(check):
    """The cases ``check`` runs on."""
    return [c for c in CASES if c.runs(check)]


def covered_names(cases=CASES):
    """The public names the cases exercise (a case id is NAME or NAME-variant)."""
    return {c.name for c in cases}
