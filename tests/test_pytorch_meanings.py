"""Issue 12's defects, one regression test each: PyTorch names keep PyTorch's meaning, gradients are right
at boundary values, and leaf gradients own their memory. Values are checked against the mathematics here;
tests/functions/op_cases.py (run by test_op_table.py) compares the same ops with PyTorch itself."""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn
from tests.helpers import check_grad


def t64(a, requires_grad=False):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# -- 1. transpose swaps two dims at every rank ----------------------------------------------------------
@pytest.mark.parametrize("dims", [(0, 1), (1, 0), (-2, -1), (-1, 0)])
def test_transpose_of_a_matrix_swaps_its_dims(dims):
    x = np.arange(6.0).reshape(2, 3)
    y = minidl.tensor(x).transpose(*dims)
    assert y.shape == (3, 2)
    np.testing.assert_array_equal(y.numpy(), x.T)
    np.testing.assert_array_equal(F.transpose(minidl.tensor(x), *dims).numpy(), x.T)


def test_transpose_of_a_dim_with_itself_is_the_identity():
    x = minidl.tensor(np.arange(6.0).reshape(2, 3))
    assert x.transpose(0, 0).shape == (2, 3) and x.transpose(-1, 1).shape == (2, 3)


def test_transpose_any_rank_and_its_gradient():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    assert minidl.tensor(x).transpose(1, 3).shape == (2, 5, 4, 3)
    np.testing.assert_array_equal(minidl.tensor(x).transpose(1, -1).numpy(), np.swapaxes(x, 1, 3))
    check_grad(lambda t: t.transpose(0, 2) * 2, x)
    with pytest.raises(IndexError, match="transpose: dim 4 is out of range"):
        minidl.tensor(x).transpose(0, 4)


# -- 2. PyTorch's argument names and defaults ---------------------------------------------------------------
def test_cat_and_split_default_to_dim_0():
    a, b = minidl.ones(2, 3), minidl.zeros(1, 3)
    assert F.cat([a, b]).shape == (3, 3)
    assert F.concat([a, b], dim=0).shape == (3, 3)
    assert F.cat([a, a], dim=1).shape == (2, 6) and F.cat([a, a], -1).shape == (2, 6)
    assert [p.shape for p in F.split(minidl.ones(5, 4), 2)] == [(2, 4), (2, 4), (1, 4)]
    assert [p.shape for p in F.split(minidl.ones(5, 4), [1, 3], dim=1)] == [(5, 1), (5, 3)]


def test_dim_keyword_everywhere():
    x = minidl.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(F.softmax(x, dim=1).numpy().sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(np.exp(F.log_softmax(x, dim=0).numpy()).sum(axis=0), 1, rtol=1e-6)
    assert x.sum(dim=1, keepdim=True).shape == (2, 1)
    assert F.mean(x, dim=0).shape == (3,)
    assert x.sum(axis=1, keepdims=True).shape == (2, 1)          # NumPy's names, accepted as torch does
    assert x.argmax(dim=1, keepdim=True).shape == (2, 1)
    with pytest.raises(TypeError, match="sum: pass dim or its alias axis, not both"):
        x.sum(0, axis=1)


def test_softmax_without_dim_warns_and_uses_torchs_implicit_choice():
    x = minidl.randn(2, 3, 4)
    with pytest.warns(UserWarning, match="implicit dimension choice"):
        y = F.softmax(x)
    np.testing.assert_allclose(y.numpy().sum(axis=0), 1, rtol=1e-5)    # torch: dim 0 for 3-D input


def test_pad_counts_from_the_last_dim():
    x = minidl.ones(1, 2, 3, 4)
    assert F.pad(x, (1, 1)).shape == (1, 2, 3, 6)
    assert F.pad(x, (1, 2, 3, 4)).shape == (1, 2, 10, 7)
    y = F.pad(x, (0, 0, 0, 0, 0, 3), value=0.5)
    assert y.shape == (1, 5, 3, 4) and (y.numpy()[:, 2:] == 0.5).all()
    with pytest.raises(ValueError, match="pad: pad must hold an even number"):
        F.pad(x, (1, 2, 3))


def test_local_response_norm_defaults_are_pytorchs():
    x = minidl.randn(2, 7, 3, 3)
    ours = F.local_response_norm(x, 5).numpy()
    a = x.numpy().astype(np.float64)
    sq = np.pad(a * a, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(sq[:, i:i + 7] for i in range(5))
    np.testing.assert_allclose(ours, a / (1.0 + 1e-4 / 5 * window) ** 0.75, rtol=1e-5)
    assert nn.LocalResponseNorm(5).k == 1.0


# -- 3. max / min with a dim return (values, indices) -----------------------------------------------------
def test_max_with_dim_returns_values_and_indices():
    x = minidl.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    result = x.max(dim=1)
    np.testing.assert_array_equal(result.values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(result.indices.numpy(), [1, 0])
    np.testing.assert_array_equal(x.max(dim=1)[0].numpy(), [5.0, 7.0])     # the PyTorch idiom
    values, indices = F.min(x, 0, keepdim=True)
    assert values.shape == (1, 3) and indices.dtype == np.int64
    assert float(x.max()) == 7.0 and x.max().shape == ()


def test_max_along_a_dim_sends_the_gradient_to_the_index_and_amax_splits_ties():
    x = t64([[1.0, 3.0, 3.0]], requires_grad=True)
    x.max(dim=1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0]])
    y = t64([[1.0, 3.0, 3.0]], requires_grad=True)
    y.amax(dim=1).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[0, 0.5, 0.5]])


