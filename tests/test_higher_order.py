"""Higher-order gradients (issue 17): backward(create_graph=True), minidl.grad, gradgradcheck."""
import gc
import os
import pathlib
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
import minidl.functions as F
from minidl import Function, GradcheckError, gradgradcheck
from tests.helpers import t64, tie_free


def leaf(shape, low=-2.0, high=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return minidl.tensor(rng.uniform(low, high, size=shape), dtype="float64", requires_grad=True)


def away_from_zero(shape, seed=0, low=0.2, high=2.0):
    """Values with |x| in [low, high] and random signs: no kinks (relu, abs, clamp at 0) within eps."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return minidl.tensor(values, dtype="float64", requires_grad=True)


def distinct(shape, seed=0):
    """A shuffled grid spaced 0.1 apart: no ties (max, min, maximum) within eps."""
    return t64(tie_free(shape, np.random.default_rng(seed)))


shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
few = settings(max_examples=4, deadline=None)


# -- the mechanism ------------------------------------------------------------------------------------
def test_backward_with_create_graph_gives_a_differentiable_grad():
    x = minidl.tensor([1.5, -2.0], dtype="float64", requires_grad=True)
    (x * x * x).sum().backward(create_graph=True)
    g = x.grad
    assert g.creator is not None and g.requires_grad            # PyTorch: x.grad.grad_fn is not None
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    x.grad = None
    g.sum().backward()                                           # d/dx sum(3 x^2) = 6 x
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_second_order_accumulates_out_of_place_and_first_order_is_unchanged():
    x = minidl.tensor([2.0], dtype="float64", requires_grad=True)
    (x * x).sum().backward(create_graph=True)
    first = x.grad
    (x * x * x).sum().backward(create_graph=True)
    assert x.grad is not first and first.item() == 4.0          # out of place: the first grad is intact
    assert x.grad.item() == 4.0 + 12.0


def test_grad_returns_a_tuple_and_leaves_dot_grad_alone():
    x = leaf((3,))
    y = leaf((3,), seed=1)
    out = (F.exp(x) * y).sum()
    gx, gy = minidl.grad(out, [x, y])
    assert x.grad is None and y.grad is None
    np.testing.assert_allclose(gx.data, np.exp(x.data) * y.data)
    np.testing.assert_allclose(gy.data, np.exp(x.data))
    assert gx.creator is None and not gx.requires_grad           # no create_graph: a plain tensor


def test_grad_is_also_minidl_autograd_grad_as_in_torch():
    x = leaf((3,))
    (g,) = minidl.autograd.grad((x * x).sum(), [x], create_graph=True)
    assert g.creator is not None
    np.testing.assert_allclose(g.data, 2 * x.data)


def test_grad_with_grad_outputs_and_several_outputs():
    x = leaf((2, 3))
    a, b = x * 2.0, F.exp(x)
    u, v = leaf((2, 3), seed=2), leaf((2, 3), seed=3)
    (g,) = minidl.grad([a, b], [x], grad_outputs=[u, v])
    np.testing.assert_allclose(g.data, 2 * u.data + np.exp(x.data) * v.data)


def test_grad_allow_unused():
    x, z = leaf((2,)), leaf((2,), seed=1)
    out = (x * x).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        minidl.grad(out, [x, z], retain_graph=True)
    gx, gz = minidl.grad(out, [x, z], allow_unused=True)
    assert gz is None
    np.testing.assert_allclose(gx.data, 2 * x.data)


def test_grad_with_respect_to_an_intermediate_tensor():
    x = leaf((3,))
    h = F.exp(x)
    out = (h * h).sum()
    (gh,) = minidl.grad(out, h)
    np.testing.assert_allclose(gh.data, 2 * h.data)


def test_differentiating_a_gradient_computed_without_create_graph_fails_clearly():
    x = leaf((3,))
    (x * x).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad.*create_graph=True"):
        x.grad.sum().backward()
    (g,) = minidl.grad((x * x).sum(), x)
    with pytest.raises(RuntimeError, match="element 0 .* does not require grad"):
        minidl.grad(g.sum(), x)


def test_retain_graph_defaults_to_create_graph():
    x = leaf((2,))
    y = F.exp(x).sum()
    y.backward(create_graph=True)      # retains the graph: a second backward works
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_an_op_without_backward_graph_names_itself():
    class Square(Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return 2 * gy * self.x

    x = leaf((2,))
    with pytest.raises(NotImplementedError, match="Square: second-order gradients .* not implemented"):
        Square()(x).sum().backward(create_graph=True)


def test_second_order_graph_is_freed_after_use():
    x = leaf((4,))
    (g,) = minidl.grad(F.exp(x).sum(), x, create_graph=True)
    node = weakref.ref(g.creator)
    (h,) = minidl.grad(g.sum(), x)
    np.testing.assert_allclose(h.data, np.exp(x.data))
    assert node().inputs is None                    # released by the backward that used it
    del g
    gc.collect()
    assert node() is None


# -- gradgradcheck ------------------------------------------------------------------------------------
class _Square(Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return 2 * gy * self.inputs[0].data


def test_gradgradcheck_catches_a_backward_graph_that_disagrees_with_backward():
    class BadSquare(_Square):
        def backward_graph(self, gy):
            return gy * self.inputs[0] * 3.0      # wrong: should be 2

    with pytest.raises(GradcheckError, match=r"input 0 at element \(0,\) .* with create_graph=True"):
        gradgradcheck(lambda x: BadSquare()(x), [leaf((3,))])


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class DetachedSquare(_Square):
        def backward_graph(self, gy):
            return gy * self.inputs[0].detach() * 2.0      # right values, but not differentiable in x

    with pytest.raises(GradcheckError, match=r"gradgradcheck failed at input 0 \(3,\), element"):
        gradgradcheck(lambda x: DetachedSquare()(x), [leaf((3,))])


@few
@given(shapes, st.booleans())
def test_gradgradcheck_add_mul(shape, broadcast):
    a = leaf(shape)
    b = leaf(shape[-1:] if broadcast else shape, seed=1)
    assert gradgradcheck(lambda a, b: a + b * a - b, [a, b])


@few
@given(shapes)
def test_gradgradcheck_exp_sum(shape):
    x = leaf(shape, -1, 1)
    assert gradgradcheck(lambda x: F.exp(x).sum(0) * F.exp(x).sum(), [x])
    assert gradgradcheck(lambda x: (x * x).sum(-1, keepdim=True) * x, [x])


# -- every op of minidl.ops and of the functions above it (activation, loss, shape, linear, dropout) ------
def _dropout(x):
    minidl.manual_seed(5)      # the same mask at every evaluation of the finite differences
    return F.dropout(x * x, 0.4) + F.drop_path(x * x, 0.5)


UNARY = {
    "neg": lambda x: -(x * x),
    "pow": lambda x: x ** 3 + (x * x + 1) ** 2.5 + (x * x) ** 0.5 + x ** 0 * x,
    "exp": F.exp,
    "log": lambda x: F.log(x * x),
    "sqrt": lambda x: F.sqrt(x * x + 1),
    "abs": lambda x: F.abs(x) * x,
    "clamp": lambda x: F.clamp(x, -1.0, 1.0) * x + x.clamp(min=0.5) * x,
    "relu": lambda x: F.relu(x) * x,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1) * x,
    "tanh": F.tanh,
    "scaled_tanh": lambda x: F.scaled_tanh(x) + F.scaled_tanh(x, outer=-0.5, inner=3.0),
    "sigmoid": F.sigmoid,
    "logsigmoid": F.logsigmoid,
    "softplus": lambda x: F.softplus(x) + F.softplus(x, beta=2.0, threshold=1.0) * x,
    "softmax": lambda x: F.softmax(x, dim=-1),
    "log_softmax": lambda x: F.log_softmax(x, dim=0),
    "sum": lambda x: x.sum(0) * x.sum(),
    "mean": lambda x: x.mean(-1, keepdim=True) * x,
    "var": lambda x: (x.var(0) if x.shape[0] > 1 else x.var(0, correction=0)) + x.var(correction=0),
    "std": lambda x: (x.std(-1, keepdim=True) if x.shape[-1] > 1 else 1) * x * F.cat([x.flatten(), x.flatten() + 1]).std(),
    "reshape_flatten": lambda x: x.reshape(-1) * x.flatten(),
    "permute_transpose_T": lambda x: x.T * x.permute(*reversed(range(x.ndim))) + x.transpose(0, -1) ** 2,
    "unsqueeze_squeeze": lambda x: x.unsqueeze(1).squeeze() ** 2,
    "expand": lambda x: x[..., :1].expand(*x.shape) * x,
    "getitem_basic": lambda x: x[..., 1:] * x[..., :-1] if x.shape[-1] > 1 else x[0] * x[0],
    "getitem_repeated": lambda x: x[[0, 0, -1]] ** 2,
    "clone_to_dtype": lambda x: x.clone() * x.to(dtype="float64"),
    "dropout_drop_path": _dropout,
}
KINKED = {"abs", "clamp", "relu", "leaky_relu"}


@pytest.mark.parametrize("name", sorted(UNARY))
@few
@given(shape=shapes, seed=st.integers(0, 1000))
def test_gradgradcheck_unary(name, shape, seed):
    x = away_from_zero(shape, seed) if name in KINKED else leaf(shape, seed=seed)
    if name in ("clamp",):
        x = away_from_zero(shape, seed, low=0.55, high=0.95)
    assert gradgradcheck(UNARY[name], [x])


REDUCING = {
    "max_min_dim": lambda x: x.max(0).values * x.min(-1, keepdim=True).values.sum(),
    "max_min_all": lambda x: x.max() * x.min() * x,
    "amax_amin": lambda x: x.amax(dim=-1) * x.amin(dim=0).sum() + x.amax() ** 2,
}


@pytest.mark.parametrize("name", sorted(REDUCING))
@few
@given(shape=shapes, seed=st.integers(0, 1000))
def test_gradgradcheck_max_min_route_through_the_recorded_indices(name, shape, seed):
    assert gradgradcheck(REDUCING[name], [distinct(shape, seed)])


BINARY = {
    "add_sub": lambda a, b: (a + b) * (a - b),
    "mul_div": lambda a, b: a * b / (b * b + 1),
    "pow_tensor": lambda a, b: (a * a + 0.5) ** b + 2.0 ** b,
    "maximum_minimum": lambda a, b: F.maximum(a, b) * F.minimum(a, b),
    "mse_loss_none": lambda a, b: F.mse_loss(a, b.expand(*a.shape), reduction="none") * a,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@few
@given(shape=shapes, broadcast=st.booleans(), seed=st.integers(0, 1000))
def test_gradgradcheck_binary_with_broadcasting(name, shape, broadcast, seed):
    a = distinct(shape, seed)
    b = distinct(shape[-1:] if broadcast else shape, seed + 1)
    b.data += 0.033   # no ties between a and b
    assert gradgradcheck(BINARY[name], [a, b])


@few
@given(n=st.integers(1, 3), k=st.integers(1, 3), m=st.integers(1, 3), batch=st.sampled_from([(), (2,), (2, 1)]))
def test_gradgradcheck_matmul(n, k, m, batch):
    a, b = leaf(batch + (n, k)), leaf((k, m), seed=1)
    assert gradgradcheck(lambda a, b: F.matmul(a, b), [a, b])
    v = leaf((k,), seed=2)
    assert gradgradcheck(lambda a, v: (a @ v) * (v @ v), [a, v])


@few
@given(n=st.integers(1, 3), k=st.integers(1, 4), m=st.integers(1, 3), bias=st.booleans(), lead=st.sampled_from([(), (2,)]))
def test_gradgradcheck_linear(n, k, m, bias, lead):
    x, W = leaf(lead + (n, k)), leaf((m, k), seed=1)
    inputs = [x, W] + ([leaf((m,), seed=2)] if bias else [])
    assert gradgradcheck(lambda *t: F.linear(*t) ** 2, inputs)


@few
@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=3), seed=st.integers(0, 1000))
def test_gradgradcheck_cat_split_pad(shape, seed):
    a, b = leaf(shape, seed=seed), leaf(shape, seed=seed + 1)
    assert gradgradcheck(lambda a, b: F.cat([a * b, b], dim=1) ** 2, [a, b])
    assert gradgradcheck(lambda a: tuple(p * p for p in F.split(a * a, 1, dim=0)), [a])
    assert gradgradcheck(lambda a: F.pad(a * a, (1, 0, 0, 2)) * 1.5, [a])


CROSS_ENTROPY = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(label_smoothing=0.2),
    dict(weight=[1.0, 2.0, 0.5], ignore_index=1),
    dict(weight=[1.0, 2.0, 0.5], label_smoothing=0.1, reduction="none"),
]


@pytest.mark.parametrize("kwargs", CROSS_ENTROPY, ids=str)
@few
@given(n=st.integers(1, 3), spatial=st.sampled_from([(), (2,), (1, 2)]), seed=st.integers(0, 1000))
def test_gradgradcheck_cross_entropy_class_indices(kwargs, n, spatial, seed):
    x = leaf((n, 3) + spatial, seed=seed)
    target = minidl.tensor(np.random.default_rng(seed).integers(0, 3, size=(n,) + spatial))
    kwargs = dict(kwargs)
    if "weight" in kwargs:
        kwargs["weight"] = minidl.tensor(kwargs["weight"], dtype="float64")
    if kwargs.get("ignore_index") is not None:
        target.data[..., 0] = np.where(target.data[..., 0] == 1, 0, target.data[..., 0])   # keep a non-ignored one
    assert gradgradcheck(lambda x: F.cross_entropy(x, target, **kwargs), [x])


@pytest.mark.parametrize("kwargs", [dict(), dict(reduction="none", label_smoothing=0.3),
                                    dict(weight=[0.5, 1.0, 2.0], reduction="sum")], ids=str)
@few
@given(n=st.integers(1, 3), spatial=st.sampled_from([(), (2,)]), seed=st.integers(0, 1000))
def test_gradgradcheck_cross_entropy_probabilities(kwargs, n, spatial, seed):
    x = leaf((n, 3) + spatial, seed=seed)
    q = F.softmax(leaf((n, 3) + spatial, seed=seed + 1), dim=1).detach().requires_grad_()
    kwargs = dict(kwargs)
    if "weight" in kwargs:
        kwargs["weight"] = minidl.tensor(kwargs["weight"], dtype="float64")
    assert gradgradcheck(lambda x, q: F.cross_entropy(x, q, **kwargs), [x, q])
    x1 = leaf((3,), seed=seed)
    assert gradgradcheck(lambda x: F.cross_entropy(x, minidl.tensor(1)) + F.cross_entropy(x, q[0, :, ...].detach()
                                                                                          .reshape(-1)[:3]), [x1])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradgradcheck_mse_loss(reduction):
    a, b = leaf((2, 3)), leaf((2, 3), seed=1)
    assert gradgradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction) * F.mse_loss(a, b * 2), [a, b])


def _gradient_of(fn):
    """x -> d sum(fn(x) * u) / dx as a graph: gradgradcheck of it checks the third derivatives, i.e. the
    backward_graph of the ops that second-order gradients are made of (their adjoint pairs)."""
    def gradient(x):
        with minidl.enable_grad():      # gradcheck evaluates fn under no_grad; a gradient needs its graph
            y = fn(x)
            u = minidl.tensor(np.linspace(-1.0, 1.5, y.numel()).reshape(y.shape), dtype="float64")
            return minidl.grad((y * u).sum(), x, create_graph=True)[0]
    return gradient


THIRD_ORDER = {
    "getitem <-> index scatter": lambda x: x[[0, 0, -1]] ** 3,
    "take <-> put along axis (max dim)": lambda x: x.max(-1).values ** 3,
    "sum_to_size <-> broadcast_to": lambda x: (x[..., :1] * x) ** 2,
    "keep where (pow with tensor exponent)": lambda x: (x * x + 1) ** (x * 0.5),
    "pad <-> slice, cat <-> split": lambda x: F.pad(F.cat([x, x * x], dim=-1), (1, 1)) ** 3,
    "softmax, log_softmax, tanh, sigmoid": lambda x: F.softmax(x, dim=-1) * F.log_softmax(F.tanh(x), dim=-1)
    + F.sigmoid(x),
}


@pytest.mark.parametrize("name", sorted(THIRD_ORDER))
@settings(max_examples=2, deadline=None)
@given(shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=3), seed=st.integers(0, 1000))
def test_third_order_gradgradcheck_of_a_gradient(name, shape, seed):
    x = distinct(shape, seed)
    x.data += 0.033     # off the grid's 0: pow's exponent x / 2 is never 0, where its gradient is pinned to 0
    assert gradgradcheck(_gradient_of(THIRD_ORDER[name]), [x])


# -- against PyTorch ------------------------------------------------------------------------------------
def _mlp_params(rng):
    shapes = [(6, 4), (6,), (3, 6), (3,)]
    return [rng.standard_normal(s) * 0.7 for s in shapes]


def test_hessian_vector_product_of_an_mlp_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays, x, t = _mlp_params(rng), rng.standard_normal((5, 4)), rng.integers(0, 3, size=5)
    vs = [rng.standard_normal(a.shape) for a in arrays]

    params = [minidl.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    h = F.softplus(F.linear(minidl.tensor(x, dtype="float64"), params[0], params[1]))
    loss = F.cross_entropy(F.tanh(F.linear(h, params[2], params[3])), minidl.tensor(t), label_smoothing=0.1)
    grads = minidl.grad(loss, params, create_graph=True)
    dot = sum((g * minidl.tensor(v, dtype="float64")).sum() for g, v in zip(grads, vs))
    ours = minidl.grad(dot, params)

    tparams = [torch.tensor(a, requires_grad=True) for a in arrays]
    th = torch.nn.functional.softplus(torch.nn.functional.linear(torch.tensor(x), tparams[0], tparams[1]))
    tloss = torch.nn.functional.cross_entropy(torch.tanh(torch.nn.functional.linear(th, tparams[2], tparams[3])),
                                              torch.tensor(t), label_smoothing=0.1)
    tgrads = torch.autograd.grad(tloss, tparams, create_graph=True)
    tdot = sum((g * torch.tensor(v)).sum() for g, v in zip(tgrads, vs))
    theirs = torch.autograd.grad(tdot, tparams)
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=0, atol=1e-12)
    for hv, thv in zip(ours, theirs):
        np.testing.assert_allclose(hv.data, thv.numpy(), rtol=0, atol=1e-10)


def test_grad_arguments_mean_what_torch_autograd_grad_means():
    torch = pytest.importorskip("torch")
    a, b, u = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.3, -0.7]), np.array([1.0, -2.0, 0.5])
    x, y, unused = (minidl.tensor(v, dtype="float64", requires_grad=True) for v in (a, b, b))
    tx, ty, tunused = (torch.tensor(v, requires_grad=True) for v in (a, b, b))
    ours = minidl.grad([x * y, F.exp(x)], [x, y, unused], grad_outputs=[minidl.tensor(u, dtype="float64"),
                                                                       minidl.tensor(b, dtype="float64")],
                       allow_unused=True)
    theirs = torch.autograd.grad([tx * ty, torch.exp(tx)], [tx, ty, tunused],
                                 grad_outputs=[torch.tensor(u), torch.tensor(b)], allow_unused=True)
    assert isinstance(ours, tuple) and isinstance(theirs, tuple) and len(ours) == len(theirs) == 3
    assert ours[2] is None and theirs[2] is None
    for g, tg in zip(ours[:2], theirs[:2]):
        np.testing.assert_allclose(g.data, tg.numpy(), rtol=1e-14)
    assert x.grad is None and tx.grad is None          # neither touches .grad
    with pytest.raises(RuntimeError):                  # both refuse an unused input without allow_unused
        torch.autograd.grad((tx * 2).sum(), [tx, tunused])
    with pytest.raises(RuntimeError, match="allow_unused"):
        minidl.grad((x * 2).sum(), [x, unused])


def test_retain_graph_semantics_match_torch():
    torch = pytest.importorskip("torch")
    for lib, exp, make in ((minidl, F.exp, lambda: minidl.tensor([0.5, 1.0], dtype="float64", requires_grad=True)),
                           (torch, torch.exp, lambda: torch.tensor([0.5, 1.0], dtype=torch.float64,
                                                                   requires_grad=True))):
        grad = minidl.grad if lib is minidl else torch.autograd.grad
        x = make()
        y = exp(x).sum()
        grad(y, x)                                   # retain_graph defaults to False
        with pytest.raises(RuntimeError):
            grad(y, x)
        y = exp(x).sum()
        (g,) = grad(y, x, create_graph=True)       # retain_graph defaults to create_graph: kept
        grad(y, x)
        x2 = make()
        (g,) = grad(exp(x2).sum(), x2, create_graph=True, retain_graph=False)
        with pytest.raises(RuntimeError):            # exp's saved output was freed: g cannot be differentiated
            grad(g.sum(), x2)


# -- the first-order path is unchanged ------------------------------------------------------------------
_FIRST_ORDER_SCRIPT = textwrap.dedent("""
    import importlib.util, pathlib, sys
    from importlib.abc import MetaPathFinder
    tree = pathlib.Path(sys.argv[2])
    folders = {"minidl": tree / "minidl", "minidl.kernels": tree / "kernels", "minidl.models": tree / "models"}
    class FromTree(MetaPathFinder):   # all three packages from one tree, whatever the editable install maps
        def find_spec(self, name, path=None, target=None):
            if name in folders:
                return importlib.util.spec_from_file_location(
                    name, folders[name] / "__init__.py", submodule_search_locations=[str(folders[name])])
    sys.meta_path.insert(0, FromTree())
    import numpy as np
    import minidl
    import minidl.kernels
    assert pathlib.Path(minidl.kernels.__file__).resolve().parent == (tree / "kernels").resolve(), minidl.kernels.__file__
    import minidl.kernels.conv
    minidl.kernels.conv.DIRECT_MAX_CHANNEL_PAIRS = 0   # the conv algorithm of the starting tree (direct came later)
    minidl.kernels.conv.DIRECT_MAX_CHANNELS_FLOAT32 = 0
    minidl.kernels.conv.DIRECT_STRIDED_MAX_CHANNELS = minidl.kernels.conv.DIRECT_FEW_INPUT_CHANNELS = 0
    import minidl.functions as F
    rng = np.random.default_rng(0)
    def t(*shape, grad=True):
        return minidl.tensor(rng.standard_normal(shape).astype("float32"), requires_grad=grad)
    w1, b1, w2, b2 = t(4, 3, 3, 3), t(4), t(5, 4 * 4 * 4), t(5)
    gamma, beta = t(4), t(4)
    x, target = t(6, 3, 8, 8, grad=False), minidl.tensor(rng.integers(0, 5, size=6))
    h = F.conv2d(x, w1, b1, padding=1)
    h = F.batch_norm(h, None, None, gamma, beta, training=True)
    h = F.max_pool2d(F.relu(h), 2)
    logits = F.linear(F.flatten(h, 1), w2, b2)
    # 2 sigmoid(2x) - 1 = tanh(x): F.tanh's float32 kernel came after the starting tree (different rounding)
    loss = F.cross_entropy(F.log_softmax(F.sigmoid(logits * 2) * 2 - 1, dim=1) * 2 + F.sigmoid(logits), target)
    loss.backward()
    np.savez(sys.argv[1], loss=loss.data, **{f"g{i}": p.grad.data for i, p in enumerate([w1, b1, w2, b2, gamma, beta])})
""")


def test_first_order_gradients_are_bit_identical_to_the_starting_tree(tmp_path):
    """create_graph=False (the default) computes exactly what the engine computed before issue 17."""
    base = pathlib.Path(os.environ.get("MINIDL_BASE_TREE", "/work/base"))
    if not (base / "minidl" / "autograd.py").exists():
        pytest.skip(f"no starting tree at {base} (set MINIDL_BASE_TREE to a checkout from before issue 17)")
    here = pathlib.Path(minidl.__file__).resolve().parents[1]
    script = tmp_path / "first_order.py"
    script.write_text(_FIRST_ORDER_SCRIPT)
    results = {}
    for name, tree in (("base", base), ("here", here)):
        env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1")   # BLAS's results depend on its threads
        subprocess.run([sys.executable, str(script), str(tmp_path / f"{name}.npz"), str(tree)], env=env, check=True,
                       cwd=tmp_path, timeout=300)
        results[name] = np.load(tmp_path / f"{name}.npz")
    assert sorted(results["base"].files) == sorted(results["here"].files)
    for key in results["base"].files:
        np.testing.assert_array_equal(results["here"][key], results["base"][key], err_msg=key)


# -- the example ------------------------------------------------------------------------------------------
def test_example_newton_and_hessian_vector_product(capsys):
    import runpy
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "higher_order_gradients.py"
    example = runpy.run_path(str(path), run_name="example")
    newton_steps, x = example["newton"]()
    descent_steps, _ = example["gradient_descent"]()
    assert newton_steps <= 10 and abs(x - 1.0) < 1e-12        # f = x^4 - 2x^2 has its minimum at x = 1
    assert descent_steps >= 100
    hv, explicit = example["hessian_vector_product"]()
    np.testing.assert_allclose(hv, explicit, rtol=0, atol=1e-12)
    example["main"]()
    printed = capsys.readouterr().out
    assert f"{newton_steps:4d} steps" in printed and f"{descent_steps:4d} steps" in printed


def test_gradcheck_and_gradgradcheck_take_a_non_leaf_input_and_leave_dot_grad_alone():
    base = leaf((3,))
    x = base * 2.0                      # not a leaf: the checks differentiate with respect to x itself
    assert minidl.gradcheck(lambda x: F.exp(x) * x, [x])
    assert gradgradcheck(lambda x: F.exp(x) * x, [x])
    assert base.grad is None and x.grad is None


# Which gradients PyTorch records as depending on the input: a piecewise-linear op's gradient is recorded
# through its input (relu: ThresholdBackwardBackward0), so differentiating it again gives zeros, where a
# gradient built from a boolean mask (clamp) or none at all (mean) does not require grad.
RECORDED = [   # (id, the op written once for both libraries, whether torch records the gradient through x)
    ("relu", lambda M, x: M.nn.functional.relu(x), True),
    ("leaky_relu", lambda M, x: M.nn.functional.leaky_relu(x, 0.1), True),
    ("abs", lambda M, x: x.abs(), True),
    ("max_pool2d", lambda M, x: M.nn.functional.max_pool2d(x, 2), True),
    ("avg_pool2d", lambda M, x: M.nn.functional.avg_pool2d(x, 2), True),
    ("adaptive_avg_pool2d-2", lambda M, x: M.nn.functional.adaptive_avg_pool2d(x, 2), True),
    ("adaptive_avg_pool2d-1", lambda M, x: M.nn.functional.adaptive_avg_pool2d(x, 1), False),
    ("clamp", lambda M, x: x.clamp(-0.5, 0.5), False),
    ("amax", lambda M, x: x.amax(-1), False),
    ("max-dim", lambda M, x: x.max(-1)[0], False),
    ("mean", lambda M, x: x.mean(), False),
    ("getitem", lambda M, x: x[..., 1], False),
]


@pytest.mark.parametrize("name, op, expected", RECORDED, ids=[r[0] for r in RECORDED])
def test_a_gradient_depends_on_its_input_where_pytorch_records_it(name, op, expected):
    torch = pytest.importorskip("torch")
    data = tie_free((2, 3, 4, 4), np.random.default_rng(0))
    xt = torch.tensor(data, requires_grad=True)
    gt, = torch.autograd.grad(op(torch, xt).sum(), xt, create_graph=True)
    assert gt.requires_grad == expected
    x = minidl.tensor(data, requires_grad=True)
    as_torch = type("M", (), {"nn": type("nn", (), {"functional": F})})   # M.nn.functional is minidl.functions
    g, = minidl.grad(op(as_torch, x).sum(), x, create_graph=True)
    np.testing.assert_array_equal(g.numpy(), gt.detach().numpy())
    assert g.requires_grad == gt.requires_grad
    if expected:     # differentiating again: zeros, as torch (not "does not require grad")
        gg, = minidl.grad((g * g).sum(), x)
        ggt, = torch.autograd.grad((gt * gt).sum(), xt)
        np.testing.assert_array_equal(gg.numpy(), ggt.numpy(force=True))   # torch may answer a ZeroTensor
        assert not gg.numpy().any()
