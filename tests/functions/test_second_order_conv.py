"""Second-order gradients of the convolution family (issue 17): conv2d, conv_transpose2d, pooling, batch norm,
LRN. gradgradcheck (float64 finite differences of the gradient) over generated configurations, the
adjoint pairs behind them, and Hessian-vector products and a gradient penalty beside PyTorch's."""
import os
import runpy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functions as F
from minidl import gradcheck, gradgradcheck
from minidl.functions.conv_grad import Conv2dWeightGrad
from minidl.functions.pooling import MaxPool2dBackward, SwitchGather
from tests.functions.test_conv import _tensors, conv_configs
from tests.functions.test_pooling import pool_configs
from tests.helpers import t64, tie_free, torch_or_skip

few = settings(max_examples=5, deadline=None)


def leaf(shape, seed=0, scale=1.0):
    return t64(np.random.default_rng(seed).standard_normal(shape) * scale)


def check_second_order(fn, inputs):
    """The gradient that create_graph=True computes equals the first-order one (which gradcheck checks
    elsewhere), and its own derivatives agree with finite differences (gradgradcheck)."""
    wrt = [x for x in inputs if x.requires_grad]
    v = leaf(fn(*inputs).shape, 7)
    first = minidl.grad(fn(*inputs), wrt, v)
    recorded = minidl.grad(fn(*inputs), wrt, v, create_graph=True)
    for a, b in zip(first, recorded):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-10, atol=1e-12)
    assert gradgradcheck(fn, inputs)


def _conv_inputs(cfg):
    """x, W (and b) of a conv_configs example as float64 leaves, and conv2d's keyword arguments."""
    x, W, b = _tensors(cfg, seed=1)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    return [t64(a) for a in (x, W, b) if a is not None], args


@few
@given(conv_configs())
def test_conv2d_gradgradcheck(cfg):
    inputs, args = _conv_inputs(cfg)
    check_second_order(lambda *a: F.conv2d(*a, **args), inputs)


@pytest.mark.parametrize("kernel,dilation", [((4, 2), 1), ((3, 3), (1, 2))])
def test_conv2d_same_padding_with_an_even_span_gradgradcheck(kernel, dilation):
    # an even dilated span pads one more row/column at the bottom/right (Conv2dExtraPadding)
    x, W, b = leaf((1, 2, 5, 4), 1), leaf((3, 2) + kernel, 2), leaf((3,), 3)
    check_second_order(lambda x, W, b: F.conv2d(x, W, b, padding="same", dilation=dilation), [x, W, b])


def test_depthwise_conv2d_gradgradcheck():
    # groups = C = K, stride 1: the first-order pass runs the depthwise kernels, the second the grouped GEMM
    x, W = leaf((2, 3, 6, 5), 1), leaf((3, 1, 3, 3), 2)
    check_second_order(lambda x, W: F.conv2d(x, W, padding=1, groups=3), [x, W])


@few
@given(conv_configs())
def test_conv_transpose2d_gradgradcheck(cfg):
    # the transpose of each generated conv2d: input shaped like its output, output_padding to give back x's size
    (x, W, *b), args = _conv_inputs(cfg)
    y = F.conv2d(x, W, **args)
    output_padding = tuple(x.shape[2 + i] - ((y.shape[2 + i] - 1) * args["stride"][i] - 2 * args["padding"][i]
                                             + args["dilation"][i] * (W.shape[2 + i] - 1) + 1) for i in range(2))
    bias = [leaf((x.shape[1],), 3)] if b else []
    check_second_order(lambda *a: F.conv_transpose2d(*a, output_padding=output_padding, **args),
                         [leaf(y.shape, 4), W] + bias)


def test_conv_transpose2d_output_padding_past_the_stride_gradgradcheck():
    # output_padding 2 >= stride 1 (allowed by dilation 3): conv2d over the output has more windows than x
    x, W = leaf((1, 2, 3, 3), 1), leaf((2, 2, 2, 2), 2)
    check_second_order(lambda x, W: F.conv_transpose2d(x, W, output_padding=2, dilation=3), [x, W])