def test_max_of_two_tensors_is_elementwise_and_splits_ties():
    a, b = t64([1.0, 4.0, 2.0], True), t64([3.0, 2.0, 2.0], True)
    y = F.max(a, b)
    np.testing.assert_array_equal(y.numpy(), [3.0, 4.0, 2.0])
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0, 1, 0.5])
    np.testing.assert_array_equal(b.grad.numpy(), [1, 0, 0.5])


# -- 4. a leaf's .grad owns its memory ---------------------------------------------------------------------
def test_leaf_gradients_do_not_alias_each_other():
    a, b = minidl.randn(3, requires_grad=True), minidl.randn(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 10
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(3))


def test_leaf_gradient_does_not_alias_the_callers_array():
    c = minidl.randn(3, requires_grad=True)
    g = np.ones(3, dtype=np.float32)
    (c + 0.0).backward(g)
    g[:] = 5
    np.testing.assert_array_equal(c.grad.numpy(), np.ones(3))
    d = minidl.randn(3, requires_grad=True)
    d.backward(g)                                      # the root is the leaf itself
    g[:] = 7
    np.testing.assert_array_equal(d.grad.numpy(), np.full(3, 5))


def test_gradients_accumulate_in_place_and_grad_is_settable():
    w = minidl.randn(2, requires_grad=True)
    (w * 2).sum().backward()
    first = w.grad
    (w * 3).sum().backward()
    assert w.grad is first and np.allclose(first.numpy(), 5)
    w.grad = minidl.zeros(2)
    assert w.grad.numpy().sum() == 0
    with pytest.raises(ValueError, match="grad: the assigned gradient has shape \\(3,\\)"):
        w.grad = minidl.zeros(3)


# -- 5. in-place updates ---------------------------------------------------------------------------------
def test_manual_sgd_step_updates_the_leaf_in_place():
    minidl.manual_seed(0)
    w = minidl.randn(3, requires_grad=True)
    before = w.numpy().copy()
    for _ in range(2):
        loss = (w * w).sum()
        loss.backward()
        with minidl.no_grad():
            w -= 0.1 * w.grad
        w.grad.zero_()
    assert w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), before * 0.8 * 0.8, rtol=1e-6)
    assert (w.grad.numpy() == 0).all()


def test_in_place_methods():
    x = minidl.tensor([1.0, -2.0, 3.0])
    assert x.add_(1) is x and x.tolist() == [2.0, -1.0, 4.0]
    x.sub_(minidl.tensor([1.0, 1.0, 1.0]), alpha=2)
    assert x.tolist() == [0.0, -3.0, 2.0]
    x.mul_(2).div_(4)
    assert x.tolist() == [0.0, -1.5, 1.0]
    x.clamp_(min=-1.0)
    assert x.tolist() == [0.0, -1.0, 1.0]
    x.copy_(np.array([7.0]))
    assert x.tolist() == [7.0, 7.0, 7.0]
    x.fill_(2).zero_()
    assert x.tolist() == [0.0, 0.0, 0.0]
    alias = x.detach()
    x += 1
    assert alias.tolist() == [1.0, 1.0, 1.0]            # detach shares the data, as in PyTorch
    with pytest.raises(ValueError, match="\\+=: cannot update a tensor of shape \\(3,\\)"):
        x += minidl.ones(2, 3)


def test_in_place_on_a_recorded_tensor_names_the_rule():
    w = minidl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf tensor that requires grad cannot be changed in place"):
        w -= 1
    with pytest.raises(RuntimeError, match="mul_: a tensor that autograd records"):
        (w * 2).mul_(3)


def test_augmented_assignment_inside_a_model_stays_differentiable():
    x = t64([1.0, 2.0], requires_grad=True)
    out = x * 3
    identity = x
    out += identity                                   # a residual block's `out += identity`
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])


