"""The NumPy reference kernels against first principles: brute force, naive loops, adjointness, PyTorch;
and the argument checks every kernel call passes first (kernels/_checks.py, run by the dispatchers)."""
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minidl import kernels
from minidl.kernels import reference as ref
from tests.kernels.helpers import tie_free


class Window(NamedTuple):
    KH: int
    KW: int
    SH: int
    SW: int
    PH: int
    PW: int
    DH: int = 1
    DW: int = 1

    @property
    def conv(self):            # the arguments of im2col after x
        return tuple(self)

    @property
    def conv_strides(self):    # the arguments of col2im after (col, H, W)
        return tuple(self)[2:]

    @property
    def pool(self):            # the arguments of the pooling kernels after x (or gy, H, W)
        return tuple(self)[:6]


@st.composite
def conv_cases(draw):
    """(N, C, H, W) and a Window whose kernel fits the padded input."""
    KH, KW, SH, SW = (draw(st.integers(1, 3)) for _ in range(4))
    PH, PW, DH, DW = draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    min_h, min_w = max(1, DH * (KH - 1) + 1 - 2 * PH), max(1, DW * (KW - 1) + 1 - 2 * PW)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(min_h, min_h + 5)), draw(st.integers(min_w, min_w + 5)))
    return shape, Window(KH, KW, SH, SW, PH, PW, DH, DW)


@st.composite
def pool_cases(draw):
    """(N, C, H, W), a pooling Window (padding at most half the kernel) and ceil_mode. With ceil_mode the
    kernel may be up to SH - 1 (SW - 1) larger than the padded input, as PyTorch allows."""
    KH, KW, SH, SW = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    PH, PW = draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))
    ceil_mode = draw(st.booleans())
    slack_h, slack_w = (SH - 1, SW - 1) if ceil_mode else (0, 0)
    min_h, min_w = max(1, KH - 2 * PH - slack_h), max(1, KW - 2 * PW - slack_w)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(min_h, min_h + 6)), draw(st.integers(min_w, min_w + 6)))
    return shape, Window(KH, KW, SH, SW, PH, PW), ceil_mode


seeds = st.integers(0, 2**32 - 1)


def brute_force_output_size(size, k, s, p, d, ceil_mode):
    """Count windows one by one. Floor mode: a window must fit the padded input. Ceil mode: it must start
    before the right padding, and the previous window (even the one before the first) must not already
    have reached the padded end; so a first window larger than the padded input counts if it overhangs
    by less than the stride."""
    span, padded = d * (k - 1) + 1, size + 2 * p
    count, start = 0, 0                                  # start in padded coordinates
    while start + span <= padded or (ceil_mode and start < size + p and start - s + span < padded):
        count, start = count + 1, start + s
    return count


