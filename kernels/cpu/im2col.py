"""Numba im2col and col2im, in the layout of one image per block (N, C, KH, KW, OH, OW) and in the layout
of one GEMM over the whole batch (C, KH, KW, N, OH, OW). Formulas: ``minidl.kernels.reference``."""
import numpy as np
from numba import njit

from minidl.kernels._checks import window_count
from minidl.kernels.threads import parallel_for


@njit(cache=True, inline="always")
def window_rows(shift, S, O, size):
    """(lo, hi): the outputs o in lo:hi of one kernel offset read input o*S + shift inside 0:size; the
    others read padding."""
    lo = min(max(-(shift // S), 0), O)
    hi = max(min((size - 1 - shift) // S + 1, O), lo)
    return lo, hi


# For kernel offset (i, j), output rows oh_lo:oh_hi and columns ow_lo:ow_hi read inside the input, the rest
# read padding: that block is copied as one slice (faster than element by element).
@njit(cache=True, fastmath=True, nogil=True)
def _im2col(lo, hi, x, col, SH, SW, PH, PW, DH, DW):
    # x (P, H, W) -> col (P, KH, KW, OH, OW), P = N*C planes.
    P, H, W = x.shape
    KH, KW, OH, OW = col.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(P)
        for i in range(KH):
            h_shift = i * DH - PH                                # input row of output row oh: oh*SH + h_shift
            oh_lo, oh_hi = window_rows(h_shift, SH, OH, H)
            for j in range(KW):
                w_shift = j * DW - PW
                ow_lo, ow_hi = window_rows(w_shift, SW, OW, W)
                block = col[p, i, j]
                block[:oh_lo] = 0
                block[oh_hi:] = 0
                block[oh_lo:oh_hi, :ow_lo] = 0
                block[oh_lo:oh_hi, ow_hi:] = 0
                if oh_hi > oh_lo and ow_hi > ow_lo:
                    h0, w0 = oh_lo * SH + h_shift, ow_lo * SW + w_shift
                    block[oh_lo:oh_hi, ow_lo:ow_hi] = x[p, h0:h0 + (oh_hi - oh_lo - 1) * SH + 1:SH,
                                                        w0:w0 + (ow_hi - ow_lo - 1) * SW + 1:SW]


@njit(cache=True, fastmath=True, nogil=True)
def _col2im(lo, hi, col, x, SH, SW, PH, PW, DH, DW):
    # col (P, KH, KW, OH, OW) -> x (P, H, W); each plane is summed by one thread, so no races.
    P, H, W = x.shape
    KH, KW, OH, OW = col.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(P)
        x[p] = 0
        for i in range(KH):
            h_shift = i * DH - PH
            oh_lo, oh_hi = window_rows(h_shift, SH, OH, H)
            for j in range(KW):
                w_shift = j * DW - PW
                ow_lo, ow_hi = window_rows(w_shift, SW, OW, W)
                w0 = ow_lo * SW + w_shift
                for oh in range(oh_lo, oh_hi):
                    source = col[p, i, j, oh, ow_lo:ow_hi]
                    target = x[p, oh * SH + h_shift, w0:w0 + (ow_hi - ow_lo - 1) * SW + 1:SW]
                    for k in range(ow_hi - ow_lo):          # a slice += would allocate a temporary
                        target[k] += source[k]


def im2col(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    """Numba im2col: x (N, C, H, W) -> col (N, C, KH, KW, OH, OW). See reference.im2col."""
    N, C, H, W = x.shape
    OH, OW = window_count(H, KH, SH, PH, DH), window_count(W, KW, SW, PW, DW)
    x = np.ascontiguousarray(x)
    col = np.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    parallel_for(_im2col, N * C, x.reshape(N * C, H, W), col.reshape(N * C, KH, KW, OH, OW), SH, SW, PH, PW, DH, DW)
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    """Numba col2im: col (N, C, KH, KW, OH, OW) -> x (N, C, H, W). See reference.col2im."""
    N, C, KH, KW, OH, OW = col.shape
    col = np.ascontiguousarray(col)
    x = np.empty((N, C, H, W), dtype=col.dtype)
    parallel_for(_col2im, N * C, col.reshape(N * C, KH, KW, OH, OW), x.reshape(N * C, H, W), SH, SW, PH, PW, DH, DW)
    return x


def zero_pad(x, PH, PW):
    """x zero-padded by PH rows and PW columns on each side, C-contiguous (x itself if it already is)."""
    if not (PH or PW):
        return np.ascontiguousarray(x)
    N, C, H, W = x.shape
    xpad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    xpad[:, :, PH:PH + H, PW:PW + W] = x
    return xpad


@njit(cache=True, fastmath=True, nogil=True)
def _im2col_gemm_stride1(lo, hi, x, col):
    # x (N, C, H, W), already padded -> col (C, KH, KW, N, OH, OW); stride 1, no dilation. The plain loop
    # nest, with nothing but the copy in the innermost loop, vectorises; padding, strides or dilation
    # handled inside the loops (bounds per row, zero fills) measured slower than NumPy.
    N, C, H, W = x.shape
    KH, KW, _, OH, OW = col.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(C * KH)
        c, i = p // KH, p % KH
        for j in range(KW):
            for n in range(N):
                for oh in range(OH):
                    for ow in range(OW):
                        col[c, i, j, n, oh, ow] = x[n, c, oh + i, ow + j]


def im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    """im2col: x (N, C, H, W) -> col (C, KH, KW, N, OH, OW). See reference.im2col_gemm.

    Stride 1, undilated, rows of at least 4 outputs: the zero-padded x (a copy, if padded) copied by a Numba
    loop. Otherwise the windows of the zero-padded x are a strided view of it (as_strided), and the buffer
    is that view copied by NumPy, faster than Numba for strided convolutions and for rows of 1-3 outputs
    (LeNet C5, where the loop has nothing to vectorise). Timings: benchmarks/README.md.
    """
    N, C, H, W = x.shape
    OH, OW = window_count(H, KH, SH, PH, DH), window_count(W, KW, SW, PW, DW)
    xpad = zero_pad(x, PH, PW)
    col = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    if (SH, SW, DH, DW) == (1, 1, 1, 1) and OW >= 4:
        parallel_for(_im2col_gemm_stride1, C * KH, xpad, col)
        return col
    sN, sC, sH, sW = xpad.strides
    windows = np.lib.stride_tricks.as_strided(
        xpad, (C, KH, KW, N, OH, OW), (sC, sH * DH, sW * DW, sN, sH * SH, sW * SW), writeable=False)
    np.copyto(col, windows)
    return col


# The sums of _col2im, with the column buffer laid out for one GEMM over the whole batch: plane (n, c)
# gathers from col[c, :, :, n], so the planes still write disjoint blocks.
@njit(cache=True, fastmath=True, nogil=True)
def _col2im_gemm(lo, hi, col, x, SH, SW, PH, PW, DH, DW):
    # col (C, KH, KW, N, OH, OW) -> x (N, C, H, W)
    N, C, H, W = x.shape
    KH, KW, _, OH, OW = col.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(N * C)
        n, c = p // C, p % C
        x[n, c] = 0
        for i in range(KH):
            h_shift = i * DH - PH
            oh_lo, oh_hi = window_rows(h_shift, SH, OH, H)
            for j in range(KW):
                w_shift = j * DW - PW
                ow_lo, ow_hi = window_rows(w_shift, SW, OW, W)
                w0 = ow_lo * SW + w_shift
                for oh in range(oh_lo, oh_hi):
                    source = col[c, i, j, n, oh, ow_lo:ow_hi]
                    target = x[n, c, oh * SH + h_shift, w0:w0 + (ow_hi - ow_lo - 1) * SW + 1:SW]
                    for k in range(ow_hi - ow_lo):
                        target[k] += source[k]


@njit(cache=True, fastmath=True, nogil=True)
def _col2im_gemm_stride1(lo, hi, col, xpad):
    # col (C, KH, KW, N, OH, OW) -> xpad (N, C, OH + KH - 1, OW + KW - 1), the zero-padded x; stride 1, no
    # dilation. One loop iteration per channel, so no two threads add into the same element; like
    # _im2col_gemm_stride1, a loop nest with nothing but the add inside vectorises (4x _col2im).
    C, KH, KW, N, OH, OW = col.shape
    for c in range(lo, hi):  # this thread's chunk of range(C)
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
    C, KH, KW, N, OH, OW = col.shape
    if (OH, OW, KH, KW, PH, PW, DH, DW) == (1, 1, H, W, 0, 0, 1, 1):
        # One window covering the whole image (a fully connected layer written as a conv, LeNet-5 C5): each
        # input element is in exactly one column, so col2im is a transpose (15x faster than the loops).
        return np.ascontiguousarray(col.reshape(C, KH, KW, N).transpose(3, 0, 1, 2))
    col = np.ascontiguousarray(col)
    if (SH, SW, DH, DW) == (1, 1, 1, 1) and OW >= 4:
        xpad = np.empty((N, C, OH + KH - 1, OW + KW - 1), dtype=col.dtype)
        parallel_for(_col2im_gemm_stride1, C, col, xpad)
        return np.ascontiguousarray(xpad[:, :, PH:PH + H, PW:PW + W]) if (PH or PW) else xpad
    x = np.empty((N, C, H, W), dtype=col.dtype)
    parallel_for(_col2im_gemm, N * C, col, x, SH, SW, PH, PW, DH, DW)
    return x
