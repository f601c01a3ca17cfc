"""Elementwise ops, reductions and shape ops: what the op table (op_cases.py, whose rows are all gradient-checked
in float64 by test_op_table.py) cannot say: values against their definitions, properties over hypothesis shapes,
the tie rule, stability at huge logits, dropout's statistics."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.functions as F
from tests.helpers import check_grad, t64, tie_free

rng = np.random.default_rng(0)


def test_operators_match_functions():
    a, b = t64((3, 4)), t64((4,))
    for expr, ref in [(a + b, a.data + b.data), (a - b, a.data - b.data), (a * b, a.data * b.data),
                      (a / (b + 3), a.data / (b.data + 3)), (2 - a, 2 - a.data), (-a, -a.data), (a ** 2, a.data ** 2),
                      (a @ a.T, a.data @ a.data.T)]:
        np.testing.assert_allclose(expr.data, ref)


def test_scalars_keep_float32():
    x = minidl.ones(3)
    for y in (x + 1, 2 * x, x / 3, x - 1.5, x ** 2, 1 - x):
        assert y.dtype == np.float32


def test_relu_and_leaky_relu_away_from_zero():
    x = rng.uniform(0.1, 1, (4, 5)) * rng.choice([-1, 1], (4, 5))
    check_grad(F.relu, x)
    check_grad(lambda t: F.leaky_relu(t, 0.2), x)
    np.testing.assert_allclose(F.relu(minidl.tensor(x)).data, np.maximum(x, 0).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaled_tanh_is_tanh_scaled_in_one_op(dtype):
    """F.scaled_tanh(x, A, S) against A * tanh(S * x) written with three ops: values and gradients (float32:
    the tanh kernel's own error, ~3e-7 of A), one Function instead of three; bad scales raise naming it."""
    x = rng.standard_normal((4, 6)) * 3
    gy = rng.standard_normal((4, 6))
    for outer, inner in ((1.7159, 2.0 / 3.0), (-0.5, 3.0), (1.0, 1.0)):
        a = minidl.tensor(x.astype(dtype), requires_grad=True)
        b = minidl.tensor(x.astype(dtype), requires_grad=True)
        y = F.scaled_tanh(a, outer, inner)
        z = F.tanh(b * inner) * outer
        assert y.dtype == dtype and y.creator.inputs[0] is a
        tol = 2e-6 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y.data, z.data, rtol=tol, atol=tol * abs(outer))
        np.testing.assert_allclose(y.data, outer * np.tanh(inner * x), rtol=tol, atol=tol * abs(outer))
        y.backward(minidl.tensor(gy.astype(dtype)))
        z.backward(minidl.tensor(gy.astype(dtype)))
        np.testing.assert_allclose(a.grad.data, b.grad.data, rtol=10 * tol, atol=10 * tol * abs(outer * inner))
    np.testing.assert_array_equal(F.scaled_tanh(minidl.tensor(x), 1.0, 1.0).data, F.tanh(minidl.tensor(x)).data)
    edges = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 20.0], dtype)
    y = F.scaled_tanh(minidl.tensor(edges), 1.7159, 2.0 / 3.0).data
    np.testing.assert_allclose(y, [1.7159, -1.7159, np.nan, 0.0, 0.0, 1.7159], rtol=1e-6)
    assert np.signbit(y[4]) and not np.signbit(y[3])
    for bad in (0.0, np.inf, np.nan, True, "1"):
        with pytest.raises(ValueError, match="scaled_tanh: outer"):
            F.scaled_tanh(minidl.tensor(x), outer=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_at_zero_inf_and_nan_as_pytorch(dtype):
    """PyTorch's relu and ReluBackward0: -0.0 and NaN pass, the gradient is 0 where the output is 0, even an
    inf or NaN one (gy * mask would give NaN); the same arrays through torch when it is installed."""
    values = [-0.0, 0.0, np.nan, -np.inf, np.inf, -1.0, 2.0]
    x = minidl.tensor(np.array(values, dtype), requires_grad=True)
    y = F.relu(x)
    np.testing.assert_array_equal(y.data, [0, 0, np.nan, 0, np.inf, 0, 2])
    assert y.dtype == dtype and np.signbit(y.data[0]) and not np.signbit(y.data[3])
    gy = np.array([1.0, np.inf, np.nan, np.nan, 3.0, np.inf, -np.inf], dtype)
    y.backward(minidl.tensor(gy))
    np.testing.assert_array_equal(x.grad.data, [0, 0, np.nan, 0, 3, 0, -np.inf])
    torch = pytest.importorskip("torch")
    tx = torch.tensor(np.array(values, dtype), requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(gy))
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    np.testing.assert_array_equal(np.signbit(y.data), np.signbit(ty.detach().numpy()))
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(axis):
    x = rng.standard_normal((3, 5)) * 3
    check_grad(lambda t: F.softmax(t, axis), x)
    check_grad(lambda t: F.log_softmax(t, axis), x)
    s = F.softmax(t64(x), axis).data
    np.testing.assert_allclose(s.sum(axis=axis), 1.0)
    np.testing.assert_allclose(F.log_softmax(t64(x), axis).data, np.log(s), atol=1e-12)


def test_softmax_is_stable_for_huge_logits():
    x = minidl.tensor([[1000.0, 0.0, -1000.0]])
    assert np.isfinite(F.softmax(x, dim=1).data).all()
    assert np.isfinite(F.log_softmax(x, dim=1).data).all()
    assert np.isfinite(F.sigmoid(x).data).all()


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_reductions(shape, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    keepdims = data.draw(st.booleans())
    x = tie_free(tuple(shape), scale=0.01)
    for fn, name in ((F.sum, "sum"), (F.mean, "mean"), (F.amax, "max"), (F.amin, "min")):
        dim = () if axis is None and fn in (F.amax, F.amin) else axis
        check_grad(lambda t: fn(t, dim, keepdim=keepdims), x)
        np.testing.assert_allclose(fn(t64(x), dim, keepdim=keepdims).data,
                                   getattr(np, name)(x, axis=axis, keepdims=keepdims))
    if axis is not None:    # max / min along a dim: (values, indices), the gradient to the index
        for fn, name in ((F.max, "max"), (F.min, "min")):
            check_grad(lambda t: fn(t, axis, keepdims).values, x)
            values, indices = fn(t64(x), dim=axis, keepdim=keepdims)
            np.testing.assert_allclose(values.data, getattr(np, name)(x, axis=axis, keepdims=keepdims))
            np.testing.assert_array_equal(indices.data, getattr(np, "arg" + name)(x, axis=axis, keepdims=keepdims))


def test_max_ties_share_the_gradient():
    x = t64(np.array([1.0, 3.0, 3.0, 2.0]))
    F.max(x).backward()
    np.testing.assert_allclose(x.grad.data, [0, 0.5, 0.5, 0])


def test_concat_split_pad():
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    check_grad(lambda s, t: F.cat([s, t], dim=1), a, b)
    check_grad(lambda s, t: F.cat([s, t]), a, a.copy())
    check_grad(lambda t: F.split(t, [1, 4], dim=1)[1] * 3, b)
    check_grad(lambda t: F.split(t, 2, 1)[2], b)
    check_grad(lambda t: F.pad(t, (0, 1, 1, 2), value=0.5), a)
    parts = F.split(t64(b), [2, 3], dim=1)
    np.testing.assert_array_equal(F.cat(parts, dim=1).data, b)


def test_cross_entropy_matches_definition_and_gradchecks():
    x = rng.standard_normal((6, 5)) * 2
    labels = np.array([0, 4, 2, 2, 1, 3])
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.1):
            check_grad(lambda t: F.cross_entropy(t, labels, reduction=reduction, label_smoothing=smoothing), x)
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(6), labels].mean()
    assert F.cross_entropy(t64(x), labels).item() == pytest.approx(expected, rel=1e-12)
    smoothed = (0.9 * -log_p[np.arange(6), labels] + 0.1 * -log_p.mean(axis=1)).mean()
    assert F.cross_entropy(t64(x), labels, label_smoothing=0.1).item() == pytest.approx(smoothed, rel=1e-12)