@pytest.mark.parametrize("op,shapes", [
    (lambda x, W: F.conv2d(x, W, stride=2, padding=1), [(1, 2, 5, 4), (3, 2, 3, 3)]),
    (lambda x, W: F.conv2d(x, W, padding="same"), [(1, 2, 4, 4), (2, 2, 2, 3)]),
    (lambda x, W: F.conv_transpose2d(x, W, output_padding=2, dilation=3), [(1, 2, 3, 3), (2, 2, 2, 2)])],
    ids=["conv2d", "conv2d_same_even", "conv_transpose2d_output_padding_past_the_stride"])
def test_third_order(op, shapes):
    # differentiable any number of times: gradgradcheck of a function that is itself made of gradients
    def grad_norm(x, W):
        with minidl.enable_grad():
            y = op(x, W)
            gx, gW = minidl.grad((y * y * y).sum(), [x, W], create_graph=True)
            return (gx * gx).sum() + (gW * gW).sum()

    assert gradgradcheck(grad_norm, [leaf(s, i, 0.5) for i, s in enumerate(shapes)])


@few
@given(conv_configs())
def test_conv2d_weight_grad_is_the_gradient_of_conv2d_and_gradchecks(cfg):
    (x, W, *_), args = _conv_inputs(cfg)
    conv = (args["stride"], args["padding"], args["dilation"], args["groups"])
    gy = leaf(F.conv2d(x, W, **args).shape, 3)
    F.conv2d(x, W, **args).backward(gy.detach())
    np.testing.assert_allclose(Conv2dWeightGrad(*conv, W.shape[2:])(x, gy).data, W.grad.data, atol=1e-12)
    assert gradcheck(lambda x, gy: Conv2dWeightGrad(*conv, W.shape[2:])(x, gy), [x, gy])


def _pool_args(cfg):
    return dict(kernel_size=cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"])


@few
@given(pool_configs())
def test_max_pool2d_gradgradcheck_and_zero_curvature(cfg):
    x = t64(tie_free(cfg["shape"], scale=0.1))
    check_second_order(lambda x: F.max_pool2d(x, **_pool_args(cfg)), [x])
    # the switches are constant away from ties: d/dx of the gradient is zero, d/dgy is the scatter
    gy = leaf(F.max_pool2d(x, **_pool_args(cfg)).shape, 1)
    (gx,) = minidl.grad(F.max_pool2d(x, **_pool_args(cfg)), x, gy, create_graph=True)
    (hx,) = minidl.grad((gx * gx).sum(), x, allow_unused=True)
    assert hx is None or not np.any(hx.data)


@few
@given(pool_configs())
def test_max_pool2d_switch_scatter_and_gather_are_adjoint(cfg):
    x = tie_free(cfg["shape"])
    y, indices = F.max_pool2d(t64(x, requires_grad=False), return_indices=True, **_pool_args(cfg))
    gy, g = leaf(y.shape, 1), leaf(x.shape, 2)
    scatter = MaxPool2dBackward(indices.data, x.shape[2:])(gy)
    gather = SwitchGather(indices.data, x.shape[2:])(g)
    np.testing.assert_allclose((scatter.data * g.data).sum(), (gy.data * gather.data).sum(), rtol=1e-12)


@few
@given(pool_configs())
def test_max_unpool2d_gradgradcheck(cfg):
    x = tie_free(cfg["shape"])
    y, indices = F.max_pool2d(t64(x, requires_grad=False), return_indices=True, **_pool_args(cfg))
    args = dict(kernel_size=cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"])
    check_second_order(lambda v: F.max_unpool2d(v, indices, output_size=x.shape[2:], **args), [leaf(y.shape, 1)])


@few
@given(pool_configs(), st.booleans())
def test_avg_pool2d_gradgradcheck(cfg, count_include_pad):
    x = leaf(cfg["shape"], 1)
    check_second_order(lambda x: F.avg_pool2d(x, count_include_pad=count_include_pad, **_pool_args(cfg)), [x])


@few
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4))
def test_adaptive_avg_pool2d_gradgradcheck(H, W, OH, OW):
    # overlapping bins (5 -> 3), divisible sizes (avg_pool2d underneath), global pooling (a mean), upsampling
    check_second_order(lambda x: F.adaptive_avg_pool2d(x, (OH, OW)), [leaf((2, 2, H, W), 1)])


