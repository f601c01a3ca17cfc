"""Register-tiled direct convolution in float32 (stride 1, no dilation, one group), and its filter gradient.

The layers with few channels (LeNet-5's C1 and C3, ResNet-20's 16-channel stage) make im2col + GEMM a
thin product, 6 or 16 rows by 25-150 deep, that BLAS runs at 40-50 GFLOP/s on this machine after an
im2col that writes 9-25 times the input. Here nothing is copied but the zero-padded image: output pixels
are taken 24 at a time, output channels 4 at a time, and the 4 x 24 tile of sums stays in twelve AVX
registers (``kernels/cpu/simd.py``) while the kernel walks the C*KH*KW weights:

    for each (channel c, kernel offset i, j):          one step of the sum over the C*KH*KW weights
        b = the 24 input values under the tile          three 8-lane loads from the padded image
        for each of the tile's 4 output channels k:
            acc[k] += W[k, c, i, j] * b                 three fused multiply-adds

(Layers of 6 output channels take tiles of 6 x 16 instead, with no rows computed to waste.)

The image is read "wide", as in ``kernels/cpu/direct.py``: each padded plane (Hp x Wp) is flat, output
(oh, ow) sits at q = oh*Wp + ow of a flat output of OH*Wp entries, and offset (c, i, j) reads the input at
q + c*Hp*Wp + i*Wp + j: consecutive q are consecutive inputs. The KW - 1 columns past OW of
each output row are computed and dropped (the wide flat output is cropped).

The filter gradient is the same walk with the roles turned: dW[k, c, i, j] = sum over n and q of
dY[n, k, q] x[n, c, i*Wp + j + q] (dY wide, with zeros past OW), a 4 x 3 tile of (k, offset) sums in
registers, 8 q at a time. The input gradient is this forward on dY padded by KH-1-PH, KW-1-PW with the
filters flipped and their channels swapped (``kernels.conv``). Measured: benchmarks/README.md.
"""
import numpy as np
from numba import njit

from minidl.kernels.cpu.simd import at, vbroadcast, vfma, vload, vstore, vsum, vzero
from minidl.kernels.threads import parallel_for, parallel_map, sum_parts

# Convolutions of fewer multiply-adds run on the calling thread: the work is not in the arrays' sizes
# (which threads.parallel_for would go by) but in C*KH*KW multiply-adds an output; a launch costs ~0.1 ms.
MIN_PARALLEL_MACS = 2 ** 21


def offsets(C, KH, KW, plane, Wp):
    """off[(c*KH + i)*KW + j] = c*plane + i*Wp + j: where weight (c, i, j) reads a flat wide image."""
    c, i, j = np.meshgrid(np.arange(C), np.arange(KH), np.arange(KW), indexing="ij")
    return np.ascontiguousarray((c * plane + i * Wp + j).reshape(-1), dtype=np.int64)


def wide_length(C, plane, KW, Q, step):
    """Elements of a flat wide image: C planes, then zeros for the last tile's reads past the last plane
    (it reads KW - 1 entries past a plane's end, and up to step - 1 past the last output)."""
    return C * plane + KW - 1 + (-Q) % step


@njit(cache=True, inline="always")
def _store3(out, i, v0, v1, v2):
    """out[i:i+24] = the three 8-lane vectors of one output channel's row of a tile."""
    vstore(out, i, v0)
    vstore(out, i + 8, v1)
    vstore(out, i + 16, v2)


@njit(cache=True, inline="always")
def _tile_4x24(xf, Wf, off, KK, w0, w1, w2, w3, q0):
    """The sums of a tile of 4 output channels (weight rows at w0..w3 of Wf) x 24 wide outputs from q0."""
    c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = vzero()
    for k in range(KK):
        o = at(off, k) + q0
        b0 = vload(xf, o)
        b1 = vload(xf, o + 8)
        b2 = vload(xf, o + 16)
        a = vbroadcast(Wf, w0 + k)
        c00, c01, c02 = vfma(a, b0, c00), vfma(a, b1, c01), vfma(a, b2, c02)
        a = vbroadcast(Wf, w1 + k)
        c10, c11, c12 = vfma(a, b0, c10), vfma(a, b1, c11), vfma(a, b2, c12)
        a = vbroadcast(Wf, w2 + k)
        c20, c21, c22 = vfma(a, b0, c20), vfma(a, b1, c21), vfma(a, b2, c22)
        a = vbroadcast(Wf, w3 + k)
        c30, c31, c32 = vfma(a, b0, c30), vfma(a, b1, c31), vfma(a, b2, c32)
    return c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32


