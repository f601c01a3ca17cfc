"""Numba CPU kernels: the functions of ``reference``, same names and signatures, compiled.

Each public function checks its arguments with the helpers of ``reference``, makes its inputs C-contiguous
in the dtype of its first array argument, allocates the outputs and calls a jitted body. The bodies loop
with ``prange`` over an independent outer dimension (the N*C planes, or C for per-channel statistics)
around a contiguous inner loop, which Numba vectorises. One exception: ``im2col_gemm`` is a single NumPy
copy of a strided view, which measured faster than the Numba loops (see its docstring). Shapes and
formulas: see ``reference``.
"""
import numpy as np
from numba import njit, prange

from minidl.kernels import reference as ref
from minidl.kernels.reference import conv_output_size  # noqa: F401  (same public names as reference)


def _contiguous(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


# For kernel offset (i, j), output rows oh_lo:oh_hi and columns ow_lo:ow_hi read inside the input, the rest
# read padding. Copying that block as one slice measured 2-3x faster than indexing element by element.
@njit(cache=True, fastmath=True, parallel=True)
def _im2col(x, col, SH, SW, PH, PW, DH, DW):
    # x (P, H, W) -> col (P, KH, KW, OH, OW), P = N*C planes.
    P, H, W = x.shape
    KH, KW, OH, OW = col.shape[1:]
    for p in prange(P):
        for i in range(KH):
            h_shift = i * DH - PH                                # input row of output row oh: oh*SH + h_shift
            oh_lo = min(max(-(h_shift // SH), 0), OH)           # first oh inside the input
            oh_hi = max(min((H - 1 - h_shift) // SH + 1, OH), oh_lo)
            for j in range(KW):
                w_shift = j * DW - PW
                ow_lo = min(max(-(w_shift // SW), 0), OW)
                ow_hi = max(min((W - 1 - w_shift) // SW + 1, OW), ow_lo)
                block = col[p, i, j]
                block[:oh_lo] = 0
                block[oh_hi:] = 0
                block[oh_lo:oh_hi, :ow_lo] = 0
                block[oh_lo:oh_hi, ow_hi:] = 0
                if oh_hi > oh_lo and ow_hi > ow_lo:
                    h0, w0 = oh_lo * SH + h_shift, ow_lo * SW + w_shift
                    block[oh_lo:oh_hi, ow_lo:ow_hi] = x[p, h0:h0 + (oh_hi - oh_lo - 1) * SH + 1:SH,
                                                        w0:w0 + (ow_hi - ow_lo - 1) * SW + 1:SW]


@njit(cache=True, fastmath=True, parallel=True)
def _col2im(col, x, SH, SW, PH, PW, DH, DW):
    # col (P, KH, KW, OH, OW) -> x (P, H, W); each plane is summed by one thread, so no races.
    P, H, W = x.shape
    KH, KW, OH, OW = col.shape[1:]
    for p in prange(P):
        x[p] = 0
        for i in range(KH):
            h_shift = i * DH - PH
            oh_lo = min(max(-(h_shift // SH), 0), OH)
            oh_hi = max(min((H - 1 - h_shift) // SH + 1, OH), oh_lo)
            for j in range(KW):
                w_shift = j * DW - PW
                ow_lo = min(max(-(w_shift // SW), 0), OW)
                ow_hi = max(min((W - 1 - w_shift) // SW + 1, OW), ow_lo)
                w0 = ow_lo * SW + w_shift
                for oh in range(oh_lo, oh_hi):
                    source = col[p, i, j, oh, ow_lo:ow_hi]
                    target = x[p, oh * SH + h_shift, w0:w0 + (ow_hi - ow_lo - 1) * SW + 1:SW]
                    for k in range(ow_hi - ow_lo):          # a slice += would allocate a temporary
                        target[k] += source[k]


def im2col(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    """Numba im2col: x (N, C, H, W) -> col (N, C, KH, KW, OH, OW). See reference.im2col."""
    N, C, H, W = ref.check_array("im2col", "x", x, 4).shape
    OH, OW = ref.window_geometry("im2col", H, W, KH, KW, SH, SW, PH, PW, DH, DW)
    x = np.ascontiguousarray(x)
    col = np.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    _im2col(x.reshape(N * C, H, W), col.reshape(N * C, KH, KW, OH, OW), SH, SW, PH, PW, DH, DW)
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    """Numba col2im: col (N, C, KH, KW, OH, OW) -> x (N, C, H, W). See reference.col2im."""
    N, C, KH, KW, OH, OW = ref.check_array("col2im", "col", col, 6).shape
    ref.check_output_hw("col2im", "col", (OH, OW),
                        ref.window_geometry("col2im", H, W, KH, KW, SH, SW, PH, PW, DH, DW), H, W)
    col = np.ascontiguousarray(col)
    x = np.empty((N, C, H, W), dtype=col.dtype)
    _col2im(col.reshape(N * C, KH, KW, OH, OW), x.reshape(N * C, H, W), SH, SW, PH, PW, DH, DW)
    return x



# The sums of _col2im, with the column buffer laid out for one GEMM over the whole batch: plane (n, c)
# gathers from col[c, :, :, n], so the planes still write disjoint blocks.
@njit(cache=True, fastmath=True, parallel=True)
def _col2im_gemm(col, x, SH, SW, PH, PW, DH, DW):
    # col (C, KH, KW, N, OH, OW) -> x (N, C, H, W)
    N, C, H, W = x.shape
    KH, KW, _, OH, OW = col.shape[1:]
    for p in prange(N * C):
        n, c = p // C, p % C
        x[n, c] = 0
        for i in range(KH):
            h_shift = i * DH - PH
            oh_lo = min(max(-(h_shift // SH), 0), OH)
            oh_hi = max(min((H - 1 - h_shift) // SH + 1, OH), oh_lo)
            for j in range(KW):
                w_shift = j * DW - PW
                ow_lo = min(max(-(w_shift // SW), 0), OW)
                ow_hi = max(min((W - 1 - w_shift) // SW + 1, OW), ow_lo)
                w0 = ow_lo * SW + w_shift
                for oh in range(oh_lo, oh_hi):
                    source = col[c, i, j, n, oh, ow_lo:ow_hi]
                    target = x[n, c, oh * SH + h_shift, w0:w0 + (ow_hi - ow_lo - 1) * SW + 1:SW]
                    for k in range(ow_hi - ow_lo):
                        target[k] += source[k]


def _zero_pad(x, PH, PW):
    """x zero-padded by PH rows and PW columns on each side, C-contiguous (x itself if it already is)."""
    if not (PH or PW):
        return np.ascontiguousarray(x)
    N, C, H, W = x.shape
    xpad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    xpad[:, :, PH:PH + H, PW:PW + W] = x
    return xpad


@njit(cache=True, fastmath=True, parallel=True)
def _im2col_gemm_stride1(x, col):
    # x (N, C, H, W), already padded -> col (C, KH, KW, N, OH, OW); stride 1, no dilation. The plain loop
    # nest, with nothing but the copy in the innermost loop, vectorises; the same copy with padding, strides
    # or dilation handled inside the loops (bounds per row, zero fills) measured 3-10x slower than NumPy.
    N, C, H, W = x.shape
    KH, KW, _, OH, OW = col.shape[1:]
    for p in prange(C * KH):
        c, i = p // KH, p % KH
        for j in range(KW):
            for n in range(N):
                for oh in range(OH):
                    for ow in range(OW):
                        col[c, i, j, n, oh, ow] = x[n, c, oh + i, ow + j]


def im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    """im2col: x (N, C, H, W) -> col (C, KH, KW, N, OH, OW). See reference.im2col_gemm.

    Stride 1, undilated, rows of at least 4 outputs: the zero-padded x (a copy, if padded) copied by a Numba
    loop, 2.1-2.7x faster than NumPy on LeNet C1/C3, ResNet-20's 3x3 layers, GoogLeNet's 5x5 (1-thread,
    the 2 MB chunks conv2d uses) and equal on VGG conv1_2. Otherwise the windows of the zero-padded x are a
    strided view of it (as_strided), and the buffer is that view copied by NumPy: faster than Numba for
    strided convolutions (AlexNet conv1 0.33 vs 0.70 ms, ResNet downsampling 3x3 0.12 vs 0.21 ms) and for
    rows of 1-3 outputs (LeNet C5, where the loop has nothing to vectorise: 0.012 vs 0.07 ms).
    """
    N, C, H, W = ref.check_array("im2col_gemm", "x", x, 4).shape
    OH, OW = ref.window_geometry("im2col_gemm", H, W, KH, KW, SH, SW, PH, PW, DH, DW)
    xpad = _zero_pad(x, PH, PW)
    col = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    if (SH, SW, DH, DW) == (1, 1, 1, 1) and OW >= 4:
        _im2col_gemm_stride1(xpad, col)
        return col
    sN, sC, sH, sW = xpad.strides
    windows = np.lib.stride_tricks.as_strided(
        xpad, (C, KH, KW, N, OH, OW), (sC, sH * DH, sW * DW, sN, sH * SH, sW * SW), writeable=False)
    np.copyto(col, windows)
    return col


@njit(cache=True, fastmath=True, parallel=True)
def _col2im_gemm_stride1(col, xpad):
    # col (C, KH, KW, N, OH, OW) -> xpad (N, C, OH + KH - 1, OW + KW - 1), the zero-padded x; stride 1, no
    # dilation. One prange iteration per channel, so no two threads add into the same element; like
    # _im2col_gemm_stride1, a loop nest with nothing but the add inside vectorises: LeNet C3 (34 images)
    # 0.08 ms against 0.33 ms for _col2im_gemm, ResNet-20's 3x3 0.04 against 0.18 ms.
    C, KH, KW, N, OH, OW = col.shape
    for c in prange(C):
        for n in range(N):
            xpad[n, c] = 0
        for i in range(KH):
            for j in range(KW):
                for n in range(N):
                    for oh in range(OH):
                        for ow in range(OW):
                            xpad[n, c, oh + i, ow + j] += col[c, i, j, n, oh, ow]


def col2im_gemm(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    """Numba col2im: col (C, KH, KW, N, OH, OW) -> x (N, C, H, W). See reference.col2im_gemm.

    Stride 1, undilated, rows of at least 4 outputs: _col2im_gemm_stride1 into a padded x, then cropped.
    """
    C, KH, KW, N, OH, OW = ref.check_array("col2im_gemm", "col", col, 6).shape
    ref.check_output_hw("col2im_gemm", "col", (OH, OW),
                        ref.window_geometry("col2im_gemm", H, W, KH, KW, SH, SW, PH, PW, DH, DW), H, W)
    if (OH, OW, KH, KW, PH, PW, DH, DW) == (1, 1, H, W, 0, 0, 1, 1):
        # One window covering the whole image (a fully connected layer written as a conv, LeNet-5 C5): each
        # input element is in exactly one column, so col2im is a transpose. The general kernel, whose loops
        # run once each here, took 0.30 ms on LeNet C5 (batch 64), the transpose 0.02 ms.
        return np.ascontiguousarray(col.reshape(C, KH, KW, N).transpose(3, 0, 1, 2))
    col = np.ascontiguousarray(col)
    if (SH, SW, DH, DW) == (1, 1, 1, 1) and OW >= 4:
        xpad = np.empty((N, C, OH + KH - 1, OW + KW - 1), dtype=col.dtype)
        _col2im_gemm_stride1(col, xpad)
        return np.ascontiguousarray(xpad[:, :, PH:PH + H, PW:PW + W]) if (PH or PW) else xpad
    x = np.empty((N, C, H, W), dtype=col.dtype)
    _col2im_gemm(col, x, SH, SW, PH, PW, DH, DW)
    return x

# Depthwise convolution, stride 1: one prange iteration per plane (n, c), over a zero-padded copy of x so
# that the loops carry no bounds. The output plane is accumulated in a local buffer (in L1 for planes up to
# ~90 x 90), one pass per kernel offset. Xception's 3x3 (16 x 128 x 56 x 56), one thread: 7.5-8 ms against
# 12.6-19 ms for conv2d's grouped GEMM (C matmuls of 1 x 9 by 9 x N*OH*OW) in two measurements; a version
# with the strides in the index arithmetic did not vectorise and took 30 ms.
@njit(cache=True, fastmath=True, parallel=True)
def _depthwise_conv2d(xpad, W, y):
    N, C = xpad.shape[:2]
    KH, KW = W.shape[2:]
    OH, OW = y.shape[2:]
    for p in prange(N * C):
        n, c = p // C, p % C
        acc = np.zeros((OH, OW), dtype=y.dtype)
        for i in range(KH):
            for j in range(KW):
                w = W[c, 0, i, j]
                for oh in range(OH):
                    for ow in range(OW):
                        acc[oh, ow] += w * xpad[n, c, oh + i, ow + j]
        y[n, c] = acc


@njit(cache=True, fastmath=True, parallel=True)
def _depthwise_conv2d_grad_weight(xpad, gy, gW):
    # One prange iteration per channel, summing over the images; each (n, c) plane pair stays in L1 for all
    # KH*KW offsets. Per plane the sums are float32 (vectorised), added up over the planes in float64.
    N, C = xpad.shape[:2]
    KH, KW = gW.shape[2:]
    OH, OW = gy.shape[2:]
    for c in prange(C):
        total = np.zeros((KH, KW), dtype=np.float64)
        for n in range(N):
            for i in range(KH):
                for j in range(KW):
                    s = gy[n, c, 0, 0] * 0
                    for oh in range(OH):
                        for ow in range(OW):
                            s += gy[n, c, oh, ow] * xpad[n, c, oh + i, ow + j]
                    total[i, j] += s
        for i in range(KH):
            for j in range(KW):
                gW[c, 0, i, j] = total[i, j]


def depthwise_conv2d(x, W, PH, PW):
    """Numba depthwise convolution, stride 1: x (N, C, H, W), W (C, 1, KH, KW) -> y. See reference."""
    OH, OW = ref.check_depthwise("depthwise_conv2d", x, W, PH, PW)
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    _depthwise_conv2d(_zero_pad(x, PH, PW), _contiguous(W, x.dtype), y)
    return y


def depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW):
    """Numba filter gradient of depthwise_conv2d: -> gW (C, 1, KH, KW). See reference."""
    N, C, H, W = ref.check_array("depthwise_conv2d_grad_weight", "x", x, 4).shape
    expected = (N, C) + ref.window_geometry("depthwise_conv2d_grad_weight", H, W, KH, KW, 1, 1, PH, PW)
    ref.check_same_shape("depthwise_conv2d_grad_weight", "gy", gy, "the output", expected)
    gW = np.empty((C, 1, KH, KW), dtype=x.dtype)
    _depthwise_conv2d_grad_weight(_zero_pad(x, PH, PW), _contiguous(gy, x.dtype), gW)
    return gW


def pad_nhwc(x, PT, PL, Hp, Wp):
    """x (N, C, H, W) -> channels-last, zero-padded (N, Hp, Wp, C). See reference.pad_nhwc.

    Zero-padded first (channels first), then one NumPy transposing copy: on ResNet-18's 64 x 32 x 32 layer
    (128 images, 4 at a time, one thread) 5.6 ms, against 9-32 ms for Numba loops in four orders (the
    source's 64 channel rows, 4 KB apart, defeated the prefetcher in the loop that read them together).
    """
    N, C, H, W = ref.check_pad_nhwc("pad_nhwc", x, PT, PL, Hp, Wp)
    xpad = np.zeros((N, C, Hp, Wp), dtype=x.dtype)
    xpad[:, :, PT:PT + H, PL:PL + W] = x
    out = np.empty((N, Hp, Wp, C), dtype=x.dtype)
    np.copyto(out, xpad.transpose(0, 2, 3, 1))
    return out


@njit(cache=True, fastmath=True, parallel=True)
def _crop_nchw(x, PT, PL, y):
    N, K, H, W = y.shape
    for q in prange(N * H):
        n, h = q // H, q % H
        for k in range(K):
            for w in range(W):
                y[n, k, h, w] = x[n, PT + h, PL + w, k]


def crop_nchw(x, PT, PL, H, W, out=None):
    """x (N, Hp, Wp, C) -> (N, C, H, W), the window at (PT, PL). See reference.crop_nchw. A Numba loop:
    1.3-2x faster than NumPy's transposing copy on ResNet-18's layers."""
    N, Hp, Wp, C = ref.check_crop_nchw("crop_nchw", x, PT, PL, H, W)
    out = ref.check_out("crop_nchw", out, (N, C, H, W), x.dtype)
    _crop_nchw(np.ascontiguousarray(x), PT, PL, out)
    return out


# Winograd F(4x4, 3x3)'s four transforms with the matrices written out (reference.WINOGRAD_BT, _AT): the
# general loops below multiply by every entry of L, zeros skipped, and accumulate in memory; these compute
# each output row once from values in registers. winograd_tiles by BT, 32-128 channels: 2.4-3x faster.
_BT, _AT = np.array(ref.WINOGRAD_BT), np.array(ref.WINOGRAD_AT)


def _is_matrix(L, known):
    return L.shape == known.shape and np.array_equal(L, known)


@njit(cache=True, fastmath=True, parallel=True)
def _winograd_tiles_bt(x, TH, TW, V):
    # V[a*6 + b, t] = (BT d BT^T)[a, b] for the 6x6 tile d at (4 th, 4 tw): rows first (tmp = BT d), then columns.
    N, Hp, Wp, C = x.shape
    for q in prange(N * TH):
        n, th = q // TH, q % TH
        tmp = np.empty((6, 6, C), x.dtype)
        h0 = 4 * th
        for tw in range(TW):
            t, w0 = q * TW + tw, 4 * tw
            for j in range(6):
                for c in range(C):
                    d0, d1, d2 = x[n, h0, w0 + j, c], x[n, h0 + 1, w0 + j, c], x[n, h0 + 2, w0 + j, c]
                    d3, d4, d5 = x[n, h0 + 3, w0 + j, c], x[n, h0 + 4, w0 + j, c], x[n, h0 + 5, w0 + j, c]
                    tmp[0, j, c] = 4 * d0 - 5 * d2 + d4
                    tmp[1, j, c] = d3 + d4 - 4 * (d1 + d2)
                    tmp[2, j, c] = d4 - d3 + 4 * (d1 - d2)
                    tmp[3, j, c] = d4 - d2 + 2 * (d3 - d1)
                    tmp[4, j, c] = d4 - d2 - 2 * (d3 - d1)
                    tmp[5, j, c] = 4 * d1 - 5 * d3 + d5
            for a in range(6):
                for c in range(C):
                    d0, d1, d2, d3, d4, d5 = tmp[a, 0, c], tmp[a, 1, c], tmp[a, 2, c], tmp[a, 3, c], tmp[a, 4, c], tmp[a, 5, c]
                    V[6 * a, t, c] = 4 * d0 - 5 * d2 + d4
                    V[6 * a + 1, t, c] = d3 + d4 - 4 * (d1 + d2)
                    V[6 * a + 2, t, c] = d4 - d3 + 4 * (d1 - d2)
                    V[6 * a + 3, t, c] = d4 - d2 + 2 * (d3 - d1)
                    V[6 * a + 4, t, c] = d4 - d2 - 2 * (d3 - d1)
                    V[6 * a + 5, t, c] = 4 * d1 - 5 * d3 + d5


@njit(cache=True, fastmath=True, parallel=True)
def _winograd_tiles_a(x, TH, TW, V):
    # V[a*6 + b, t] = (A g A^T)[a, b] for the 4x4 tile g at (4 th, 4 tw), A = AT^T (6 x 4).
    N, Hp, Wp, C = x.shape
    for q in prange(N * TH):
        n, th = q // TH, q % TH
        tmp = np.empty((6, 4, C), x.dtype)
        h0 = 4 * th
        for tw in range(TW):
            t, w0 = q * TW + tw, 4 * tw
            for j in range(4):
                for c in range(C):
                    g0, g1, g2, g3 = x[n, h0, w0 + j, c], x[n, h0 + 1, w0 + j, c], x[n, h0 + 2, w0 + j, c], x[n, h0 + 3, w0 + j, c]
                    tmp[0, j, c] = g0
                    tmp[1, j, c] = (g0 + g2) + (g1 + g3)
                    tmp[2, j, c] = (g0 + g2) - (g1 + g3)
                    tmp[3, j, c] = (g0 + 4 * g2) + (2 * g1 + 8 * g3)
                    tmp[4, j, c] = (g0 + 4 * g2) - (2 * g1 + 8 * g3)
                    tmp[5, j, c] = g3
            for a in range(6):
                for c in range(C):
                    g0, g1, g2, g3 = tmp[a, 0, c], tmp[a, 1, c], tmp[a, 2, c], tmp[a, 3, c]
                    V[6 * a, t, c] = g0
                    V[6 * a + 1, t, c] = (g0 + g2) + (g1 + g3)
                    V[6 * a + 2, t, c] = (g0 + g2) - (g1 + g3)
                    V[6 * a + 3, t, c] = (g0 + 4 * g2) + (2 * g1 + 8 * g3)
                    V[6 * a + 4, t, c] = (g0 + 4 * g2) - (2 * g1 + 8 * g3)
                    V[6 * a + 5, t, c] = g3


@njit(cache=True, fastmath=True, parallel=True)
def _winograd_untiles_at(M, TH, TW, out):
    # out[n, 4 th + i, 4 tw + j] = (AT m AT^T)[i, j] for the tile m = M[:, t]: 4x4 tiles side by side, so
    # each (image, tile row) writes its own four rows and no pixel twice.
    N, Hp, Wp, K = out.shape
    for q in prange(N * TH):
        n, th = q // TH, q % TH
        tmp = np.empty((6, 4, K), M.dtype)
        h0 = 4 * th
        for tw in range(TW):
            t, w0 = q * TW + tw, 4 * tw
            for a in range(6):
                for k in range(K):
                    m0, m1, m2 = M[6 * a, t, k], M[6 * a + 1, t, k], M[6 * a + 2, t, k]
                    m3, m4, m5 = M[6 * a + 3, t, k], M[6 * a + 4, t, k], M[6 * a + 5, t, k]
                    tmp[a, 0, k] = m0 + (m1 + m2) + (m3 + m4)
                    tmp[a, 1, k] = (m1 - m2) + 2 * (m3 - m4)
                    tmp[a, 2, k] = (m1 + m2) + 4 * (m3 + m4)
                    tmp[a, 3, k] = (m1 - m2) + 8 * (m3 - m4) + m5
            for j in range(4):
                for k in range(K):
                    m0, m1, m2, m3, m4, m5 = tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k], tmp[4, j, k], tmp[5, j, k]
                    out[n, h0, w0 + j, k] = m0 + (m1 + m2) + (m3 + m4)
                    out[n, h0 + 1, w0 + j, k] = (m1 - m2) + 2 * (m3 - m4)
                    out[n, h0 + 2, w0 + j, k] = (m1 + m2) + 4 * (m3 + m4)
                    out[n, h0 + 3, w0 + j, k] = (m1 - m2) + 8 * (m3 - m4) + m5


@njit(cache=True, fastmath=True, parallel=True)
def _winograd_untiles_b(M, TH, TW, out):
    # out[n, 4 th + i, 4 tw + j] += (B m B^T)[i, j], B = BT^T: 6x6 tiles at stride 4 overlap by 2, so one
    # image per iteration (one thread adds into a pixel).
    N, Hp, Wp, K = out.shape
    for n in prange(N):
        out[n] = 0
        tmp = np.empty((6, 6, K), M.dtype)
        for th in range(TH):
            h0 = 4 * th
            for tw in range(TW):
                t, w0 = (n * TH + th) * TW + tw, 4 * tw
                for a in range(6):
                    for k in range(K):
                        m0, m1, m2 = M[6 * a, t, k], M[6 * a + 1, t, k], M[6 * a + 2, t, k]
                        m3, m4, m5 = M[6 * a + 3, t, k], M[6 * a + 4, t, k], M[6 * a + 5, t, k]
                        tmp[a, 0, k] = 4 * m0
                        tmp[a, 1, k] = 4 * (m2 - m1) + 2 * (m4 - m3) + 4 * m5
                        tmp[a, 2, k] = -5 * m0 - 4 * (m1 + m2) - (m3 + m4)
                        tmp[a, 3, k] = (m1 - m2) + 2 * (m3 - m4) - 5 * m5
                        tmp[a, 4, k] = m0 + (m1 + m2) + (m3 + m4)
                        tmp[a, 5, k] = m5
                for j in range(6):
                    for k in range(K):
                        m0, m1, m2, m3, m4, m5 = tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k], tmp[4, j, k], tmp[5, j, k]
                        out[n, h0, w0 + j, k] += 4 * m0
                        out[n, h0 + 1, w0 + j, k] += 4 * (m2 - m1) + 2 * (m4 - m3) + 4 * m5
                        out[n, h0 + 2, w0 + j, k] += -5 * m0 - 4 * (m1 + m2) - (m3 + m4)
                        out[n, h0 + 3, w0 + j, k] += (m1 - m2) + 2 * (m3 - m4) - 5 * m5
                        out[n, h0 + 4, w0 + j, k] += m0 + (m1 + m2) + (m3 + m4)
                        out[n, h0 + 5, w0 + j, k] += m5


@njit(cache=True, fastmath=True, parallel=True)
def _winograd_tiles(x, L, s, TH, TW, V):
    # One (image, tile row) per iteration; each tile: tmp[a, j] = sum_i L[a, i] x[s*th + i, s*tw + j], then
    # V[a*AO + b, t] = sum_j L[b, j] tmp[a, j]. Every innermost loop runs over the C contiguous channels (it
    # vectorises); the zero entries of L are skipped outside it.
    N, Hp, Wp, C = x.shape
    AO, AI = L.shape
    for q in prange(N * TH):
        n, th = q // TH, q % TH
        tmp = np.empty((AO, AI, C), x.dtype)
        h0 = s * th
        for tw in range(TW):
            t = q * TW + tw
            w0 = s * tw
            for a in range(AO):
                for j in range(AI):
                    for c in range(C):
                        tmp[a, j, c] = 0
                    for i in range(AI):
                        f = L[a, i]
                        if f != 0:
                            for c in range(C):
                                tmp[a, j, c] += f * x[n, h0 + i, w0 + j, c]
            for a in range(AO):
                for b in range(AO):
                    for c in range(C):
                        V[a * AO + b, t, c] = 0
                    for j in range(AI):
                        f = L[b, j]
                        if f != 0:
                            for c in range(C):
                                V[a * AO + b, t, c] += f * tmp[a, j, c]


def winograd_tiles(x, L, s, TH, TW, out=None):
    """Numba winograd_tiles: x (N, Hp, Wp, C) -> V (AO*AO, N*TH*TW, C). See reference.winograd_tiles."""
    ref.check_winograd_tiles("winograd_tiles", x, L, s, TH, TW)
    AO = L.shape[0]
    out = ref.check_out("winograd_tiles", out, (AO * AO, x.shape[0] * TH * TW, x.shape[3]), x.dtype)
    x = np.ascontiguousarray(x)
    if s == 4 and _is_matrix(L, _BT):
        _winograd_tiles_bt(x, TH, TW, out)
    elif s == 4 and _is_matrix(L, _AT.T):
        _winograd_tiles_a(x, TH, TW, out)
    else:
        _winograd_tiles(x, _contiguous(L, x.dtype), s, TH, TW, out)
    return out


@njit(cache=True, fastmath=True, parallel=True)
def _winograd_untiles(M, L, s, TH, TW, out):
    # One image per iteration: with AO > s the tiles overlap, and only one thread may add into a pixel.
    # Each tile: tmp[a, j] = sum_b L[j, b] M[a*AI + b, t], then out[s*th + i, s*tw + j] += sum_a L[i, a] tmp[a, j].
    N, Hp, Wp, K = out.shape
    AO, AI = L.shape
    for n in prange(N):
        out[n] = 0
        tmp = np.empty((AI, AO, K), M.dtype)
        for th in range(TH):
            for tw in range(TW):
                t = (n * TH + th) * TW + tw
                for a in range(AI):
                    for j in range(AO):
                        for k in range(K):
                            tmp[a, j, k] = 0
                        for b in range(AI):
                            f = L[j, b]
                            if f != 0:
                                for k in range(K):
                                    tmp[a, j, k] += f * M[a * AI + b, t, k]
                for i in range(AO):
                    for j in range(AO):
                        for a in range(AI):
                            f = L[i, a]
                            if f != 0:
                                for k in range(K):
                                    out[n, s * th + i, s * tw + j, k] += f * tmp[a, j, k]


def winograd_untiles(M, L, s, TH, TW, Hp, Wp, out=None):
    """Numba winograd_untiles: M (AI*AI, N*TH*TW, K) -> (N, Hp, Wp, K). See reference.winograd_untiles."""
    ref.check_winograd_untiles("winograd_untiles", M, L, s, TH, TW, Hp, Wp)
    out = ref.check_out("winograd_untiles", out, (M.shape[1] // (TH * TW), Hp, Wp, M.shape[2]), M.dtype)
    M = np.ascontiguousarray(M)
    if s == 4 and _is_matrix(L, _AT):
        _winograd_untiles_at(M, TH, TW, out)
        out[:, 4 * TH:] = 0      # the tiles write every pixel they cover, once
        out[:, :, 4 * TW:] = 0
    elif s == 4 and _is_matrix(L, _BT.T):
        _winograd_untiles_b(M, TH, TW, out)
    else:
        _winograd_untiles(M, _contiguous(L, M.dtype), s, TH, TW, out)
    return out


# No fastmath here: it lets LLVM assume there are no NaNs or infinities, and max pooling starts from -inf
# and must let a NaN through.
@njit(cache=True, parallel=True)
def _max_pool2d_forward(x, y, indices, KH, KW, SH, SW, PH, PW, OH, OW):
    # x (P, H, W) -> y, indices (P, OH*OW). Per plane, for each window offset (i, j) in scan order, the
    # candidates of all windows are gathered into one contiguous row, then a branch-free loop keeps the
    # best (strictly greater, or the first NaN) with selects, which vectorises. Windows start at -inf and at
    # the index of their first element inside x; candidates in the padding (or, with ceil_mode, past the
    # edge) never win. The loop with the window's bounds and a data-dependent branch per element that it
    # replaces: 3x3/2 pad 1 on 16x64x112x112 110 ms -> 39 ms, AlexNet's 3x3/2 on 16x96x55x55 38 -> 14 ms,
    # GoogLeNet's 3x3/1 on 16x192x28x28 78 -> 29 ms (1 thread); the same results, bit for bit.
    P, H, W = x.shape
    L = OH * OW
    for p in prange(P):
        best = np.empty(L, x.dtype)
        index = np.empty(L, np.int64)
        corner = np.empty(L, np.int64)            # flat index of the window's top-left (may be outside x)
        v = np.empty(L, x.dtype)
        inside = np.empty(L, np.bool_)
        for oh in range(OH):
            for ow in range(OW):
                l = oh * OW + ow
                h0, w0 = oh * SH - PH, ow * SW - PW
                corner[l] = h0 * W + w0
                index[l] = max(h0, 0) * W + max(w0, 0)
                best[l] = -np.inf
        for i in range(KH):
            for j in range(KW):
                for oh in range(OH):
                    h = oh * SH - PH + i
                    h_in = (h >= 0) & (h < H)
                    h = min(max(h, 0), H - 1)
                    for ow in range(OW):
                        w = ow * SW - PW + j
                        l = oh * OW + ow
                        v[l] = x[p, h, min(max(w, 0), W - 1)]
                        inside[l] = h_in & (w >= 0) & (w < W)
                offset = i * W + j
                for l in range(L):
                    c, b = v[l], best[l]
                    # `|` and `&` on booleans, not `or`/`and`: those short-circuit, i.e. branch.
                    take = inside[l] & ((c > b) | ((c != c) & (b == b)))
                    best[l] = c if take else b
                    index[l] = corner[l] + offset if take else index[l]
        for l in range(L):
            y[p, l] = best[l]
            indices[p, l] = index[l]


@njit(cache=True, parallel=True)
def _max_pool2d_forward_2x2(x, y, indices):
    # The common 2x2, stride 2, unpadded window with its loops unrolled: measured 5-8x faster than the
    # general loop (16x64x112x112: ~8 ms against ~65 ms). Same scan order and tie rule.
    P, H, W = x.shape
    OH, OW = y.shape[1:]
    for p in prange(P):
        for oh in range(OH):
            top, bottom = x[p, 2 * oh], x[p, 2 * oh + 1]
            k_top, k_bottom = 2 * oh * W, (2 * oh + 1) * W   # flat index of each row's first element
            for ow in range(OW):
                w = 2 * ow
                # Written out, not a loop over a tuple of candidates: that measured 3x slower (LeNet S2).
                best, best_index = top[w], k_top + w
                v = top[w + 1]
                if v > best or (v != v and best == best):
                    best, best_index = v, k_top + w + 1
                v = bottom[w]
                if v > best or (v != v and best == best):
                    best, best_index = v, k_bottom + w
                v = bottom[w + 1]
                if v > best or (v != v and best == best):
                    best, best_index = v, k_bottom + w + 1
                y[p, oh, ow] = best
                indices[p, oh, ow] = best_index


@njit(cache=True, parallel=True)
def _max_pool2d_forward_2x2_short(x, y, indices, OH, OW):
    # The 2x2 kernel above for short output rows (OW < 32). There LLVM leaves the row loop scalar, and its
    # three data-dependent compares mispredict on real activations: ~10 ns per output on LeNet S2/S4
    # (sorted input: 1.4 ns). Here each plane's windows are first gathered into four contiguous rows
    # (plain copies), then one loop over the whole plane picks the max and its index with selects and
    # integer arithmetic instead of branches, which vectorises. 1-thread: LeNet S2 (64x6x28x28) 0.15-0.35 ms
    # vs 0.7-1.2 ms, S4 (64x16x10x10) 0.08 vs 0.27 ms, 16x512x28x28 3.5 vs 17 ms; on 112x112 planes the
    # kernel above stays faster. Same results, bit for bit: first max wins, the first NaN wins.
    # y, indices: (P, OH*OW).
    P, H, W = x.shape
    L = OH * OW
    for p in prange(P):
        q = np.empty((4, L), x.dtype)            # top-left, top-right, bottom-left, bottom-right
        base = np.empty(L, np.int64)             # flat index of the top-left element
        for oh in range(OH):
            for ow in range(OW):
                h, w, l = 2 * oh, 2 * ow, oh * OW + ow
                q[0, l] = x[p, h, w]
                q[1, l] = x[p, h, w + 1]
                q[2, l] = x[p, h + 1, w]
                q[3, l] = x[p, h + 1, w + 1]
                base[l] = h * W + w
        for l in range(L):
            a, b, c, d = q[0, l], q[1, l], q[2, l], q[3, l]
            # `|` and `&` on booleans, not `or`/`and`: those short-circuit, i.e. branch.
            ab = a if (a >= b) | (a != a) else b          # the earlier one on ties, a NaN if any
            cd = c if (c >= d) | (c != c) else d
            m = ab if (ab >= cd) | (ab != ab) else cd
            nan = m != m
            miss_a = 1 - ((a == m) | (nan & (a != a)))     # 1 where the window's first max is not a
            miss_b = 1 - ((b == m) | (nan & (b != b)))
            miss_c = 1 - ((c == m) | (nan & (c != c)))
            y[p, l] = m
            indices[p, l] = base[l] + miss_a * (1 + miss_b * (W - 1 + miss_c))   # offset 0, 1, W or W+1


@njit(cache=True, fastmath=True, parallel=True)
def _max_pool2d_backward(gy, indices, gx, out_of_range):
    # gy, indices (P, OH*OW) -> gx (P, H*W); out_of_range[p] flags a bad index instead of writing it.
    P, HW = gx.shape
    L = gy.shape[1]
    for p in prange(P):
        for k in range(HW):
            gx[p, k] = 0
        for l in range(L):
            k = indices[p, l]
            if 0 <= k < HW:
                gx[p, k] += gy[p, l]
            else:
                out_of_range[p] = True


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False):
    """Numba max pooling: x (N, C, H, W) -> y, indices (N, C, OH, OW). See reference.max_pool2d_forward."""
    op = "max_pool2d_forward"
    N, C, H, W = ref.check_array(op, "x", x, 4).shape
    OH, OW = ref.window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode, pool=True)
    x = np.ascontiguousarray(x)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    indices = np.empty((N, C, OH, OW), dtype=np.int64)
    planes = (x.reshape(N * C, H, W), y.reshape(N * C, OH, OW), indices.reshape(N * C, OH, OW))
    if (KH, KW, SH, SW, PH, PW) == (2, 2, 2, 2, 0, 0) and 2 * OH <= H and 2 * OW <= W:   # no partial window
        if OW < 32:
            _max_pool2d_forward_2x2_short(planes[0], planes[1].reshape(N * C, OH * OW),
                                          planes[2].reshape(N * C, OH * OW), OH, OW)
        else:
            _max_pool2d_forward_2x2(*planes)
    else:
        _max_pool2d_forward(planes[0], planes[1].reshape(N * C, OH * OW), planes[2].reshape(N * C, OH * OW),
                            KH, KW, SH, SW, PH, PW, OH, OW)
    return y, indices


def max_pool2d_backward(gy, indices, H, W):
    """Numba scatter-add of gy at indices: -> gx (N, C, H, W). See reference.max_pool2d_backward."""
    op = "max_pool2d_backward"
    ref.check_max_pool2d_backward(op, gy, indices, H, W)
    N, C, OH, OW = gy.shape
    gy = np.ascontiguousarray(gy)
    indices = _contiguous(indices, np.int64)
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    out_of_range = np.zeros(N * C, dtype=np.bool_)
    _max_pool2d_backward(gy.reshape(N * C, OH * OW), indices.reshape(N * C, OH * OW), gx.reshape(N * C, H * W),
                         out_of_range)
    if out_of_range.any():
        raise ref.indices_out_of_range(op, indices, H, W)
    return gx


@njit(cache=True, fastmath=True, parallel=True)
def _avg_pool2d_forward(x, y, KH, KW, SH, SW, PH, PW, count_include_pad):
    P, H, W = x.shape
    OH, OW = y.shape[1:]
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * SH - PH
            h1 = min(h0 + KH, H + PH)
            pool_h = h1 - h0
            h0, h1 = max(h0, 0), min(h1, H)
            for ow in range(OW):
                w0 = ow * SW - PW
                w1 = min(w0 + KW, W + PW)
                pool_w = w1 - w0
                w0, w1 = max(w0, 0), min(w1, W)
                total = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        total += x[p, h, w]
                divisor = pool_h * pool_w if count_include_pad else (h1 - h0) * (w1 - w0)
                y[p, oh, ow] = total / divisor


@njit(cache=True, fastmath=True, parallel=True)
def _avg_pool2d_backward(gy, gx, KH, KW, SH, SW, PH, PW, count_include_pad):
    P, H, W = gx.shape
    OH, OW = gy.shape[1:]
    for p in prange(P):
        for h in range(H):
            for w in range(W):
                gx[p, h, w] = 0
        for oh in range(OH):
            h0 = oh * SH - PH
            h1 = min(h0 + KH, H + PH)
            pool_h = h1 - h0
            h0, h1 = max(h0, 0), min(h1, H)
            for ow in range(OW):
                w0 = ow * SW - PW
                w1 = min(w0 + KW, W + PW)
                pool_w = w1 - w0
                w0, w1 = max(w0, 0), min(w1, W)
                divisor = pool_h * pool_w if count_include_pad else (h1 - h0) * (w1 - w0)
                g = gy[p, oh, ow] / divisor
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        gx[p, h, w] += g


# The common 2x2, stride 2, unpadded window (LeNet's subsampling, DenseNet's transitions) with every window
# inside x: the sums written out, no bounds and no float64 accumulator, which vectorises. 1-thread, forward
# and backward against the general kernels: LeNet-5 S2 (64x6x28x28) 0.03 + 0.08 ms vs 0.83 + 0.48 ms,
# 16x64x112x112 2.0 + 5.0 ms vs 22.9 + 22.2 ms.
@njit(cache=True, fastmath=True, parallel=True)
def _avg_pool2d_forward_2x2(x, y):
    P = x.shape[0]
    OH, OW = y.shape[1:]
    for p in prange(P):
        for oh in range(OH):
            for ow in range(OW):
                y[p, oh, ow] = (x[p, 2 * oh, 2 * ow] + x[p, 2 * oh, 2 * ow + 1]
                                + x[p, 2 * oh + 1, 2 * ow] + x[p, 2 * oh + 1, 2 * ow + 1]) * 0.25


@njit(cache=True, fastmath=True, parallel=True)
def _avg_pool2d_backward_2x2(gy, gx):
    P, H, W = gx.shape
    OH, OW = gy.shape[1:]
    for p in prange(P):
        if 2 * OH < H or 2 * OW < W:           # an odd last row or column is in no window
            for h in range(H):
                for w in range(W):
                    gx[p, h, w] = 0
        for oh in range(OH):
            for ow in range(OW):
                g = gy[p, oh, ow] * 0.25
                gx[p, 2 * oh, 2 * ow] = g
                gx[p, 2 * oh, 2 * ow + 1] = g
                gx[p, 2 * oh + 1, 2 * ow] = g
                gx[p, 2 * oh + 1, 2 * ow + 1] = g


def _is_avg_pool_2x2(H, W, OH, OW, KH, KW, SH, SW, PH, PW):
    return (KH, KW, SH, SW, PH, PW) == (2, 2, 2, 2, 0, 0) and 2 * OH <= H and 2 * OW <= W


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """Numba average pooling: x (N, C, H, W) -> y (N, C, OH, OW). See reference.avg_pool2d_forward."""
    op = "avg_pool2d_forward"
    N, C, H, W = ref.check_array(op, "x", x, 4).shape
    OH, OW = ref.window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode, pool=True)
    x = np.ascontiguousarray(x)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    if _is_avg_pool_2x2(H, W, OH, OW, KH, KW, SH, SW, PH, PW):
        _avg_pool2d_forward_2x2(x.reshape(N * C, H, W), y.reshape(N * C, OH, OW))
        return y
    _avg_pool2d_forward(x.reshape(N * C, H, W), y.reshape(N * C, OH, OW), KH, KW, SH, SW, PH, PW,
                        bool(count_include_pad))
    return y


def avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """Numba average-pooling gradient: gy (N, C, OH, OW) -> gx (N, C, H, W). See reference.avg_pool2d_backward."""
    op = "avg_pool2d_backward"
    N, C, OH, OW = ref.check_array(op, "gy", gy, 4).shape
    ref.check_output_hw(op, "gy", (OH, OW), ref.window_geometry(op, H, W, KH, KW, SH, SW, PH, PW,
                                                                ceil_mode=ceil_mode, pool=True), H, W)
    gy = np.ascontiguousarray(gy)
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    if _is_avg_pool_2x2(H, W, OH, OW, KH, KW, SH, SW, PH, PW):
        _avg_pool2d_backward_2x2(gy.reshape(N * C, OH, OW), gx.reshape(N * C, H, W))
        return gx
    _avg_pool2d_backward(gy.reshape(N * C, OH, OW), gx.reshape(N * C, H, W), KH, KW, SH, SW, PH, PW,
                         bool(count_include_pad))
    return gx


@njit(cache=True, fastmath=True, parallel=True)
def _channel_mean_var(x):
    # x (N, C, L) -> float64 mean, biased var (C,); two passes, so no E[x^2] - E[x]^2 cancellation.
    N, C, L = x.shape
    mean = np.empty(C)
    var = np.empty(C)
    for c in prange(C):
        total = 0.0
        for n in range(N):
            for l in range(L):
                total += x[n, c, l]
        m = total / (N * L)
        squares = 0.0
        for n in range(N):
            for l in range(L):
                d = x[n, c, l] - m
                squares += d * d
        mean[c] = m
        var[c] = squares / (N * L)
    return mean, var


@njit(cache=True, fastmath=True, parallel=True)
def _channel_affine(x, center, scale, shift, y):
    # y[n, c] = (x[n, c] - center[c]) * scale[c] + shift[c]; subtracting the center first keeps float32 precise.
    N, C, L = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        m, a, b = center[c], scale[c], shift[c]
        for l in range(L):
            y[n, c, l] = (x[n, c, l] - m) * a + b


@njit(cache=True, fastmath=True, parallel=True)
def _channel_grad_sums(gy, x, mean):
    # -> float64 sum(gy), sum(gy * (x - mean)) per channel
    N, C, L = x.shape
    sum_gy = np.empty(C)
    sum_gy_xc = np.empty(C)
    for c in prange(C):
        m = mean[c]
        s, t = 0.0, 0.0
        for n in range(N):
            for l in range(L):
                g = gy[n, c, l]
                s += g
                t += g * (x[n, c, l] - m)
        sum_gy[c] = s
        sum_gy_xc[c] = t
    return sum_gy, sum_gy_xc


@njit(cache=True, fastmath=True, parallel=True)
def _bn_backward_apply(gy, x, mean, a, b, d, gx):
    # gx[n, c] = a[c] * gy + b[c] * (x - mean[c]) + d[c]
    N, C, L = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        m, ac, bc, dc = mean[c], a[c], b[c], d[c]
        for l in range(L):
            gx[n, c, l] = ac * gy[n, c, l] + bc * (x[n, c, l] - m) + dc


def _affine(x, center, scale, shift):
    """y[:, c] = (x[:, c] - center[c]) * scale[c] + shift[c], with the (C,) vectors cast to x's dtype."""
    N, C, H, W = x.shape
    y = np.empty_like(x)
    center, scale, shift = (_contiguous(v, x.dtype) for v in (center, scale, shift))
    _channel_affine(x.reshape(N, C, H * W), center, scale, shift, y.reshape(N, C, H * W))
    return y


def batch_norm_forward_train(x, gamma, beta, eps):
    """Numba training-mode batch norm: -> y, mean, invstd, var. See reference.batch_norm_forward_train."""
    op = "batch_norm_forward_train"
    N, C, H, W = ref.check_array(op, "x", x, 4).shape
    ref.check_per_channel(op, "gamma", gamma, C)
    ref.check_per_channel(op, "beta", beta, C)
    ref.check_eps(op, eps)
    if N * H * W == 0:
        raise ValueError(f"{op}: needs at least one value per channel, got x of shape {x.shape}")
    x = np.ascontiguousarray(x)
    mean, var = _channel_mean_var(x.reshape(N, C, H * W))
    invstd = 1.0 / np.sqrt(var + eps)
    y = _affine(x, mean, np.asarray(gamma, dtype=np.float64) * invstd, beta)
    return y, mean.astype(x.dtype), invstd.astype(x.dtype), var


def batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """Numba inference-mode batch norm: -> y. See reference.batch_norm_forward_eval."""
    op = "batch_norm_forward_eval"
    C = ref.check_array(op, "x", x, 4).shape[1]
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        ref.check_per_channel(op, name, v, C)
    ref.check_eps(op, eps)
    scale = np.asarray(gamma, dtype=np.float64) / np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)
    return _affine(np.ascontiguousarray(x), running_mean, scale, beta)


def batch_norm_backward(gy, x, gamma, mean, invstd):
    """Numba training-mode batch-norm gradients: -> gx, dgamma, dbeta. See reference.batch_norm_backward.

    With k = gamma * invstd and the formula of the reference rearranged per channel:
        gx = k * gy - k * invstd**2 * dgamma' / M * (x - mean) - k * dbeta / M,   dgamma' = sum(gy * (x - mean))
    """
    op = "batch_norm_backward"
    N, C, H, W = ref.check_array(op, "gy", gy, 4).shape
    ref.check_same_shape(op, "x", x, "gy", gy.shape)
    for name, v in (("gamma", gamma), ("mean", mean), ("invstd", invstd)):
        ref.check_per_channel(op, name, v, C)
    M = N * H * W
    if M == 0:
        raise ValueError(f"{op}: needs at least one value per channel, got gy of shape {gy.shape}")
    dt = gy.dtype
    gy, x, mean = np.ascontiguousarray(gy), _contiguous(x, dt), _contiguous(mean, dt)
    sum_gy, sum_gy_xc = _channel_grad_sums(gy.reshape(N, C, H * W), x.reshape(N, C, H * W), mean)
    invstd64 = np.asarray(invstd, dtype=np.float64)
    k = np.asarray(gamma, dtype=np.float64) * invstd64
    dbeta, dgamma = sum_gy, sum_gy_xc * invstd64
    a, b, d = (_contiguous(v, dt) for v in (k, -k * invstd64 * dgamma / M, -k * dbeta / M))
    gx = np.empty_like(gy)
    _bn_backward_apply(gy.reshape(N, C, H * W), x.reshape(N, C, H * W), mean, a, b, d, gx.reshape(N, C, H * W))
    return gx, dgamma.astype(dt), dbeta.astype(dt)


@njit(cache=True, fastmath=True, parallel=True)
def _lrn_forward(x, y, scale, size, alpha, beta, k):
    # x (N, C, L) -> y, scale; each (n, c) sums its own channel window, so the planes are independent.
    N, C, L = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for l in range(L):
            scale[n, c, l] = 0
        for cc in range(max(c - size // 2, 0), min(c + (size - 1) // 2 + 1, C)):
            for l in range(L):
                v = x[n, cc, l]
                scale[n, c, l] += v * v
        for l in range(L):
            s = k + alpha * scale[n, c, l]
            scale[n, c, l] = s
            y[n, c, l] = x[n, c, l] * s ** (-beta)


@njit(cache=True, fastmath=True, parallel=True)
def _lrn_backward(gy, x, y, scale, ratio, gx, size, beta, two_alpha_beta):
    N, C, L = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for l in range(L):
            ratio[n, c, l] = gy[n, c, l] * y[n, c, l] / scale[n, c, l]
    # Channel c enters the sums of c' in [c - (size-1)//2, c + size//2]: gather their ratios.
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for l in range(L):
            gx[n, c, l] = 0
        for cc in range(max(c - (size - 1) // 2, 0), min(c + size // 2 + 1, C)):
            for l in range(L):
                gx[n, c, l] += ratio[n, cc, l]
        for l in range(L):
            gx[n, c, l] = gy[n, c, l] * scale[n, c, l] ** (-beta) - two_alpha_beta * x[n, c, l] * gx[n, c, l]


def lrn_forward(x, size, alpha, beta, k):
    """Numba local response normalisation: -> y, scale. See reference.lrn_forward (alpha is effective)."""
    N, C, H, W = ref.check_array("lrn_forward", "x", x, 4).shape
    ref.check_lrn_size("lrn_forward", size)
    x = np.ascontiguousarray(x)
    y, scale = np.empty_like(x), np.empty_like(x)
    t = x.dtype.type   # scalars in the array's dtype keep float32 loops in float32
    _lrn_forward(x.reshape(N, C, H * W), y.reshape(N, C, H * W), scale.reshape(N, C, H * W),
                 size, t(alpha), t(beta), t(k))
    return y, scale


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    """Numba LRN gradient: -> gx. See reference.lrn_backward."""
    op = "lrn_backward"
    N, C, H, W = ref.check_array(op, "gy", gy, 4).shape
    for name, a in (("x", x), ("y", y), ("scale", scale)):
        ref.check_same_shape(op, name, a, "gy", gy.shape)
    ref.check_lrn_size(op, size)
    dt = gy.dtype
    flat = [_contiguous(a, dt).reshape(N, C, H * W) for a in (gy, x, y, scale)]
    ratio, gx = np.empty((N, C, H * W), dtype=dt), np.empty((N, C, H, W), dtype=dt)
    _lrn_backward(*flat, ratio, gx.reshape(N, C, H * W), size, dt.type(beta), dt.type(2 * alpha * beta))
    return gx