@st.composite
def batch_norm_shapes(draw):
    # N x C or N x C x H x W; N >= 2, so that training has two values per channel for its variance
    hw = draw(st.sampled_from([(), (1, 1), (1, 2), (2, 2), (3, 1)]))
    return (draw(st.integers(2, 3)), draw(st.integers(1, 3))) + hw


@pytest.mark.parametrize("training", [True, False])
@few
@given(shape=batch_norm_shapes())
def test_batch_norm_gradgradcheck(training, shape):
    C = shape[1]
    x, gamma, beta = leaf(shape, 1), t64(np.linspace(0.5, 1.5, C)), leaf((C,), 3)
    running_mean, running_var = minidl.tensor(np.linspace(-0.3, 0.2, C)), minidl.tensor(np.linspace(0.6, 1.9, C))
    if training:   # batch statistics: the running ones are left out (training updates them in place)
        running_mean = running_var = None
    check_second_order(lambda x, g, b: F.batch_norm(x, running_mean, running_var, g, b, training=training),
                       [x, gamma, beta])


@few
@given(st.integers(1, 5), st.integers(1, 6), st.floats(0.05, 1.0), st.floats(0.5, 1.0), st.floats(1.0, 2.0),
       st.booleans())
def test_local_response_norm_gradgradcheck(size, C, alpha, beta, k, alpha_over_size):
    # odd and even windows (an even one reaches one channel further down than up), both alpha conventions
    check_second_order(lambda x: F.local_response_norm(x, size, alpha, beta, k, alpha_over_size),
                       [leaf((2, C, 2, 1), 1)])


@pytest.mark.parametrize("op,shapes", [
    (lambda x, W: F.conv2d(x, W, padding=1), [(0, 2, 4, 4), (3, 2, 3, 3)]),
    (lambda x, W: F.conv_transpose2d(x, W, stride=2), [(0, 2, 3, 3), (2, 3, 3, 3)]),
    (lambda x: F.max_pool2d(x, 2), [(0, 2, 4, 4)]),
    (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), [(0, 2, 4, 4)]),
    (lambda x: F.adaptive_avg_pool2d(x, 3), [(0, 2, 4, 4)]),
    (lambda x: F.local_response_norm(x, 3), [(0, 4, 2, 2)])], ids=["conv2d", "conv_transpose2d", "max_pool2d",
                                                                    "avg_pool2d", "adaptive_avg_pool2d", "lrn"])
def test_second_order_of_an_empty_batch_is_empty_or_zero(op, shapes):
    inputs = [leaf(s, i) for i, s in enumerate(shapes)]
    grads = minidl.grad(op(*inputs), inputs, leaf(op(*inputs).shape, 9), create_graph=True)
    second = minidl.grad(sum((g * g).sum() for g in grads), inputs, allow_unused=True)
    for x, g, h in zip(inputs, grads, second):
        assert g.shape == x.shape and (h is None or (h.shape == x.shape and not np.any(h.data)))


def _small_cnn_minidl(params, x, target):
    W1, b1, gamma, beta, W2, Wfc, bfc = params
    h = F.conv2d(x, W1, b1, padding=1)                                       # N x 4 x 8 x 8
    h = F.batch_norm(h, None, None, gamma, beta, training=True)
    h = F.max_pool2d(h, 2)                                                   # N x 4 x 4 x 4
    h = F.conv2d(h, W2, stride=1, padding=1, groups=2)                       # N x 6 x 4 x 4
    h = F.avg_pool2d(h, 2)                                                   # N x 6 x 2 x 2
    return F.cross_entropy(F.linear(F.flatten(h, 1), Wfc, bfc), target)


def _small_cnn_torch(torch, params, x, target):
    TF = torch.nn.functional
    W1, b1, gamma, beta, W2, Wfc, bfc = params
    h = TF.conv2d(x, W1, b1, padding=1)
    h = TF.batch_norm(h, None, None, gamma, beta, training=True)
    h = TF.max_pool2d(h, 2)
    h = TF.conv2d(h, W2, stride=1, padding=1, groups=2)
    h = TF.avg_pool2d(h, 2)
    return TF.cross_entropy(TF.linear(torch.flatten(h, 1), Wfc, bfc), target)