@njit(cache=True, inline="always")
def _tile_6x16(xf, Wf, off, KK, w0, w1, w2, w3, w4, w5, q0):
    """The sums of a tile of 6 output channels x 16 wide outputs (layers of 6 channels: LeNet-5's C1 forward
    and C3's input gradient, where 4-channel tiles would compute 8 rows for 6)."""
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = vzero()
    for k in range(KK):
        o = at(off, k) + q0
        b0 = vload(xf, o)
        b1 = vload(xf, o + 8)
        a = vbroadcast(Wf, w0 + k)
        c00, c01 = vfma(a, b0, c00), vfma(a, b1, c01)
        a = vbroadcast(Wf, w1 + k)
        c10, c11 = vfma(a, b0, c10), vfma(a, b1, c11)
        a = vbroadcast(Wf, w2 + k)
        c20, c21 = vfma(a, b0, c20), vfma(a, b1, c21)
        a = vbroadcast(Wf, w3 + k)
        c30, c31 = vfma(a, b0, c30), vfma(a, b1, c31)
        a = vbroadcast(Wf, w4 + k)
        c40, c41 = vfma(a, b0, c40), vfma(a, b1, c41)
        a = vbroadcast(Wf, w5 + k)
        c50, c51 = vfma(a, b0, c50), vfma(a, b1, c51)
    return c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51


@njit(cache=True, nogil=True)
def _copy_into_wide(x, n, xf, PH, PW, Wp, plane):
    # x[n] (C, H, W) into the flat wide image xf, at row h + PH, column w + PW of each plane; the rest of xf
    # is left as it is (zeros, written once).
    C, H, W = x.shape[1:]
    for c in range(C):
        for h in range(H):
            base = c * plane + (h + PH) * Wp + PW
            for w in range(W):
                xf[base + w] = x[n, c, h, w]


