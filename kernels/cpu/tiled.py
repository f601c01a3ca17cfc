"""Register-tiled direct convolution in float32 (any stride, no dilation, one group), and its filter gradient.

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
each output row are computed and dropped (the wide flat output is cropped). Where many kernel rows read
only zero padding rows (a stride-1 layer's input gradient on small maps: dY padded by KH - 1 - PH), a
tile skips them (SKIP_PADDING_SHARE).

With a stride the padded plane is first split into SH*SW phase planes of Hh x Wh (Hh = ceil(Hp / SH)):
padded pixel (h, w) goes to phase (h % SH, w % SW), row h // SH, column w // SW. Output (oh, ow) reads
padded pixel (oh*SH + i, ow*SW + j), which is row oh + i // SH, column ow + j // SW of phase (i % SH,
j % SW): the same walk over the phase planes, with q = oh*Wh + ow and the offsets of ``offsets``. Every
multiply-add is one the convolution needs (a space-to-depth rewrite into a stride-1 convolution would pad
a 3x3 stride-2 kernel to 2x2 on 4C channels, 16 taps for 9).

The filter gradient is the same walk with the roles turned: dW[k, c, i, j] = sum over n and q of
dY[n, k, q] x[n, c, off(c, i, j) + q] (dY wide, with zeros past OW), a 4 x 3 tile of (k, offset) sums in
registers, 8 q at a time, over a group of images (``images_per_group``). The input gradient (stride 1) is
this forward on dY padded by KH-1-PH, KW-1-PW with the filters flipped and their channels swapped
(``kernels.conv``; with a stride it is im2col's). Measured: benchmarks/README.md.
"""
import functools

import numpy as np
from numba import njit

from minidl.kernels.cpu.simd import at, put, vbroadcast, vfma, vload, vstore, vsum, vzero
from minidl.kernels.threads import parallel_for, parallel_map, sum_parts

# Convolutions of fewer multiply-adds run on the calling thread: the work is not in the arrays' sizes
# (which threads.parallel_for would go by) but in C*KH*KW multiply-adds an output; a launch costs ~0.1 ms.
MIN_PARALLEL_MACS = 2 ** 21
_NO_BIAS = np.zeros(0, dtype=np.float32)   # tiled_conv2d's bias argument when it adds none
# The forward skips the kernel rows that read only zero padding rows (tile by tile) where they are at least
# this share of its multiply-adds (padding_share), walking the weights a channel at a time: LeNet-5's C3
# input gradient (10 rows padded by 4: 29%) took 1.44 -> 1.02 ms. Below it the walk a channel at a time
# costs more than the rows it skips: with it, ResNet-20's 32-channel layers at 8 x 8 (8%) were no faster,
# at 16 x 16 (4%) 10% slower, the 16-channel ones at 32 x 32 (2%) 5% slower (alternating, one thread).
SKIP_PADDING_SHARE = 0.15
# The filter gradient's float32 lanes sum about this many terms each before they are added into float64: a
# group of images at a time where the planes are small (see _tiled_conv2d_grad_weight).
LANE_TERMS = 128


def padding_share(H, KH, SH, PH, OH):
    """The share of a convolution's multiply-adds whose kernel row reads a zero padding row: output row r
    and kernel row i read padded row r*SH + i, data for PH <= r*SH + i < PH + H."""
    if OH <= 0 or KH <= 0:
        return 0.0
    rows = np.arange(OH)[:, None] * SH + np.arange(KH)[None, :]
    return float(((rows < PH) | (rows >= PH + H)).mean())


def planes(H, W, KH, KW, SH, SW, PH, PW):
    """(OH, OW, Hh, Wh): the output's size and that of each of the SH*SW phase planes of a padded channel."""
    Hp, Wp = H + 2 * PH, W + 2 * PW
    return (Hp - KH) // SH + 1, (Wp - KW) // SW + 1, -(-Hp // SH), -(-Wp // SW)