def _cnn_arrays():
    rng = np.random.default_rng(0)
    shapes = [(4, 3, 3, 3), (4,), (4,), (4,), (6, 2, 3, 3), (5, 24), (5,)]
    params = [rng.standard_normal(s) * 0.5 for s in shapes]
    params[2] = 1 + 0.2 * rng.standard_normal(4)
    x = rng.standard_normal((4, 3, 8, 8))
    target = np.array([0, 3, 1, 4])
    vectors = [rng.standard_normal(s) for s in shapes + [x.shape]]
    return params, x, target, vectors


def test_small_cnn_hessian_vector_products_match_pytorch():
    torch = torch_or_skip()
    params, x, target, vectors = _cnn_arrays()
    ours = [t64(p) for p in params] + [t64(x)]
    loss = _small_cnn_minidl(ours[:-1], ours[-1], minidl.tensor(target))
    grads = minidl.grad(loss, ours, create_graph=True)
    hvp = minidl.grad(sum((g * minidl.tensor(v)).sum() for g, v in zip(grads, vectors)), ours)

    theirs = [torch.tensor(p, requires_grad=True) for p in params + [x]]
    loss_t = _small_cnn_torch(torch, theirs[:-1], theirs[-1], torch.tensor(target))
    grads_t = torch.autograd.grad(loss_t, theirs, create_graph=True)
    hvp_t = torch.autograd.grad(sum((g * torch.tensor(v)).sum() for g, v in zip(grads_t, vectors)), theirs)

    assert abs(loss.item() - loss_t.item()) < 1e-12
    for name, g, g_t, h, h_t in zip(["W1", "b1", "gamma", "beta", "W2", "Wfc", "bfc", "x"], grads, grads_t, hvp, hvp_t):
        np.testing.assert_allclose(g.data, g_t.detach().numpy(), rtol=0, atol=1e-10, err_msg=f"gradient of {name}")
        np.testing.assert_allclose(h.data, h_t.numpy(), rtol=0, atol=1e-10, err_msg=f"Hessian-vector product, {name}")


def _critic_minidl(params, x):
    W1, b1, W2, b2, Wfc = params
    h = F.leaky_relu(F.conv2d(x, W1, b1, stride=2, padding=1), 0.2)          # N x 4 x 4 x 4
    h = F.softplus(F.conv2d(h, W2, b2, padding=1))                           # N x 6 x 4 x 4
    return F.linear(F.flatten(F.avg_pool2d(h, 2), 1), Wfc)                   # N x 1


def _critic_torch(torch, params, x):
    TF = torch.nn.functional
    W1, b1, W2, b2, Wfc = params
    h = TF.leaky_relu(TF.conv2d(x, W1, b1, stride=2, padding=1), 0.2)
    h = TF.softplus(TF.conv2d(h, W2, b2, padding=1))
    return TF.linear(torch.flatten(TF.avg_pool2d(h, 2), 1), Wfc)


def test_gradient_penalty_parameter_gradients_match_pytorch():
    # WGAN-GP: (||d critic / d x|| - 1)^2 per sample, averaged; its gradient in the critic's parameters
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(s) * 0.5 for s in [(4, 2, 3, 3), (4,), (6, 4, 3, 3), (6,), (1, 24)]]
    x = rng.standard_normal((3, 2, 8, 8))

    ours, xs = [t64(p) for p in params], t64(x)
    (gx,) = minidl.grad(_critic_minidl(ours, xs).sum(), xs, create_graph=True)
    penalty = (((gx * gx).sum(dim=(1, 2, 3)) ** 0.5 - 1) ** 2).mean()
    penalty.backward()

    theirs, xt = [torch.tensor(p, requires_grad=True) for p in params], torch.tensor(x, requires_grad=True)
    (gx_t,) = torch.autograd.grad(_critic_torch(torch, theirs, xt).sum(), xt, create_graph=True)
    penalty_t = ((gx_t.pow(2).sum(dim=(1, 2, 3)).sqrt() - 1) ** 2).mean()
    penalty_t.backward()

    assert abs(penalty.item() - penalty_t.item()) < 1e-12
    for p, p_t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, p_t.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), rtol=0, atol=1e-10)


def test_gradient_penalty_example_runs_and_the_penalty_goes_down(capsys):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "gradient_penalty.py")
    example = runpy.run_path(path)
    penalties = example["train"](steps=12)
    assert penalties[-1] < 0.5 * penalties[0]
    assert "penalty" in capsys.readouterr().out