def test_cross_entropy_is_stable():
    x = minidl.tensor([[1e4, 0.0], [0.0, -1e4]], requires_grad=True)
    loss = F.cross_entropy(x, [1, 0])
    loss.backward()
    assert loss.item() == pytest.approx(5e3)
    assert np.isfinite(x.grad.data).all()


def test_mse_loss():
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for reduction in ("mean", "sum", "none"):
        check_grad(lambda s, t: F.mse_loss(s, t, reduction=reduction), a, b)
    assert F.mse_loss(t64(a), t64(b)).item() == pytest.approx(((a - b) ** 2).mean())


def test_dropout_scales_and_is_identity_in_eval():
    x = minidl.ones(1000, 100)
    y = F.dropout(x, 0.3, training=True).data
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert F.dropout(x, 0.3, training=False) is x

    def seeded(t):
        minidl.manual_seed(3)
        return F.dropout(t, 0.4)
    check_grad(seeded, rng.standard_normal((4, 6)))


def test_drop_path_drops_whole_samples():
    y = F.drop_path(minidl.ones(4000, 2, 3, 3), 0.25).data
    per_sample = y.reshape(4000, -1)
    assert (per_sample.min(axis=1) == per_sample.max(axis=1)).all()
    assert abs((per_sample[:, 0] == 0).mean() - 0.25) < 0.03
    np.testing.assert_allclose(per_sample[per_sample[:, 0] > 0], 1 / 0.75, rtol=1e-6)
    x = minidl.ones(2, 3)
    assert F.drop_path(x, 0.5, training=False) is x
