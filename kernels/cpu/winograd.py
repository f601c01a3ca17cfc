"""Numba kernels of Winograd's F(4x4, 3x3) (minidl.kernels.winograd): the channels-last copies and the tile
transforms. Formulas: ``minidl.kernels.reference``."""
import numpy as np
from numba import njit

from minidl.kernels import reference as ref
from minidl.kernels.threads import parallel_for


def pad_nhwc(x, PT, PL, Hp, Wp):
    """x (N, C, H, W) -> channels-last, zero-padded (N, Hp, Wp, C). See reference.pad_nhwc.

    Zero-padded first (channels first), then one NumPy transposing copy: faster than Numba loops in any of
    four orders (the source's channel rows, 4 KB apart, defeated the prefetcher in the loop that read them
    together; benchmarks/README.md).
    """
    N, C, H, W = x.shape
    xpad = np.zeros((N, C, Hp, Wp), dtype=x.dtype)
    xpad[:, :, PT:PT + H, PL:PL + W] = x
    out = np.empty((N, Hp, Wp, C), dtype=x.dtype)
    np.copyto(out, xpad.transpose(0, 2, 3, 1))
    return out


@njit(cache=True, fastmath=True, nogil=True)
def _crop_nchw(lo, hi, x, PT, PL, y):
    N, K, H, W = y.shape
    for q in range(lo, hi):  # this thread's chunk of range(N * H)
        n, h = q // H, q % H
        for k in range(K):
            for w in range(W):
                y[n, k, h, w] = x[n, PT + h, PL + w, k]


def crop_nchw(x, PT, PL, H, W, out=None):
    """x (N, Hp, Wp, C) -> (N, C, H, W), the window at (PT, PL). See reference.crop_nchw. A Numba loop:
    faster than NumPy's transposing copy on ResNet-18's layers."""
    out = np.empty((x.shape[0], x.shape[3], H, W), dtype=x.dtype) if out is None else out
    parallel_for(_crop_nchw, out.shape[0] * H, np.ascontiguousarray(x), PT, PL, out)
    return out


# Winograd F(4x4, 3x3)'s four transforms with the matrices written out (reference.WINOGRAD_BT, _AT): the
# general loops below multiply by every entry of L, zeros skipped, and accumulate in memory; these compute
# each output row once from values in registers (2.4-3x faster). Each 2-D transform L d L^T applies the
# 1-D one below to the columns of a tile, then to the rows of the result.
_BT, _AT = np.array(ref.WINOGRAD_BT), np.array(ref.WINOGRAD_AT)


@njit(cache=True, inline="always")
def _bt_1d(d0, d1, d2, d3, d4, d5, consts):
    # BT @ (d0, ..., d5)
    two, four, five, _ = consts
    return (four * d0 - five * d2 + d4, d3 + d4 - four * (d1 + d2), d4 - d3 + four * (d1 - d2),
            d4 - d2 + two * (d3 - d1), d4 - d2 - two * (d3 - d1), four * d1 - five * d3 + d5)


@njit(cache=True, inline="always")
def _a_1d(g0, g1, g2, g3, consts):
    # A @ (g0, ..., g3), A = AT^T (6 x 4)
    two, four, _, eight = consts
    return (g0, (g0 + g2) + (g1 + g3), (g0 + g2) - (g1 + g3),
            (g0 + four * g2) + (two * g1 + eight * g3), (g0 + four * g2) - (two * g1 + eight * g3), g3)


@njit(cache=True, inline="always")
def _at_1d(m0, m1, m2, m3, m4, m5, consts):
    # AT @ (m0, ..., m5)
    two, four, _, eight = consts
    return (m0 + (m1 + m2) + (m3 + m4), (m1 - m2) + two * (m3 - m4),
            (m1 + m2) + four * (m3 + m4), (m1 - m2) + eight * (m3 - m4) + m5)


@njit(cache=True, inline="always")
def _b_1d(m0, m1, m2, m3, m4, m5, consts):
    # B @ (m0, ..., m5), B = BT^T
    two, four, five, _ = consts
    return (four * m0, four * (m2 - m1) + two * (m4 - m3) + four * m5, -(five * m0) - four * (m1 + m2) - (m3 + m4),
            (m1 - m2) + two * (m3 - m4) - five * m5, m0 + (m1 + m2) + (m3 + m4), m5)


def _constants(dtype):
    """(2, 4, 5, 8), the entries of BT and AT, as scalars of the data's dtype, for the kernels below: Numba
    types an int literal times a float32 as float64, so ``4 * d0`` had run every transform in float64
    (converted both ways, at half the vector width: ResNet-20's training step 5-8% slower;
    benchmarks/README.md, tests/kernels/test_float32_kernels.py)."""
    return tuple(np.dtype(dtype).type(v) for v in (2, 4, 5, 8))