def offsets(C, KH, KW, plane, Wh, SH=1, SW=1):
    """off[(c*KH + i)*KW + j]: where weight (c, i, j) reads a flat wide image, at c's phase plane
    (i % SH, j % SW), row i // SH, column j // SW (with stride 1: c*plane + i*Wh + j)."""
    c, i, j = np.meshgrid(np.arange(C), np.arange(KH), np.arange(KW), indexing="ij")
    off = (c * SH * SW + i % SH * SW + j % SW) * plane + i // SH * Wh + j // SW
    return np.ascontiguousarray(off.reshape(-1), dtype=np.int64)


def wide_length(off, Q, step, planes):
    """Elements of a flat wide image: its ``planes`` planes (all phases, read or not: the copy writes them),
    and every read of the last tile (up to Q rounded up to ``step`` past the largest offset), in zeros past
    the last plane."""
    return max(planes, (int(off.max()) if off.size else 0) + -(-Q // step) * step)


@functools.lru_cache(maxsize=256)
def layout(C, H, W, KH, KW, SH, SW, PH, PW, step):
    """(OH, OW, Hh, Wh, off, length, skip) of a layer (planes, offsets, wide_length, and whether the forward
    skips padding rows: SKIP_PADDING_SHARE), kept for the next call with the same arguments: building them
    took ~0.1 ms, a tenth of a small layer. ``off`` is shared, so never written to (not flagged read-only:
    Numba would compile the kernels again for read-only arrays)."""
    OH, OW, Hh, Wh = planes(H, W, KH, KW, SH, SW, PH, PW)
    off = offsets(C, KH, KW, Hh * Wh, Wh, SH, SW)
    return (OH, OW, Hh, Wh, off, wide_length(off, OH * Wh, step, C * SH * SW * Hh * Wh),
            padding_share(H, KH, SH, PH, OH) >= SKIP_PADDING_SHARE)


@njit(cache=True, inline="always")
def _store3(out, i, v0, v1, v2):
    """out[i:i+24] = the three 8-lane vectors of one output channel's row of a tile."""
    vstore(out, i, v0)
    vstore(out, i + 8, v1)
    vstore(out, i + 16, v2)


@njit(cache=True, inline="always")
def _tile_4x24(xf, Wf, off, KK, per_c, k0, k1, w0, w1, w2, w3, q0):
    """The sums of a tile of 4 output channels (weight rows at w0..w3 of Wf) x 24 wide outputs from q0, over
    the weights k0:k1 of each block of per_c: per_c = KK (0:KK, one loop over all weights) or a channel's
    KH*KW (the kernel rows of a channel that read data)."""
    c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = vzero()
    for c in range(0, KK, per_c):
        for k in range(c + k0, c + k1):
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
def _tile_6x16(xf, Wf, off, KK, per_c, k0, k1, w0, w1, w2, w3, w4, w5, q0):
    """The sums of a tile of 6 output channels x 16 wide outputs (layers of 6 channels: LeNet-5's C1 forward
    and C3's input gradient, where 4-channel tiles would compute 8 rows for 6), over the same weights."""
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = vzero()
    for c in range(0, KK, per_c):
        for k in range(c + k0, c + k1):
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


@njit(cache=True)
def _copy_rows(src, s0, s_stride, dst, d0, d_stride, rows, width):
    """dst[d0 + r*d_stride:][:width] = src[s0 + r*s_stride:][:width] for r < rows, eight lanes at a time (1-D
    float32 arrays; an element loop with Numba's index wraparound took a third of a 16-channel layer). Not
    inlined by Numba: its four inlined copies made the kernels compile 1.5-2x slower, and ran no faster."""
    for r in range(rows):
        s, d = s0 + r * s_stride, d0 + r * d_stride
        w = 0
        while w + 8 <= width:
            vstore(dst, d + w, vload(src, s + w))
            w += 8
        while w < width:
            put(dst, d + w, at(src, s + w))
            w += 1


@njit(cache=True)
def _copy_rows_plus(src, s0, s_stride, dst, d0, d_stride, rows, width, bias, k, one):
    """_copy_rows with ``bias[k]`` added to every element (a convolution's bias, as it stores the output):
    ``one`` (a float32 array [1]) * v + bias[k] by a fused multiply-add, rounded once, as v + bias[k]."""
    ones, b, plus = vbroadcast(one, 0), vbroadcast(bias, k), at(bias, k)
    for r in range(rows):
        s, d = s0 + r * s_stride, d0 + r * d_stride
        w = 0
        while w + 8 <= width:
            vstore(dst, d + w, vfma(ones, vload(src, s + w), b))
            w += 8
        while w < width:
            put(dst, d + w, at(src, s + w) + plus)
            w += 1


@njit(cache=True, inline="always")
def _copy_into_wide(xs, n, C, H, W, xf, base, PH, PW, SH, SW, Wh, plane):
    # image n of xs (N, C, H, W, flat) into the flat wide image at xf[base:]: padded pixel (h + PH, w + PW)
    # of channel c at its phase plane (c, (h + PH) % SH, (w + PW) % SW), row (h + PH) // SH, column
    # (w + PW) // SW. The rest of xf is left as it is (zeros, written once).
    if SH == 1 and SW == 1:
        for c in range(C):
            _copy_rows(xs, ((n * C + c) * H) * W, W, xf, base + c * plane + PH * Wh + PW, Wh, H, W)
        return
    for c in range(C):
        for h in range(H):
            src = ((n * C + c) * H + h) * W
            hp = h + PH
            row = base + (c * SH * SW + hp % SH * SW) * plane + hp // SH * Wh
            for q in range(SW):                 # the columns of phase q: every SW-th, from w0
                w0 = (q - PW) % SW
                d = row + q * plane + (w0 + PW) // SW
                for w in range(w0, W, SW):
                    put(xf, d, at(xs, src + w))
                    d += 1


@njit(cache=True, fastmath=True, nogil=True)
def _tiled_conv2d(lo, hi, xs, C, H, W, Wm, off, KH, skip, PH, PW, SH, SW, Wp, plane, length, rows, ys, OH, OW,
                  bias, plus_bias):
    # xs (N, C, H, W) -> ys (N, K, OH, OW), both flat and contiguous, one image an iteration; Wm (K, C*KH*KW)
    # contiguous; phase planes of Wp columns (wide rows), ``plane`` elements. Tiles of ``rows`` output
    # channels: 4 (x 24 outputs) or 6 (x 16). ``skip``: skip the kernel rows that read only padding rows.
    # ``plus_bias``: bias[k] added to channel k as it is stored (the layer's bias add, without a pass of its own).
    K, KK = Wm.shape
    per_c = KK // max(C, 1)          # a channel's KH*KW weights
    KW = per_c // KH
    step = 24 if rows == 4 else 16
    Q = OH * Wp
    Qs = -(-Q // step) * step
    xf = np.zeros(length, dtype=np.float32)      # the padded image: borders stay zero from image to image
    yw = np.empty(K * Qs, dtype=np.float32)      # the wide output, K rows of Qs
    one = np.ones(1, dtype=np.float32)            # for the bias store's 1 * v + b
    Wf = Wm.ravel()
    for n in range(lo, hi):  # this thread's part of range(N)
        _copy_into_wide(xs, n, C, H, W, xf, 0, PH, PW, SH, SW, Wp, plane)
        for m0 in range(0, K, rows):
            r = min(rows, K - m0)
            # the tile's weight rows; past the last channel they repeat it (computed, not stored)
            w0 = m0 * KK
            w1 = w0 + KK * min(1, r - 1)
            w2 = w0 + KK * min(2, r - 1)
            w3 = w0 + KK * min(3, r - 1)
            w4 = w0 + KK * min(4, r - 1)
            w5 = w0 + KK * min(5, r - 1)
            r0, s0 = 0, 0           # the tile's first output row, and where in it the tile starts
            for q0 in range(0, Qs, step):
                o = m0 * Qs + q0
                # The kernel rows that read only zero padding rows for every output row r0..r1 of the tile
                # are skipped: kernel row i reads padded row r*SH + i, data only for PH <= r*SH + i < PH + H.
                # The rows are counted on, not divided out.
                block, k0, k1 = max(KK, 1), 0, KK     # all the weights in one loop (a loop a channel was slower)
                if skip:
                    block = max(per_c, 1)
                    r1, e = r0, s0 + step - 1
                    while e >= Wp:
                        e -= Wp
                        r1 += 1
                    k0 = max(0, PH - r1 * SH) * KW
                    k1 = max(k0, min(KH, PH + H - r0 * SH) * KW)
                if rows == 4:
                    c = _tile_4x24(xf, Wf, off, KK, block, k0, k1, w0, w1, w2, w3, q0)
                    for i in range(r):
                        _store3(yw, o + i * Qs, c[3 * i], c[3 * i + 1], c[3 * i + 2])
                else:
                    c = _tile_6x16(xf, Wf, off, KK, block, k0, k1, w0, w1, w2, w3, w4, w5, q0)
                    for i in range(r):
                        vstore(yw, o + i * Qs, c[2 * i])
                        vstore(yw, o + i * Qs + 8, c[2 * i + 1])
                s0 += step
                while s0 >= Wp:
                    s0 -= Wp
                    r0 += 1
        for k in range(K):          # crop: the OW first of each row of Wp
            if plus_bias:
                _copy_rows_plus(yw, k * Qs, Wp, ys, (n * K + k) * OH * OW, OW, OH, OW, bias, k, one)
            else:
                _copy_rows(yw, k * Qs, Wp, ys, (n * K + k) * OH * OW, OW, OH, OW)


@njit(cache=True, fastmath=True, nogil=True)
def _tiled_conv2d_grad_weight(lo, hi, G, xs, C, H, W, gs, K, OH, OW, off, PH, PW, SH, SW, Wp, plane, length, KK):
    # The sums of gW (K, KK) over images lo:hi, in float64: a group of G images at a time, each x[n] and
    # gy[n] copied into wide planes (gy's with zeros past OW, each row of Q8 = OH*Wp rounded up to 8), then
    # every 4 x 3 tile of (k, weight) sums read from them, the group's sums in float32 lanes (see
    # images_per_group).
    Q8 = -(-(OH * Wp) // 8) * 8
    J = -(-KK // 3)
    xf = np.zeros(G * length, dtype=np.float32)
    gf = np.zeros(G * K * Q8, dtype=np.float32)
    s = np.zeros((-(-K // 4) * J, 4, 3), dtype=np.float64)
    for n0 in range(lo, hi, G):  # this thread's part of range(N), G images at a time
        group = min(G, hi - n0)
        for g in range(group):
            _copy_into_wide(xs, n0 + g, C, H, W, xf, g * length, PH, PW, SH, SW, Wp, plane)
            _copy_into_wide(gs, n0 + g, K, OH, OW, gf, g * K * Q8, 0, 0, 1, 1, Wp, Q8)
        for t in range(s.shape[0]):
            k0, j0 = (t // J) * 4, (t % J) * 3
            ks = min(4, K - k0)
            js = min(3, KK - j0)
            c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = vzero()
            for g in range(group):
                g0 = g * K * Q8 + k0 * Q8
                g1 = g0 + Q8 * min(1, ks - 1)
                g2 = g0 + Q8 * min(2, ks - 1)
                g3 = g0 + Q8 * min(3, ks - 1)
                o0 = g * length + at(off, j0)
                o1 = g * length + at(off, j0 + min(1, js - 1))
                o2 = g * length + at(off, j0 + min(2, js - 1))
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


def images_per_group(Q):
    """How many images the filter gradient sums in float32 lanes before adding into float64: each lane then
    sums about LANE_TERMS terms (one image of Q wide outputs, Q / 8 a lane, at least). Small planes take
    several: LeNet-5's C3 (Q = 140) 7, ResNet-20's 32-channel layers (288) 3, its 16-channel ones 1; the
    twelve sums' reduction after C3's 18 steps of one image had taken as long as the steps."""
    return max(1, LANE_TERMS // max(1, -(-Q // 8)))


def _flat(a):
    """A float32 array's elements, C order, as a 1-D array (a view where it is contiguous)."""
    return np.ascontiguousarray(a, dtype=np.float32).reshape(-1)


def tiled_conv2d(x, W, PH, PW, SH=1, SW=1, b=None):
    """float32 direct convolution: x (N, C, H, W), W (K, C, KH, KW), b (K,) or None -> y (N, K, OH, OW),
    stride SH, SW. A float32 bias is added as each output row is stored (a LeNet-5 step's C1 and C3 bias adds
    had taken 200 and 90 us at two threads, a pass over the output each); another dtype's after."""
    N, C, H, W_in = x.shape
    K, _, KH, KW = W.shape
    # Tiles of 4 channels x 24 outputs (twelve accumulators, three loads and a broadcast: all 16 registers),
    # or of 6 x 16 where fewer rows go to waste (6 channels: 8 rows of 4-channel tiles for 6)
    rows = 6 if -(-K // 6) * 6 < -(-K // 4) * 4 else 4
    OH, OW, Hh, Wh, off, length, skip = layout(C, H, W_in, KH, KW, SH, SW, PH, PW, 24 if rows == 4 else 16)
    # An inf or NaN weight times a padding zero is NaN, as in PyTorch: then no row is skipped
    skip = skip and bool(np.isfinite(W).all())
    y = np.empty((N, K, OH, OW), dtype=np.float32)
    plus_bias = b is not None and b.dtype == np.float32
    if plus_bias:
        b = np.ascontiguousarray(b)
    parallel_for(_tiled_conv2d, N, _flat(x), C, H, W_in,
                 np.ascontiguousarray(W, dtype=np.float32).reshape(K, C * KH * KW), off, KH, skip, PH, PW, SH, SW, Wh,
                 Hh * Wh, length, rows, y.reshape(-1), OH, OW, b if plus_bias else _NO_BIAS, plus_bias,
                 min_work=0 if y.size * C * KH * KW >= MIN_PARALLEL_MACS else np.inf)
    if b is not None and not plus_bias:
        y += b.reshape(1, -1, 1, 1)
    return y


def tiled_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    """float32 filter gradient of tiled_conv2d: x (N, C, H, W), gy (N, K, OH, OW) -> gW (K, C, KH, KW). The
    batch is cut into groups of images (images_per_group), the groups into parts, one set of float64 sums a
    part, added in the parts' order (an empty batch is one part, of zero sums)."""
    part, groups, partial_elements, finish = grad_weight_parts(x, gy, KH, KW, PH, PW, SH, SW)
    if gy.size * x.shape[1] * KH * KW >= MIN_PARALLEL_MACS:
        return finish(sum_parts(parallel_map(part, groups, partial_elements=partial_elements)))
    return finish(part(0, groups))


def grad_weight_parts(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    """tiled_conv2d_grad_weight in pieces, for a caller that runs its parts itself (threads.beside_map):
    ``(part, groups, partial_elements, finish)``, where ``part(lo, hi)`` is the float64 sums of groups lo:hi
    (each of images_per_group images; the groups do not depend on the thread count, nor do their sums),
    ``partial_elements`` the size of those sums, and ``finish(sums)`` gW from the parts' sums added in order."""
    N, C, H, W_in = x.shape
    K = gy.shape[1]
    OH, OW, Hh, Wh, off, length, _ = layout(C, H, W_in, KH, KW, SH, SW, PH, PW, 8)
    KK = C * KH * KW
    xs, gs = _flat(x), _flat(gy)
    G = images_per_group(OH * Wh)

    def part(lo, hi):
        return _tiled_conv2d_grad_weight(lo * G, min(hi * G, N), G, xs, C, H, W_in, gs, K, OH, OW, off, PH, PW,
                                         SH, SW, Wh, Hh * Wh, length, KK)

    def finish(sums):
        return sums.astype(np.float32).reshape(K, C, KH, KW)
    return part, max(1, -(-N // G)), K * KK, finish     # an empty batch: one group, of zero sums


def tiled_conv2d_grad_input(gy, W, H, Wd, PH, PW):
    """float32 input gradient of tiled_conv2d (stride 1), for PH < KH and PW < KW: dY padded by KH-1-PH,
    KW-1-PW, convolved with the filters flipped and their channels swapped -> gx (N, C, H, Wd)."""
    KH, KW = W.shape[2:]
    flipped = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return tiled_conv2d(gy, flipped, KH - 1 - PH, KW - 1 - PW)