def test_backward_refuses_an_array_changed_in_place_after_forward():
    w = minidl.randn(3, requires_grad=True)
    x = minidl.randn(3)
    y = (w * x).sum()
    with minidl.no_grad():
        x.mul_(2)                                      # Mul saved x for w's gradient
    with pytest.raises(RuntimeError, match="Mul saved for its gradient was changed in place"):
        y.backward()
    z = (w + x).sum()                                 # Add saves nothing: changing x afterwards is fine
    x.add_(1)
    z.backward()


# -- 6. same seed, same result: backprop does not depend on memory addresses ---------------------------
def test_functions_of_one_generation_run_newest_first():
    order = []

    class Record(minidl.Function):
        saves_arrays = False

        def __init__(self, tag):
            self.tag = tag

        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            order.append(self.tag)
            return gy

    x = minidl.randn(2, requires_grad=True)
    branches = [Record(i)(x) for i in range(6)]       # six Functions of generation 1
    total = branches[0]
    for b in branches[1:]:
        total = total + b
    total.sum().backward()
    assert order == [5, 4, 3, 2, 1, 0]


DETERMINISM_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    junk = [bytearray(int(sys.argv[2])) for _ in range(50)]   # move later allocations to other addresses
    import minidl
    import minidl.functions as F
    from minidl.models import get_model
    minidl.manual_seed(0)
    model = get_model(sys.argv[1], **({"aux_logits": False} if sys.argv[1] == "googlenet" else {}))
    opt = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = minidl.randn(2, 3, *[int(sys.argv[3])] * 2), minidl.tensor([1, 3])
    model.train()
    for _ in range(2):
        opt.zero_grad()
        out = model(x)
        loss = sum(F.cross_entropy(o, y) for o in (out if isinstance(out, tuple) else (out,)))
        loss.backward()
        opt.step()
    np.save(sys.argv[4], np.concatenate([p.numpy().ravel() for p in model.parameters()]))