def _is_matrix(L, known):
    return L.shape == known.shape and np.array_equal(L, known)


@njit(cache=True, fastmath=True, nogil=True)
def _winograd_tiles_bt(lo, hi, x, TH, TW, V, consts):
    # V[a*6 + b, t] = (BT d BT^T)[a, b] for the 6x6 tile d at (4 th, 4 tw): rows first (tmp = BT d), then columns.
    N, Hp, Wp, C = x.shape
    for q in range(lo, hi):  # this thread's chunk of range(N * TH)
        n, th = q // TH, q % TH
        tmp = np.empty((6, 6, C), x.dtype)
        h0 = 4 * th
        for tw in range(TW):
            t, w0 = q * TW + tw, 4 * tw
            for j in range(6):
                for c in range(C):
                    (tmp[0, j, c], tmp[1, j, c], tmp[2, j, c], tmp[3, j, c], tmp[4, j, c],
                     tmp[5, j, c]) = _bt_1d(x[n, h0, w0 + j, c], x[n, h0 + 1, w0 + j, c], x[n, h0 + 2, w0 + j, c],
                                            x[n, h0 + 3, w0 + j, c], x[n, h0 + 4, w0 + j, c], x[n, h0 + 5, w0 + j, c],
                                            consts)
            for a in range(6):
                for c in range(C):
                    (V[6 * a, t, c], V[6 * a + 1, t, c], V[6 * a + 2, t, c], V[6 * a + 3, t, c], V[6 * a + 4, t, c],
                     V[6 * a + 5, t, c]) = _bt_1d(tmp[a, 0, c], tmp[a, 1, c], tmp[a, 2, c], tmp[a, 3, c],
                                                  tmp[a, 4, c], tmp[a, 5, c], consts)


@njit(cache=True, fastmath=True, nogil=True)
def _winograd_tiles_a(lo, hi, x, TH, TW, V, consts):
    # V[a*6 + b, t] = (A g A^T)[a, b] for the 4x4 tile g at (4 th, 4 tw), A = AT^T (6 x 4).
    N, Hp, Wp, C = x.shape
    for q in range(lo, hi):  # this thread's chunk of range(N * TH)
        n, th = q // TH, q % TH
        tmp = np.empty((6, 4, C), x.dtype)
        h0 = 4 * th
        for tw in range(TW):
            t, w0 = q * TW + tw, 4 * tw
            for j in range(4):
                for c in range(C):
                    (tmp[0, j, c], tmp[1, j, c], tmp[2, j, c], tmp[3, j, c], tmp[4, j, c],
                     tmp[5, j, c]) = _a_1d(x[n, h0, w0 + j, c], x[n, h0 + 1, w0 + j, c], x[n, h0 + 2, w0 + j, c],
                                           x[n, h0 + 3, w0 + j, c], consts)
            for a in range(6):
                for c in range(C):
                    (V[6 * a, t, c], V[6 * a + 1, t, c], V[6 * a + 2, t, c], V[6 * a + 3, t, c], V[6 * a + 4, t, c],
                     V[6 * a + 5, t, c]) = _a_1d(tmp[a, 0, c], tmp[a, 1, c], tmp[a, 2, c], tmp[a, 3, c], consts)


@njit(cache=True, fastmath=True, nogil=True)
def _winograd_untiles_at(lo, hi, M, TH, TW, out, consts):
    # out[n, 4 th + i, 4 tw + j] = (AT m AT^T)[i, j] for the tile m = M[:, t]: 4x4 tiles side by side, so
    # each (image, tile row) writes its own four rows and no pixel twice.
    N, Hp, Wp, K = out.shape
    for q in range(lo, hi):  # this thread's chunk of range(N * TH)
        n, th = q // TH, q % TH
        tmp = np.empty((6, 4, K), M.dtype)
        h0 = 4 * th
        for tw in range(TW):
            t, w0 = q * TW + tw, 4 * tw
            for a in range(6):
                for k in range(K):
                    tmp[a, 0, k], tmp[a, 1, k], tmp[a, 2, k], tmp[a, 3, k] = _at_1d(
                        M[6 * a, t, k], M[6 * a + 1, t, k], M[6 * a + 2, t, k], M[6 * a + 3, t, k],
                        M[6 * a + 4, t, k], M[6 * a + 5, t, k], consts)
            for j in range(4):
                for k in range(K):
                    (out[n, h0, w0 + j, k], out[n, h0 + 1, w0 + j, k], out[n, h0 + 2, w0 + j, k],
                     out[n, h0 + 3, w0 + j, k]) = _at_1d(tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k],
                                                         tmp[4, j, k], tmp[5, j, k], consts)


