"""Winograd's F(4x4, 3x3) (minidl.kernels.winograd) and conv2d's path through it: its matrices against the
definition, the layer against naive loops and finite differences in float64, against im2col + GEMM (and
PyTorch) in float32, and which layers minidl.kernels.conv sends to it."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl.kernels import conv, winograd
from tests.functions.test_conv import naive_conv2d
from tests.helpers import check_grad, t64, torch_or_skip


@pytest.fixture
def mode(monkeypatch):
    """Set conv.WINOGRAD for one test."""
    return lambda value: monkeypatch.setattr(conv, "WINOGRAD", value)


def test_one_tile_is_a_3x3_correlation():
    # Y = A^T [(G g G^T) * (B^T d B)] A is the 4x4 "valid" correlation of the 6x6 tile d with the 3x3 filter g.
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    BT, G, AT = (np.array(m, dtype=np.float64) for m in (winograd.BT, winograd.G, winograd.AT))
    Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(Y, direct, rtol=1e-12, atol=1e-12)


def test_transform_filters_adjoint_is_its_adjoint():
    rng = np.random.default_rng(1)
    W, dU = rng.standard_normal((5, 4, 3, 3)), rng.standard_normal((36, 5, 4))
    U = winograd.transform_filters(W)                               # (36, C, K)
    np.testing.assert_array_equal(winograd.transform_filters(W, transposed=True), U.transpose(0, 2, 1))
    lhs = np.vdot(U.transpose(0, 2, 1), dU)
    assert lhs == pytest.approx(np.vdot(W, winograd.transform_filters_adjoint(dU, 5, 4)), rel=1e-12)


@pytest.mark.parametrize("N, C, K, H, W, bias", [
    (2, 3, 4, 8, 8, True),     # whole tiles
    (1, 2, 3, 7, 9, False),    # partial tiles on both edges
    (3, 1, 2, 1, 1, True),     # a 1x1 image: one tile of mostly padding
    (2, 5, 2, 4, 13, False),   # several images, chunked one at a time below
])
def test_matches_naive_loops_and_gradcheck(mode, monkeypatch, N, C, K, H, W, bias):
    mode("always")
    monkeypatch.setattr(winograd, "CHUNK_ELEMENTS", 1)       # one image per chunk: the chunk loop runs too
    rng = np.random.default_rng(2)
    x, Wt = rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C, 3, 3))
    b = rng.standard_normal(K) if bias else None
    y = F.conv2d(t64(x), t64(Wt), None if b is None else t64(b), padding=1)
    assert y.creator.algorithm == "winograd"
    np.testing.assert_allclose(y.data, naive_conv2d(x, Wt, b, (1, 1), (1, 1), (1, 1), 1), rtol=1e-10, atol=1e-12)
    check_grad(lambda *t: F.conv2d(*t, padding=1), *([x, Wt] + ([b] if bias else [])))
    # a first layer (no dX wanted): dW and db only
    check_grad(lambda *t: F.conv2d(t64(x, requires_grad=False), *t, padding=1), *([Wt] + ([b] if bias else [])))


def _layer(x, W, gy):
    xt, Wt = minidl.Tensor(x, requires_grad=True), minidl.Tensor(W, requires_grad=True)
    y = F.conv2d(xt, Wt, padding=1)
    took_winograd = y.creator.algorithm == "winograd"
    y.backward(minidl.Tensor(gy))
    return took_winograd, (y.data, xt.grad.data, Wt.grad.data)


def test_float32_agrees_with_im2col_and_auto_takes_it(mode):
    # A ResNet-like float32 layer (48 channels, 16 tiles per image, 8 images): "auto" takes Winograd, and it
    # agrees with im2col + GEMM to the float32 rounding of its transforms (~1e-5 of the largest value).
    # (Float32 layers of up to 32 channels are direct: kernels.conv.DIRECT_MAX_CHANNELS_FLOAT32.)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 48, 16, 16)).astype(np.float32)
    W = (rng.standard_normal((48, 48, 3, 3)) * 0.1).astype(np.float32)
    gy = rng.standard_normal((8, 48, 16, 16)).astype(np.float32)
    mode("auto")
    took_winograd, fast = _layer(x, W, gy)
    assert took_winograd
    mode("off")
    took_winograd, gemm = _layer(x, W, gy)
    assert not took_winograd
    for a, b in zip(fast, gemm):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


@pytest.mark.parametrize("shape, kwargs, why", [
    ((8, 16, 16, 16), {}, "too few channels"),
    ((1, 32, 16, 16), {}, "too few tiles (16)"),
    ((8, 32, 16, 16), {"dtype": np.float64}, "float64"),
    ((8, 32, 16, 16), {"stride": 2}, "strided"),
    ((8, 32, 16, 16), {"padding": 0}, "unpadded"),
    ((8, 32, 16, 16), {"groups": 2}, "grouped"),
    ((8, 32, 16, 16), {"dilation": 2, "padding": 2}, "dilated"),
    ((8, 32, 16, 16), {"kernel": 5, "padding": 2}, "5x5"),
    ((8, 32, 16, 16), {"max_filter_elements": 36 * 32 * 32 - 1}, "transformed filters over the cap"),
])
def test_auto_leaves_the_rest_to_im2col(mode, monkeypatch, shape, kwargs, why):
    mode("auto")
    kwargs = dict(kwargs)
    monkeypatch.setattr(conv, "WINOGRAD_MAX_FILTER_ELEMENTS", kwargs.pop("max_filter_elements", 2 ** 22))
    dtype, kernel, groups = kwargs.pop("dtype", np.float32), kwargs.pop("kernel", 3), kwargs.get("groups", 1)
    x = np.zeros(shape, dtype)
    W = np.zeros((32, shape[1] // groups, kernel, kernel), dtype)
    y = F.conv2d(minidl.Tensor(x, requires_grad=True), minidl.Tensor(W), **{"padding": 1, **kwargs})
    assert y.creator.algorithm != "winograd", why


def test_matches_pytorch_in_float32():
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 64, 12, 12)).astype(np.float32)   # 144 tiles
    W = (rng.standard_normal((48, 64, 3, 3)) * 0.05).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    xt, Wt, bt = (minidl.Tensor(a, requires_grad=True) for a in (x, W, b))
    y = F.conv2d(xt, Wt, bt, padding=1)
    assert y.creator.algorithm == "winograd"
    (y * y).sum().backward()
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ty = torch.nn.functional.conv2d(tx, tW, tb, padding=1)
    (ty * ty).sum().backward()
    for ours, theirs in ((y.data, ty), (xt.grad.data, tx.grad), (Wt.grad.data, tW.grad), (bt.grad.data, tb.grad)):
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=2e-5 * np.abs(theirs).max())


def test_a_bad_mode_is_named(mode):
    mode("fast")
    x = minidl.Tensor(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"conv2d: minidl.kernels.conv.WINOGRAD \(or MINIDL_WINOGRAD\) must be one "
                                         r"of \('auto', 'off', 'always'\), got 'fast'"):
        F.conv2d(x, minidl.Tensor(np.zeros((2, 2, 3, 3), np.float32)), padding=1)


def test_the_environment_variable_sets_the_mode():
    env = dict(os.environ, MINIDL_WINOGRAD=" OFF ")
    out = subprocess.run([sys.executable, "-c", "from minidl.kernels import conv; print(conv.WINOGRAD)"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "off"


@pytest.mark.parametrize("C, K, H, N, expected", [
    (64, 64, 32, 128, True), (128, 128, 16, 128, True), (256, 256, 8, 128, True),   # ResNet-18 CIFAR, stages 1-3
    (512, 512, 4, 128, False),                                    # stage 4: 36 x 512 x 512 transformed filters
    (64, 64, 56, 16, True), (256, 256, 14, 16, True),             # ResNet-50 at 224, batch 16
    (512, 512, 7, 16, False),                                     # 64 tiles
    (16, 16, 32, 128, False), (32, 32, 16, 128, False),           # ResNet-20: direct (register-tiled)
    (64, 64, 8, 128, True),
])
def test_which_zoo_layers_auto_takes(mode, C, K, H, N, expected):
    # the default thresholds on the layers they were measured on (no arrays allocated: the shapes suffice)
    mode("auto")
    x, W = np.broadcast_to(np.float32(0), (N, C, H, H)), np.broadcast_to(np.float32(0), (K, C, 3, 3))
    assert (conv.choose(x, W, (1, 1), (1, 1), (1, 1), 1) == "winograd") is expected
