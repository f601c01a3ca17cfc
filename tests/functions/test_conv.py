"""conv2d and conv_transpose2d: gradient checks over generated configurations, and the properties that
pin them down (naive loops, 1x1 = matmul, groups = per-group convs, adjointness)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.functions as F
from minidl import kernels
from tests.helpers import check_grad, t64


def naive_conv2d(x, W, b, stride, padding, dilation, groups):
    """Seven nested loops, straight from the definition."""
    N, C, H, W_in = x.shape
    K, Cg, KH, KW = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W_in + 2 * padding[1] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    y = np.zeros((N, K, OH, OW))
    Kg = K // groups
    for n in range(N):
        for k in range(K):
            g = k // Kg
            for oh in range(OH):
                for ow in range(OW):
                    acc = 0.0 if b is None else b[k]
                    for c in range(Cg):
                        for i in range(KH):
                            for j in range(KW):
                                acc += W[k, c, i, j] * xp[n, g * Cg + c, oh * stride[0] + i * dilation[0],
                                                          ow * stride[1] + j * dilation[1]]
                    y[n, k, oh, ow] = acc
    return y


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    Cg, Kg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H = draw(st.integers(max(1, dilation[0] * (KH - 1) + 1 - 2 * padding[0]), 6))
    W = draw(st.integers(max(1, dilation[1] * (KW - 1) + 1 - 2 * padding[1]), 6))
    N = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    return dict(N=N, C=Cg * groups, H=H, W=W, K=Kg * groups, Cg=Cg, KH=KH, KW=KW, stride=stride,
                padding=padding, dilation=dilation, groups=groups, bias=bias)


def _tensors(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"]))
    W = rng.standard_normal((cfg["K"], cfg["Cg"], cfg["KH"], cfg["KW"]))
    b = rng.standard_normal(cfg["K"]) if cfg["bias"] else None
    return x, W, b


@given(conv_configs())
def test_conv2d_matches_naive_loops_and_gradchecks(cfg):
    x, W, b = _tensors(cfg)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    y = F.conv2d(t64(x), t64(W), None if b is None else t64(b), **args)
    expected = naive_conv2d(x, W, b, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-10)
    inputs = [x, W] + ([b] if b is not None else [])
    check_grad(lambda *t: F.conv2d(*t, **args), *inputs)


@pytest.mark.parametrize("stride", [1, 2])
def test_pointwise_conv_is_a_matmul(stride):
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((2, 6, 5, 5)), rng.standard_normal((4, 6, 1, 1))
    y = F.conv2d(t64(x), t64(W), stride=stride).data
    xs = x[:, :, ::stride, ::stride]
    expected = np.einsum("kc,nchw->nkhw", W[:, :, 0, 0], xs)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    check_grad(lambda a, w: F.conv2d(a, w, stride=stride), x, W)


def test_grouped_conv_equals_per_group_convs():
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((2, 6, 7, 7)), rng.standard_normal((9, 2, 3, 3)), rng.standard_normal(9)
    y = F.conv2d(t64(x), t64(W), t64(b), padding=1, groups=3).data
    parts = [F.conv2d(t64(x[:, 2 * g:2 * g + 2]), t64(W[3 * g:3 * g + 3]), t64(b[3 * g:3 * g + 3]), padding=1).data
             for g in range(3)]
    np.testing.assert_allclose(y, np.concatenate(parts, axis=1), rtol=1e-12)


def test_depthwise_conv():
    rng = np.random.default_rng(3)
    x, W = rng.standard_normal((1, 4, 6, 6)), rng.standard_normal((4, 1, 3, 3))
    y = F.conv2d(t64(x), t64(W), padding=1, groups=4).data
    np.testing.assert_allclose(y, naive_conv2d(x, W, None, (1, 1), (1, 1), (1, 1), 4), rtol=1e-12)


@pytest.mark.parametrize("kernel, padding, stride, bias", [
    ((3, 3), (1, 1), 1, False),   # Xception's: kernels.depthwise_conv2d
    ((5, 5), (2, 2), 1, True),
    ((3, 5), (0, 4), 1, True),    # uneven; dX needs K-1-P = 2 and 0 of padding
    ((3, 3), (3, 3), 1, False),   # padding >= kernel: the grouped GEMM
    ((3, 3), (1, 1), 2, True),    # strided: the grouped GEMM
])
def test_depthwise_conv_paths_match_naive_loops_and_gradcheck(kernel, padding, stride, bias):
    rng = np.random.default_rng(4)
    x, W = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((3, 1) + kernel)
    b = rng.standard_normal(3) if bias else None
    args = dict(stride=stride, padding=padding, groups=3)
    y = F.conv2d(t64(x), t64(W), None if b is None else t64(b), **args).data
    np.testing.assert_allclose(y, naive_conv2d(x, W, b, (stride, stride), padding, (1, 1), 3), rtol=1e-10, atol=1e-12)
    check_grad(lambda *t: F.conv2d(*t, **args), *([x, W] + ([b] if bias else [])))


def test_depthwise_kernel_and_grouped_gemm_agree_in_float32(monkeypatch):
    # The same float32 layer through kernels.depthwise_conv2d and through the grouped GEMM it replaces.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16, 12, 12)).astype(np.float32)
    W = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((4, 16, 12, 12)).astype(np.float32)
    results = []
    for direct in (True, False):
        monkeypatch.setattr(kernels.conv, "is_depthwise", lambda *args, direct=direct: direct)
        xt, Wt = minidl.Tensor(x, requires_grad=True), minidl.Tensor(W, requires_grad=True)
        y = F.conv2d(xt, Wt, padding=1, groups=16)
        y.backward(minidl.Tensor(gy))
        results.append((y.data, xt.grad.data, Wt.grad.data))
    for direct, grouped in zip(*results):
        np.testing.assert_allclose(direct, grouped, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kernel, padding, bias, first", [
    ((3, 3), (1, 1), False, False),   # ResNet's 3x3: dX and dW both from the columns of dY
    ((5, 5), (2, 2), True, False),
    ((3, 5), (1, 2), True, False),
    ((3, 3), (1, 1), True, True),     # a first conv (no dX wanted): the columns of x instead
])
def test_same_padded_conv_backward_paths_gradcheck(kernel, padding, bias, first):
    # Stride 1 with "same" padding takes dW from im2col(dY) (the filters flipped), not im2col(x).
    rng = np.random.default_rng(6)
    x, W = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3) + kernel)
    b = rng.standard_normal(4) if bias else None
    y = F.conv2d(t64(x), t64(W), None if b is None else t64(b), padding=padding).data
    np.testing.assert_allclose(y, naive_conv2d(x, W, b, (1, 1), padding, (1, 1), 1), rtol=1e-10, atol=1e-12)
    if first:   # x needs no gradient: compare dW and db with the finite differences of the other inputs
        check_grad(lambda *t: F.conv2d(t64(x), *t, padding=padding), *([W] + ([b] if bias else [])))
    else:
        check_grad(lambda *t: F.conv2d(*t, padding=padding), *([x, W] + ([b] if bias else [])))


@given(conv_configs())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(cfg):
    # <conv2d(x, W), g> == <x, conv_transpose2d(g, W)>: the same weights, read as C_in=K x C/groups x KH x KW
    x, W, _ = _tensors(cfg, seed=1)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    y = F.conv2d(t64(x), t64(W), **args).data
    g = np.random.default_rng(5).standard_normal(y.shape)
    kernel = (cfg["KH"], cfg["KW"])
    output_padding = tuple(x.shape[2 + i] - ((y.shape[2 + i] - 1) * cfg["stride"][i] - 2 * cfg["padding"][i]
                                             + cfg["dilation"][i] * (kernel[i] - 1) + 1) for i in range(2))
    z = F.conv_transpose2d(t64(g), t64(W), output_padding=output_padding, **args).data
    assert z.shape == x.shape
    assert np.vdot(y, g) == pytest.approx(np.vdot(x, z), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("stride, padding, output_padding, groups, dilation",
                         [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (3, 2, 0, 2, 1), (2, 0, 0, 1, 2)])
def test_conv_transpose2d_gradcheck(stride, padding, output_padding, groups, dilation):
    rng = np.random.default_rng(4)
    x, W, b = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3 * groups)
    check_grad(lambda *t: F.conv_transpose2d(*t, stride=stride, padding=padding, output_padding=output_padding,
                                             groups=groups, dilation=dilation), x, W, b)


@given(size=st.integers(1, 30), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3))
def test_conv_output_size_formula(size, k, s, p, d):
    span = d * (k - 1) + 1
    if span > size + 2 * p:
        return
    x = np.zeros((1, 1, size, 1))
    y = F.conv2d(t64(x, False), t64(np.ones((1, 1, k, 1)), False), stride=(s, 1), padding=(p, 0), dilation=(d, 1))
    windows = len(range(0, size + 2 * p - span + 1, s))   # window starts that fit in the padded input
    assert y.shape[2] == windows == kernels.conv_output_size(size, k, s, p, d)


def test_float32_conv_runs_in_float32():
    x, W = minidl.randn(2, 3, 8, 8), minidl.randn(4, 3, 3, 3)
    assert F.conv2d(x, W, padding=1).dtype == np.float32