@njit(cache=True, fastmath=True, nogil=True)
def _winograd_untiles_b(lo, hi, M, TH, TW, out, consts):
    # out[n, 4 th + i, 4 tw + j] += (B m B^T)[i, j], B = BT^T: 6x6 tiles at stride 4 overlap by 2, so one
    # image per iteration (one thread adds into a pixel).
    N, Hp, Wp, K = out.shape
    for n in range(lo, hi):  # this thread's chunk of range(N)
        out[n] = 0
        tmp = np.empty((6, 6, K), M.dtype)
        for th in range(TH):
            h0 = 4 * th
            for tw in range(TW):
                t, w0 = (n * TH + th) * TW + tw, 4 * tw
                for a in range(6):
                    for k in range(K):
                        (tmp[a, 0, k], tmp[a, 1, k], tmp[a, 2, k], tmp[a, 3, k], tmp[a, 4, k],
                         tmp[a, 5, k]) = _b_1d(M[6 * a, t, k], M[6 * a + 1, t, k], M[6 * a + 2, t, k],
                                               M[6 * a + 3, t, k], M[6 * a + 4, t, k], M[6 * a + 5, t, k], consts)
                for j in range(6):
                    for k in range(K):
                        b0, b1, b2, b3, b4, b5 = _b_1d(tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k],
                                                       tmp[4, j, k], tmp[5, j, k], consts)
                        out[n, h0, w0 + j, k] += b0
                        out[n, h0 + 1, w0 + j, k] += b1
                        out[n, h0 + 2, w0 + j, k] += b2
                        out[n, h0 + 3, w0 + j, k] += b3
                        out[n, h0 + 4, w0 + j, k] += b4
                        out[n, h0 + 5, w0 + j, k] += b5


@njit(cache=True, fastmath=True, nogil=True)
def _winograd_tiles(lo, hi, x, L, s, TH, TW, V):
    # One (image, tile row) per iteration; each tile: tmp[a, j] = sum_i L[a, i] x[s*th + i, s*tw + j], then
    # V[a*AO + b, t] = sum_j L[b, j] tmp[a, j]. Every innermost loop runs over the C contiguous channels (it
    # vectorises); the zero entries of L are skipped outside it.
    N, Hp, Wp, C = x.shape
    AO, AI = L.shape
    for q in range(lo, hi):  # this thread's chunk of range(N * TH)
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
    AO = L.shape[0]
    out = np.empty((AO * AO, x.shape[0] * TH * TW, x.shape[3]), dtype=x.dtype) if out is None else out
    x = np.ascontiguousarray(x)
    rows = x.shape[0] * TH                  # (image, tile row) pairs
    if s == 4 and _is_matrix(L, _BT):
        parallel_for(_winograd_tiles_bt, rows, x, TH, TW, out, _constants(x.dtype))
    elif s == 4 and _is_matrix(L, _AT.T):
        parallel_for(_winograd_tiles_a, rows, x, TH, TW, out, _constants(x.dtype))
    else:
        parallel_for(_winograd_tiles, rows, x, np.ascontiguousarray(L, dtype=x.dtype), s, TH, TW, out)
    return out


@njit(cache=True, fastmath=True, nogil=True)
def _winograd_untiles(lo, hi, M, L, s, TH, TW, out):
    # One image per iteration: with AO > s the tiles overlap, and only one thread may add into a pixel.
    # Each tile: tmp[a, j] = sum_b L[j, b] M[a*AI + b, t], then out[s*th + i, s*tw + j] += sum_a L[i, a] tmp[a, j].
    N, Hp, Wp, K = out.shape
    AO, AI = L.shape
    for n in range(lo, hi):  # this thread's chunk of range(N)
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
    out = np.empty((M.shape[1] // (TH * TW), Hp, Wp, M.shape[2]), dtype=M.dtype) if out is None else out
    M = np.ascontiguousarray(M)
    if s == 4 and _is_matrix(L, _AT):
        parallel_for(_winograd_untiles_at, out.shape[0] * TH, M, TH, TW, out, _constants(M.dtype))
        out[:, 4 * TH:] = 0      # the tiles write every pixel they cover, once
        out[:, :, 4 * TW:] = 0
    elif s == 4 and _is_matrix(L, _BT.T):
        parallel_for(_winograd_untiles_b, out.shape[0], M, TH, TW, out, _constants(M.dtype))
    else:
        parallel_for(_winograd_untiles, out.shape[0], M, np.ascontiguousarray(L, dtype=M.dtype), s, TH, TW, out)
    return out