@given(size=st.integers(1, 20), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3), ceil_mode=st.booleans())
def test_conv_output_size_matches_brute_force(size, k, s, p, d, ceil_mode):
    assume(not ceil_mode or p <= k // 2)     # ceil_mode is for pooling, whose padding is at most half the kernel
    expected = brute_force_output_size(size, k, s, p, d, ceil_mode)
    if expected == 0:
        with pytest.raises(ValueError, match="conv_output_size"):
            kernels.conv_output_size(size, k, s, p, d, ceil_mode)
    else:
        assert kernels.conv_output_size(size, k, s, p, d, ceil_mode) == expected


def test_conv_output_size_examples():
    assert kernels.conv_output_size(32, 5, 1, 0) == 28            # LeNet C1
    assert kernels.conv_output_size(227, 11, 4, 0) == 55          # AlexNet conv1
    assert kernels.conv_output_size(112, 3, 2, 1) == 56           # ResNet max pool
    assert kernels.conv_output_size(6, 3, 2, 0, ceil_mode=True) == 3
    # ceil would give 4, but the 4th window would start in the right padding: dropped, as in PyTorch
    assert kernels.conv_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    # ceil_mode: a kernel larger than the input, overhanging by less than the stride (PyTorch: 1, not an error)
    assert kernels.conv_output_size(2, 3, 2, 0, ceil_mode=True) == 1
    assert kernels.conv_output_size(4, 3, 2, 0, ceil_mode=True) == 2
    with pytest.raises(ValueError, match="conv_output_size: .* even with ceil_mode"):
        kernels.conv_output_size(1, 3, 2, 0, ceil_mode=True)


@given(conv_cases(), seeds)
def test_im2col_col2im_are_adjoint(case, seed):
    (N, C, H, W), win = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    col = ref.im2col(x, *win.conv)
    y = rng.standard_normal(col.shape)
    np.testing.assert_allclose(np.vdot(col, y), np.vdot(x, ref.col2im(y, H, W, *win.conv_strides)), rtol=1e-10)


def naive_conv(x, w, SH, SW, PH, PW, DH, DW):
    """y[n, k, oh, ow] = sum over c, i, j of x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] * w[k, c, i, j]."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1, (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    y = np.zeros((N, K, OH, OW))
    for n in range(N):
        for k in range(K):
            for oh in range(OH):
                for ow in range(OW):
                    for c in range(C):
                        for i in range(KH):
                            for j in range(KW):
                                h, v = oh * SH - PH + i * DH, ow * SW - PW + j * DW
                                if 0 <= h < H and 0 <= v < W:
                                    y[n, k, oh, ow] += x[n, c, h, v] * w[k, c, i, j]
    return y


@given(conv_cases(), st.integers(1, 2), seeds)
def test_im2col_matmul_is_the_naive_convolution(case, K, seed):
    (N, C, H, W), win = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C, win.KH, win.KW))
    col = ref.im2col(x, *win.conv)
    OH, OW = col.shape[-2:]
    y = (w.reshape(K, -1) @ col.reshape(N, C * win.KH * win.KW, OH * OW)).reshape(N, K, OH, OW)
    np.testing.assert_allclose(y, naive_conv(x, w, *win.conv_strides), rtol=1e-10, atol=1e-12)


def test_max_pool_tie_rule_first_max_in_row_major_order_wins():
    x = np.array([[[[1.0, 3.0, 0.0],
                    [3.0, 1.0, 3.0],
                    [0.0, 3.0, 3.0]]]])
    y, indices = ref.max_pool2d_forward(x, 2, 2, 1, 1, 0, 0)
    np.testing.assert_array_equal(y, [[[[3, 3], [3, 3]]]])
    np.testing.assert_array_equal(indices, [[[[1, 1], [3, 5]]]])
    _, indices = ref.max_pool2d_forward(np.zeros((1, 1, 4, 4)), 3, 3, 2, 2, 1, 1, ceil_mode=True)
    np.testing.assert_array_equal(indices, [[[[0, 1, 3], [4, 5, 7], [12, 13, 15]]]])   # each window's first element


def test_max_pool_nan_wins_and_minus_inf_window_points_inside():
    x = np.full((1, 1, 2, 4), -np.inf)
    x[0, 0, 1, 3], x[0, 0, 0, 2] = np.nan, 5.0
    y, indices = ref.max_pool2d_forward(x, 2, 2, 2, 2, 0, 1)     # windows cover columns {0}, {1, 2}, {3}
    np.testing.assert_array_equal(y, [[[[-np.inf, 5.0, np.nan]]]])
    np.testing.assert_array_equal(indices, [[[[0, 2, 7]]]])


def test_bn_train_output_has_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (8, 3, 4, 5))
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
    y, mean, invstd, var = ref.batch_norm_forward_train(x, gamma, beta, eps=1e-12)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)
    xhat = (y - beta[:, None, None]) / gamma[:, None, None]
    np.testing.assert_allclose(xhat.mean(axis=(0, 2, 3)), 0, atol=1e-10)
    np.testing.assert_allclose(xhat.var(axis=(0, 2, 3)), 1, rtol=1e-8)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(invstd, 1 / x.std(axis=(0, 2, 3)))


def test_lrn_matches_the_per_element_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 2, 3))
    for size in (1, 2, 3, 4, 5, 9):
        alpha, beta, k = 0.3, 0.75, 2.0
        y, scale = ref.lrn_forward(x, size, alpha, beta, k)
        for n, c, h, w in np.ndindex(*x.shape):
            lo, hi = max(0, c - size // 2), min(x.shape[1] - 1, c + (size - 1) // 2)
            s = k + alpha * sum(x[n, cc, h, w] ** 2 for cc in range(lo, hi + 1))
            assert scale[n, c, h, w] == pytest.approx(s, rel=1e-12)
            assert y[n, c, h, w] == pytest.approx(x[n, c, h, w] * s ** -beta, rel=1e-12)


def check_backward_numerically(forward, backward, x, rng, eps=1e-6):
    """Directional check in float64: <backward(gy), r> == d/dt <gy, forward(x + t r)> by central differences."""
    gy = rng.standard_normal(forward(x).shape)
    r = rng.standard_normal(x.shape)
    numeric = (np.vdot(gy, forward(x + eps * r)) - np.vdot(gy, forward(x - eps * r))) / (2 * eps)
    assert np.vdot(backward(gy), r) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_backward_kernels_match_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 4, 3))
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    _, mean, invstd, _ = ref.batch_norm_forward_train(x, gamma, beta, 1e-5)
    check_backward_numerically(lambda v: ref.batch_norm_forward_train(v, gamma, beta, 1e-5)[0],
                               lambda g: ref.batch_norm_backward(g, x, gamma, mean, invstd)[0], x, rng)
    y, scale = ref.lrn_forward(x, 3, 0.4, 0.75, 1.0)
    check_backward_numerically(lambda v: ref.lrn_forward(v, 3, 0.4, 0.75, 1.0)[0],
                               lambda g: ref.lrn_backward(g, x, y, scale, 3, 0.4, 0.75), x, rng)
    x = tie_free((2, 3, 5, 5), rng)
    _, indices = ref.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, True)
    check_backward_numerically(lambda v: ref.max_pool2d_forward(v, 3, 3, 2, 2, 1, 1, True)[0],
                               lambda g: ref.max_pool2d_backward(g, indices, 5, 5), x, rng)
    check_backward_numerically(lambda v: ref.avg_pool2d_forward(v, 3, 3, 2, 2, 1, 1, True, False),
                               lambda g: ref.avg_pool2d_backward(g, 5, 5, 3, 3, 2, 2, 1, 1, True, False), x, rng)


def argument_errors(k):
    """(call, text the ValueError message must contain) for the dispatchers k: one row per kind of bad argument."""
    x = np.zeros((1, 2, 4, 4), np.float32)
    one = np.ones(2, np.float32)
    return [
        (lambda: k.im2col(x[0], 3, 3, 1, 1, 1, 1), "im2col: x must be a 4-d array"),
        (lambda: k.im2col(x.astype(np.int32), 3, 3, 1, 1, 1, 1), "im2col: x must be float32 or float64"),
        (lambda: k.im2col(x, 3, 3, 0, 1, 1, 1), "im2col: SH must be an integer >= 1"),
        (lambda: k.im2col(x, 3, 3, 1, 1, 0, 0, 3, 1), "im2col: kernel 3x3 (dilation 3x1) spans 7x3"),
        (lambda: k.col2im(np.zeros((1, 2, 3, 3, 4, 4)), 4, 4, 1, 1, 0, 0), "col2im: col has OH x OW = 4x4"),
        (lambda: k.max_pool2d_forward(x, 2, 2, 2, 2, 2, 0), "max_pool2d_forward: padding must be at most half"),
        (lambda: k.max_pool2d_forward(x, 5, 5, 1, 1, 0, 0), "max_pool2d_forward: kernel 5x5"),
        (lambda: k.max_pool2d_backward(x, np.zeros((1, 2, 4, 3), np.int64), 4, 4),
         "max_pool2d_backward: indices must have the shape of gy"),
        (lambda: k.max_pool2d_backward(x, np.full(x.shape, 16), 4, 4),
         "max_pool2d_backward: indices must lie in [0, H*W) = [0, 16)"),
        (lambda: k.avg_pool2d_forward(x, 3, 3, 1, 1, 2, 1), "avg_pool2d_forward: padding must be at most half"),
        (lambda: k.avg_pool2d_backward(x, 4, 4, 2, 2, 2, 2, 0, 0), "avg_pool2d_backward: gy has OH x OW = 4x4"),
        (lambda: k.batch_norm_forward_train(x, np.ones(3), one, 1e-5), "gamma must have shape (C,) = (2,), got (3,)"),
        (lambda: k.batch_norm_forward_eval(x, one, one, one, np.ones((2, 1)), 1e-5), "running_var must have shape"),
        (lambda: k.batch_norm_backward(x, x[:, :1], one, one, one), "batch_norm_backward: x must have the shape of gy"),
        (lambda: k.lrn_forward(x, 0, 1e-4, 0.75, 2.0), "lrn_forward: size must be an integer >= 1"),
        (lambda: k.lrn_backward(x, x, x, x[..., :2], 5, 1e-4, 0.75), "lrn_backward: scale must have the shape"),
        # the checks of the CPU sets' own kernels (the GPU's runs these convolutions as im2col + GEMM)
        (lambda: k.depthwise_conv2d(x, np.ones((3, 1, 3, 3), np.float32), 1, 1),
         "depthwise_conv2d: W must be C x 1 x KH x KW with C = 2 (one filter per channel), got shape (3, 1, 3, 3)"),
        (lambda: k.depthwise_conv2d(x, np.ones((2, 1, 7, 7), np.float32), 1, 1), "depthwise_conv2d: kernel 7x7"),
        (lambda: k.depthwise_conv2d_grad_weight(x, x[..., :3], 3, 3, 1, 1),
         "depthwise_conv2d_grad_weight: gy must have the shape of the output (1, 2, 4, 4), got (1, 2, 4, 3)"),
        (lambda: k.winograd_tiles(np.zeros((1, 9, 9, 2), np.float32), np.ones((6, 6), np.float32), 4, 2, 3),
         "winograd_tiles: 2x3 tiles of 6x6 at stride 4 need an input of at least 10x14, got 9x9"),
        (lambda: k.winograd_tiles(np.zeros((1, 6, 6, 2), np.float32), np.ones(6, np.float32), 4, 1, 1),
         "winograd_tiles: L must be a 2-d array"),
        (lambda: k.winograd_untiles(np.zeros((16, 2, 3), np.float32), np.ones((4, 6), np.float32), 4, 1, 2, 4, 8),
         "winograd_untiles: M must be (AI*AI, N*TH*TW, K) = (36, N*2, K) for L of 4x6, got (16, 2, 3)"),
        (lambda: k.winograd_untiles(np.zeros((36, 2, 3), np.float32), np.ones((4, 6), np.float32), 4, 1, 2, 4, 7),
         "winograd_untiles: 1x2 tiles of 4x4 at stride 4 need an output of at least 4x8, got Hp x Wp = 4x7"),
        (lambda: k.winograd_tiles(np.zeros((1, 6, 6, 2), np.float32), np.ones((6, 6), np.float32), 4, 1, 1,
                                  out=np.zeros((36, 1, 2), np.float64)),
         "winograd_tiles: out must be a C-contiguous float32 array of shape (36, 1, 2), got float64 (36, 1, 2)"),
        (lambda: k.pad_nhwc(x, 1, 1, 4, 6), "pad_nhwc: a 4x4 input at offset (1, 1) does not fit in Hp x Wp = 4x6"),
        (lambda: k.crop_nchw(x, 1, 0, 4, 4), "crop_nchw: a 4x4 window at (1, 0) does not fit in the 2x4 input"),
    ]


def naive_winograd_tiles(x, L, s, TH, TW):
    """winograd_tiles by its formula, one sum per output element."""
    N, _, _, C = x.shape
    AO, AI = L.shape
    V = np.zeros((AO * AO, N * TH * TW, C))
    for n in range(N):
        for th in range(TH):
            for tw in range(TW):
                for a in range(AO):
                    for b in range(AO):
                        for i in range(AI):
                            for j in range(AI):
                                V[a * AO + b, (n * TH + th) * TW + tw] += L[a, i] * L[b, j] * x[n, s * th + i, s * tw + j]
    return V


def naive_winograd_untiles(M, L, s, TH, TW, Hp, Wp):
    """winograd_untiles by its formula: every tile transformed, then added at its place."""
    AO, AI = L.shape
    N, K = M.shape[1] // (TH * TW), M.shape[2]
    out = np.zeros((N, Hp, Wp, K))
    for n in range(N):
        for th in range(TH):
            for tw in range(TW):
                t = (n * TH + th) * TW + tw
                for i in range(AO):
                    for j in range(AO):
                        for a in range(AI):
                            for b in range(AI):
                                out[n, s * th + i, s * tw + j] += L[i, a] * L[j, b] * M[a * AI + b, t]
    return out


@pytest.mark.parametrize("AO, AI, s, TH, TW", [(6, 6, 4, 2, 3), (6, 4, 4, 1, 2), (4, 6, 4, 2, 1), (3, 3, 2, 2, 2)])
def test_winograd_tile_kernels_follow_their_formulas(AO, AI, s, TH, TW):
    rng = np.random.default_rng(7)
    L = rng.standard_normal((AO, AI))
    x = rng.standard_normal((2, s * (TH - 1) + AI + 1, s * (TW - 1) + AI, 3))   # one spare row: it must be ignored
    np.testing.assert_allclose(ref.winograd_tiles(x, L, s, TH, TW), naive_winograd_tiles(x, L, s, TH, TW), rtol=1e-12)
    M = rng.standard_normal((AO * AO, 2 * TH * TW, 5))   # untiles by L^T: AO x AO tiles in, AI x AI out
    Hp, Wp = s * (TH - 1) + AI + 2, s * (TW - 1) + AI   # two spare rows: they must stay zero
    np.testing.assert_allclose(ref.winograd_untiles(M, L.T.copy(), s, TH, TW, Hp, Wp),
                               naive_winograd_untiles(M, L.T, s, TH, TW, Hp, Wp), rtol=1e-12, atol=1e-12)


def test_winograd_untiles_is_the_adjoint_of_winograd_tiles():
    # <tiles(x, L), M> == <x, untiles(M, L^T)>: what lets backward use one for the gradient of the other
    rng = np.random.default_rng(8)
    L = rng.standard_normal((6, 6))
    x = rng.standard_normal((2, 10, 14, 3))
    M = rng.standard_normal((36, 2 * 2 * 3, 3))
    lhs = np.vdot(ref.winograd_tiles(x, L, 4, 2, 3), M)
    assert lhs == pytest.approx(np.vdot(x, ref.winograd_untiles(M, L.T.copy(), 4, 2, 3, 10, 14)), rel=1e-12)


def test_pad_nhwc_and_crop_nchw():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    d = ref.pad_nhwc(x, 1, 2, 7, 8)
    assert d.shape == (2, 7, 8, 3)
    assert d[1, 1 + 3, 2 + 4, 2] == x[1, 2, 3, 4]
    assert d.sum() == x.sum() and d[:, 0].sum() == 0 and d[:, :, :2].sum() == 0 and d[:, 5:].sum() == 0
    np.testing.assert_array_equal(ref.crop_nchw(d, 1, 2, 4, 5), x)


@pytest.mark.parametrize("row", range(len(argument_errors(kernels))))
def test_bad_arguments_fail_in_words(row):
    call, words = argument_errors(kernels)[row]
    with pytest.raises(ValueError) as error:
        call()
    assert words in str(error.value)


# PyTorch cross-checks (float64 tensors, skipped where torch is not installed)

@given(pool_cases(), seeds)
def test_max_pool_matches_torch(case, seed):
    torch = pytest.importorskip("torch")
    shape, win, ceil_mode = case
    rng = np.random.default_rng(seed)
    x = tie_free(shape, rng)
    y, indices = ref.max_pool2d_forward(x, *win.pool, ceil_mode)
    tx = torch.tensor(x, requires_grad=True)
    ty, tindices = torch.nn.functional.max_pool2d(tx, (win.KH, win.KW), (win.SH, win.SW), (win.PH, win.PW),
                                                  ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(indices, tindices.numpy())
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(ref.max_pool2d_backward(gy, indices, *shape[2:]), tx.grad.numpy(), rtol=1e-12)


def test_max_pool_ties_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).integers(0, 3, (2, 3, 7, 7)).astype(np.float64)
    _, indices = ref.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, ceil_mode=True)
    _, tindices = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(indices, tindices.numpy())


@given(pool_cases(), st.booleans(), seeds)
def test_avg_pool_matches_torch(case, count_include_pad, seed):
    torch = pytest.importorskip("torch")
    shape, win, ceil_mode = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y = ref.avg_pool2d_forward(x, *win.pool, ceil_mode, count_include_pad)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, (win.KH, win.KW), (win.SH, win.SW), (win.PH, win.PW),
                                        ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(gy))
    gx = ref.avg_pool2d_backward(gy, *shape[2:], *win.pool, ceil_mode, count_include_pad)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_matches_torch(size):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 7, 3, 4))
    alpha, beta, k = 1e-1, 0.75, 2.0                       # PyTorch's alpha; the kernel takes alpha / size
    y, scale = ref.lrn_forward(x, size, alpha / size, beta, k)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.local_response_norm(tx, size, alpha, beta, k)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    gy = rng.standard_normal(x.shape)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(ref.lrn_backward(gy, x, y, scale, size, alpha / size, beta), tx.grad.numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 2, 1, 1)])
def test_batch_norm_matches_torch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    C = shape[1]
    x, gy = rng.normal(2.0, 3.0, shape), rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    y, mean, invstd, _ = ref.batch_norm_forward_train(x, gamma, beta, 1e-5)
    tx, tgamma, tbeta = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = torch.nn.functional.batch_norm(tx, None, None, tgamma, tbeta, training=True, eps=1e-5)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(ref.batch_norm_backward(gy, x, gamma, mean, invstd), (tx, tgamma, tbeta)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
    running_mean, running_var = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    y_eval = ref.batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, 1e-5)
    ty_eval = torch.nn.functional.batch_norm(torch.tensor(x), torch.tensor(running_mean), torch.tensor(running_var),
                                             torch.tensor(gamma), torch.tensor(beta), training=False, eps=1e-5)
    np.testing.assert_allclose(y_eval, ty_eval.numpy(), rtol=1e-12, atol=1e-12)