@njit(cache=True, fastmath=True, nogil=True)
def _tiled_conv2d(lo, hi, x, Wm, off, PH, PW, Wp, plane, length, rows, y):
    # x (N, C, H, W) -> y (N, K, OH, OW), one image an iteration; Wm (K, C*KH*KW) contiguous. Tiles of
    # ``rows`` output channels: 4 (x 24 outputs) or 6 (x 16).
    K, KK = Wm.shape
    OH, OW = y.shape[2:]
    step = 24 if rows == 4 else 16
    Q = OH * Wp
    Qs = -(-Q // step) * step
    xf = np.zeros(length, dtype=np.float32)      # the padded image: borders stay zero from image to image
    yw = np.empty(K * Qs, dtype=np.float32)      # the wide output, K rows of Qs
    Wf = Wm.ravel()
    for n in range(lo, hi):  # this thread's part of range(N)
        _copy_into_wide(x, n, xf, PH, PW, Wp, plane)
        for m0 in range(0, K, rows):
            r = min(rows, K - m0)
            # the tile's weight rows; past the last channel they repeat it (computed, not stored)
            w0 = m0 * KK
            w1 = w0 + KK * min(1, r - 1)
            w2 = w0 + KK * min(2, r - 1)
            w3 = w0 + KK * min(3, r - 1)
            w4 = w0 + KK * min(4, r - 1)
            w5 = w0 + KK * min(5, r - 1)
            for q0 in range(0, Qs, step):
                o = m0 * Qs + q0
                if rows == 4:
                    c = _tile_4x24(xf, Wf, off, KK, w0, w1, w2, w3, q0)
                    for i in range(r):
                        _store3(yw, o + i * Qs, c[3 * i], c[3 * i + 1], c[3 * i + 2])
                else:
                    c = _tile_6x16(xf, Wf, off, KK, w0, w1, w2, w3, w4, w5, q0)
                    for i in range(r):
                        vstore(yw, o + i * Qs, c[2 * i])
                        vstore(yw, o + i * Qs + 8, c[2 * i + 1])
        for k in range(K):          # crop: element loops (a slice assignment compiles Numba's error strings)
            for oh in range(OH):
                for ow in range(OW):
                    y[n, k, oh, ow] = yw[k * Qs + oh * Wp + ow]


@njit(cache=True, fastmath=True, nogil=True)
def _tiled_conv2d_grad_weight(lo, hi, x, gy, off, PH, PW, Wp, plane, length, KK):
    # The sums of gW (K, KK) over images lo:hi, in float64: one image at a time, x[n] and gy[n] copied into
    # wide planes (gy's with zeros past OW, each row of Q8 = OH*Wp rounded up to 8), then every 4 x 3 tile
    # of (k, weight) sums read from them, the image's sums in float32 lanes.
    K, OH = gy.shape[1], gy.shape[2]
    Q8 = -(-(OH * Wp) // 8) * 8
    J = -(-KK // 3)
    xf = np.zeros(length, dtype=np.float32)
    gf = np.zeros(K * Q8, dtype=np.float32)
    s = np.zeros((-(-K // 4) * J, 4, 3), dtype=np.float64)
    for n in range(lo, hi):  # this thread's part of range(N)
        _copy_into_wide(x, n, xf, PH, PW, Wp, plane)
        _copy_into_wide(gy, n, gf, 0, 0, Wp, Q8)
        for t in range(s.shape[0]):
            k0, j0 = (t // J) * 4, (t % J) * 3
            ks = min(4, K - k0)
            js = min(3, KK - j0)
            g0 = k0 * Q8
            g1 = g0 + Q8 * min(1, ks - 1)
            g2 = g0 + Q8 * min(2, ks - 1)
            g3 = g0 + Q8 * min(3, ks - 1)
            o0 = at(off, j0)
            o1 = at(off, j0 + min(1, js - 1))
            o2 = at(off, j0 + min(2, js - 1))
            c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = vzero()
            for q in range(0, Q8, 8):
                b0 = vload(xf, o0 + q)
                b1 = vload(xf, o1 + q)
                b2 = vload(xf, o2 + q)
                a = vload(gf, g0 + q)
                c00, c01, c02 = vfma(a, b0, c00), vfma(a, b1, c01), vfma(a, b2, c02)
                a = vload(gf, g1 + q)
                c10, c11, c12 = vfma(a, b0, c10), vfma(a, b1, c11), vfma(a, b2, c12)
                a = vload(gf, g2 + q)
                c20, c21, c22 = vfma(a, b0, c20), vfma(a, b1, c21), vfma(a, b2, c22)
                a = vload(gf, g3 + q)
                c30, c31, c32 = vfma(a, b0, c30), vfma(a, b1, c31), vfma(a, b2, c32)
            c = (c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32)
            for i in range(12):
                s[t, i // 3, i % 3] += vsum(c[i])
    gW = np.empty((K, KK), dtype=np.float64)
    for t in range(s.shape[0]):
        k0, j0 = (t // J) * 4, (t % J) * 3
        for a in range(min(4, K - k0)):
            for b in range(min(3, KK - j0)):
                gW[k0 + a, j0 + b] = s[t, a, b]
    return gW


def tiled_conv2d(x, W, PH, PW):
    """float32 direct convolution, stride 1: x (N, C, H, W), W (K, C, KH, KW) -> y (N, K, OH, OW)."""
    N, C, H, W_in = x.shape
    K, _, KH, KW = W.shape
    Hp, Wp = H + 2 * PH, W_in + 2 * PW
    OH, OW = Hp - KH + 1, Wp - KW + 1
    y = np.empty((N, K, OH, OW), dtype=np.float32)
    # Tiles of 4 channels x 24 outputs (twelve accumulators, three loads and a broadcast: all 16 registers),
    # or of 6 x 16 where fewer rows go to waste (6 channels: 8 rows of 4-channel tiles for 6)
    rows = 6 if -(-K // 6) * 6 < -(-K // 4) * 4 else 4
    length = wide_length(C, Hp * Wp, KW, OH * Wp, 24 if rows == 4 else 16)
    parallel_for(_tiled_conv2d, N, x, np.ascontiguousarray(W, dtype=np.float32).reshape(K, C * KH * KW),
                 offsets(C, KH, KW, Hp * Wp, Wp), PH, PW, Wp, Hp * Wp, length, rows, y,
                 min_work=0 if y.size * C * KH * KW >= MIN_PARALLEL_MACS else np.inf)
    return y


def tiled_conv2d_grad_weight(x, gy, KH, KW, PH, PW):
    """float32 filter gradient of tiled_conv2d: x (N, C, H, W), gy (N, K, OH, OW) -> gW (K, C, KH, KW). The
    images are cut into parts, one set of float64 sums a part, added in the parts' order (an empty batch is
    one part, of zero sums)."""
    N, C, H, W_in = x.shape
    K, OH = gy.shape[1:3]
    Hp, Wp = H + 2 * PH, W_in + 2 * PW
    KK = C * KH * KW
    length = wide_length(C, Hp * Wp, KW, OH * Wp, 8)
    off = offsets(C, KH, KW, Hp * Wp, Wp)
    if gy.size * KK >= MIN_PARALLEL_MACS:
        parts = parallel_map(lambda lo, hi: _tiled_conv2d_grad_weight(lo, hi, x, gy, off, PH, PW, Wp, Hp * Wp,
                                                                      length, KK), N, partial_elements=K * KK)
        gW = sum_parts(parts)
    else:
        gW = _tiled_conv2d_grad_weight(0, N, x, gy, off, PH, PW, Wp, Hp * Wp, length, KK)
    return gW.astype(np.float32).reshape(K, C, KH, KW)


def tiled_conv2d_grad_input(gy, W, H, Wd, PH, PW):
    """float32 input gradient of tiled_conv2d, for PH < KH and PW < KW: dY padded by KH-1-PH, KW-1-PW,
    convolved with the filters flipped and their channels swapped -> gx (N, C, H, Wd)."""
    KH, KW = W.shape[2:]
    flipped = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return tiled_conv2d(gy, flipped, KH - 1 - PH, KW - 1 - PW)