""")


@pytest.mark.parametrize("name, size", [("googlenet", 64), ("fractalnet_cifar_small", 32)])
def test_same_seed_gives_bit_identical_weights(name, size, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(DETERMINISM_SCRIPT)
    outputs = []
    for i, junk in enumerate((1, 4099)):
        out = tmp_path / f"w{i}.npy"
        env_seed = {"PYTHONHASHSEED": str(i)}
        subprocess.run([sys.executable, str(script), name, str(junk), str(size), str(out)], check=True,
                       env={**__import__("os").environ, **env_seed}, timeout=600)
        outputs.append(np.load(out))
    assert np.array_equal(outputs[0], outputs[1])


# -- 7. sigmoid and friends are exact in relative terms ------------------------------------------------------
def test_sigmoid_tails_in_float32():
    x = minidl.tensor([-20.0, -15.0, -88.0, 0.0, 15.0, 40.0])
    y = F.sigmoid(x).numpy().astype(np.float64)
    exact = 1 / (1 + np.exp(-np.array([-20.0, -15.0, -88.0, 0.0, 15.0, 40.0])))
    np.testing.assert_allclose(y, exact, rtol=1e-6)
    assert np.isfinite(F.log(F.sigmoid(minidl.tensor([-20.0]))).item())


def test_logsigmoid_and_softplus_are_stable():
    x = t64([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    np.testing.assert_allclose(F.logsigmoid(x).numpy(), [-1000.0, -30.0 - np.log1p(np.exp(-30.0)),
                                                         -np.log(2), -np.log1p(np.exp(-30.0)), 0.0])
    np.testing.assert_allclose(F.softplus(x).numpy(), [0.0, np.log1p(np.exp(-30.0)), np.log(2),
                                                       30.0 + np.log1p(np.exp(-30.0)), 1000.0], rtol=1e-12)
    check_grad(F.logsigmoid, np.array([-30.0, -2.0, 0.5, 3.0, 25.0]))
    check_grad(lambda t: F.softplus(t, beta=2.0, threshold=8.0), np.array([-5.0, -0.3, 0.7, 3.0, 4.5]))
    check_grad(F.sigmoid, np.array([-30.0, -2.0, 0.0, 3.0, 25.0]))


# -- 8. power, log and sqrt gradients at the edges ------------------------------------------------------------
def test_pow_gradient_at_zero():
    x = t64([0.0, 2.0, -3.0], requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    x.grad = None
    (x ** 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 12.0, 27.0])


def test_tensor_power_gradients_at_the_edges():
    a = t64([0.0, 0.0, -2.0, 2.0], requires_grad=True)
    b = t64([2.0, 0.0, 3.0, 0.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (a ** b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0, 12.0, 0.0])
    assert b.grad.numpy()[0] == 0 and b.grad.numpy()[1] == 0 and np.isnan(b.grad.numpy()[2])
    np.testing.assert_allclose(b.grad.numpy()[3], np.log(2.0))


# -- 9. empty reductions follow NumPy ---------------------------------------------------------------------------
def test_empty_reductions():
    assert np.isnan(minidl.zeros(0, 3).mean().item())
    assert np.isnan(minidl.zeros(0, 3).mean(dim=0).numpy()).all()
    assert minidl.zeros(0, 3).mean(dim=1).shape == (0,)
    assert minidl.zeros(0, 3).sum().item() == 0
    with pytest.raises(ValueError, match="max: cannot reduce an empty tensor"):
        minidl.zeros(0, 3).max()
    x = minidl.zeros(0, 3, requires_grad=True)
    x.mean(dim=0).sum().backward()
    assert x.grad.shape == (0, 3)


# -- 10. batch norm keeps the batch variance -----------------------------------------------------------------------
@pytest.mark.parametrize("std", [1e-6, 1e-5, 1.0, 0.0])
def test_batch_norm_running_variance_is_the_batch_variance(std):
    rng = np.random.default_rng(0)
    x = (3.0 + std * rng.standard_normal((8, 2, 4, 4))).astype(np.float32)
    running_mean, running_var = minidl.zeros(2), minidl.ones(2)
    F.batch_norm(minidl.tensor(x), running_mean, running_var, training=True, momentum=1.0)
    expected = x.astype(np.float64).var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(running_var.numpy(), expected, rtol=1e-4, atol=0)


# -- 14. cross_entropy's weight and ignore_index -----------------------------------------------------------------
def test_cross_entropy_weight_and_ignore_index_match_the_definition():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((6, 4)), rng.uniform(0.5, 2, 4)
    t = np.array([0, 3, -100, 1, 3, 2])
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    keep = t != -100
    per = np.where(keep, -w[np.where(keep, t, 0)] * log_p[np.arange(6), np.where(keep, t, 0)], 0)
    got = F.cross_entropy(t64(x), t, t64(w)).item()
    np.testing.assert_allclose(got, per.sum() / w[t[keep]].sum())
    np.testing.assert_allclose(F.cross_entropy(t64(x), t, t64(w), reduction="none").numpy(), per)
    check_grad(lambda s: F.cross_entropy(s, t, t64(w), label_smoothing=0.2), x)
    check_grad(lambda s: F.cross_entropy(s, np.array([1, 5]), ignore_index=5, reduction="sum"), x[:2])
    assert np.isnan(F.cross_entropy(t64(x[:2]), np.array([-100, -100])).item())   # nothing counted


def test_cross_entropy_spatial_and_probability_targets_gradcheck():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 2, 2))
    t = rng.integers(0, 3, (2, 2, 2))
    check_grad(lambda s: F.cross_entropy(s, t), x)
    q = rng.dirichlet(np.ones(3), (2, 2, 2)).transpose(0, 3, 1, 2)
    check_grad(lambda s, r: F.cross_entropy(s, r, label_smoothing=0.1), x, q)


# -- 15, 16. errors that locate the problem -----------------------------------------------------------------------
def test_an_error_inside_a_model_names_the_layer_and_the_input():
    from minidl.models import get_model
    model = get_model("alexnet")
    with pytest.raises(ValueError, match=r"^features\.\d+ \(MaxPool2d\), input \(1, 256, \d+, \d+\): max_pool2d:"):
        model(minidl.randn(1, 3, 64, 64))


def test_summary_says_that_input_shape_excludes_the_batch():
    from minidl.models import get_model
    with pytest.raises(ValueError, match=r"input_shape excludes the batch dimension.*pass \(1, 32, 32\)"):
        minidl.summary(get_model("lenet5"), (1, 1, 32, 32))


def test_gradcheck_failure_prints_plain_ints():
    class Wrong(minidl.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy

    with pytest.raises(minidl.GradcheckError, match=r"element \(0, 1\)"):
        minidl.gradcheck(lambda t: Wrong()(t), [t64([[1.0, 2.0]], requires_grad=True)])


def test_get_model_suggests_the_closest_name():
    from minidl.models import get_model
    with pytest.raises(ValueError, match="did you mean resnet50\\?"):
        get_model("resnet5O")


def test_tensor_methods_users_expect():
    x = minidl.tensor([[0.0, 2.0], [0.0, 0.0]])
    assert x.dim() == 2 and x.any().item() is True and x.all().item() is False
    assert x.any(dim=1).tolist() == [True, False]
    assert x.T.contiguous().data.flags.c_contiguous and x.contiguous() is x
    assert x[:1].expand(3, -1).shape == (3, 2)
