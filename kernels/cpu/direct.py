"""Numba direct convolution (stride 1, no dilation, one group) for layers with few channels, and its two
gradients. Formulas: ``minidl.kernels.reference``.

A layer such as LeNet-5's C1 (1 -> 6 channels, 5x5) is a GEMM of 6 x 25 by 25 x N*28*28: BLAS runs such a
thin product at a fraction of its rate (~8-20 GFLOP/s here) after an im2col that writes 25 times the input.
Here every plane is worked on in place, one pass per (channel, kernel offset), each pass one long loop.

The planes are read "wide": an image plane zero-padded to Hp x Wp (plus one zero row, so that the last
offset stays inside the plane) is a flat vector, and output row oh, column ow sits at t = oh*Wp + ow of a
flat output of OH*Wp entries. Offset (i, j) then reads x at t + i*Wp + j for every t, one contiguous loop
that Numba vectorises; the KW-1 columns past OW of each output row are computed and dropped (the
gradients read a gy whose columns past OW are zero, so nothing lands from them).

The loops below run for float64 (and for a float32 input gradient whose padding is not smaller than the
kernel); float32 arrays otherwise go to the register-tiled kernels of ``kernels/cpu/tiled.py``, which read
the same wide planes. The float32 figures in the comments below are from before those kernels.
"""
import numpy as np
from numba import njit

from minidl.kernels.cpu import tiled
from minidl.kernels.threads import parallel_for


def wide_planes(x, PH, PW):
    """x (N, C, H, W) zero-padded by PH, PW on each side and one more zero row at the bottom, as flat planes:
    (N, C, (H + 2 PH + 1) * (W + 2 PW)), C-contiguous."""
    N, C, H, W = x.shape
    Hp, Wp = H + 2 * PH, W + 2 * PW
    xw = np.zeros((N, C, Hp + 1, Wp), dtype=x.dtype)
    xw[:, :, PH:PH + H, PW:PW + W] = x
    return xw.reshape(N, C, (Hp + 1) * Wp)


def wide_rows(gy, Wp):
    """gy (N, K, OH, OW) with zero columns up to Wp, flat: (N, K, OH * Wp)."""
    N, K, OH, OW = gy.shape
    gw = np.zeros((N, K, OH, Wp), dtype=gy.dtype)
    gw[:, :, :, :OW] = gy
    return gw.reshape(N, K, OH * Wp)


@njit(cache=True, fastmath=True, nogil=True)
def _direct_conv2d(lo, hi, xw, W, Wp, y):
    # xw (N, C, (Hp+1)*Wp) -> y (N, K, OH, OW); one iteration per output plane (n, k). Four offsets j of a
    # kernel row per pass share each load and store of acc (LeNet-5's C1 0.90 -> 0.70 ms).
    C = xw.shape[1]
    K, _, KH, KW = W.shape
    OH, OW = y.shape[2:]
    T = OH * Wp
    acc = np.empty(T, dtype=y.dtype)
    for p in range(lo, hi):  # this thread's part of range(N * K)
        n, k = p // K, p % K
        acc[:] = 0
        for c in range(C):
            plane = xw[n, c]
            for i in range(KH):
                j = 0
                while j + 4 <= KW:
                    w0, w1, w2, w3 = W[k, c, i, j], W[k, c, i, j + 1], W[k, c, i, j + 2], W[k, c, i, j + 3]
                    src0 = plane[i * Wp + j:]       # views: the loop's indices are then plain t >= 0
                    src1 = plane[i * Wp + j + 1:]
                    src2 = plane[i * Wp + j + 2:]
                    src3 = plane[i * Wp + j + 3:]
                    for t in range(T):
                        acc[t] += w0 * src0[t] + w1 * src1[t] + w2 * src2[t] + w3 * src3[t]
                    j += 4
                for jj in range(j, KW):
                    w = W[k, c, i, jj]
                    src = plane[i * Wp + jj:]
                    for t in range(T):
                        acc[t] += w * src[t]
        for oh in range(OH):        # element loops: a slice assignment compiles Numba's shape-error strings
            for ow in range(OW):
                y[n, k, oh, ow] = acc[oh * Wp + ow]


@njit(cache=True, fastmath=True, nogil=True)
def _direct_conv2d_grad_input(lo, hi, gw, W, Hp, Wp, PH, PW, gx):
    # gw (N, K, OH*Wp) -> gx (N, C, H, W): each gy entry is scattered to the KH*KW inputs it read, one
    # iteration per input plane (n, c), so no two threads write one plane.
    N, K = gw.shape[:2]
    C, H, W_in = gx.shape[1:]
    KH, KW = W.shape[2:]
    T = gw.shape[2]
    acc = np.empty((Hp + 1) * Wp, dtype=gx.dtype)
    for p in range(lo, hi):  # this thread's part of range(N * C)
        n, c = p // C, p % C
        acc[:] = 0
        for k in range(K):
            rows = gw[n, k]
            for i in range(KH):
                for j in range(KW):
                    w = W[k, c, i, j]
                    dst = acc[i * Wp + j:]
                    for t in range(T):
                        dst[t] += w * rows[t]
        for h in range(H):
            start = (h + PH) * Wp + PW
            for w in range(W_in):
                gx[n, c, h, w] = acc[start + w]


@njit(cache=True, fastmath=True, nogil=True)
def _direct_conv2d_grad_weight(lo, hi, xw, gw, Wp, gW, zero):
    # gW[k, c, i, j] = sum over n, t of gw[n, k, t] * xw[n, c, i*Wp + j + t]; one iteration per (k, c).
    # Four offsets j at a time share each load of gw (C1's filter gradient 1.78 -> 1.05 ms). Per image the
    # sums are in the arrays' dtype (vectorised: they start from ``zero``, a scalar of that dtype passed in;
    # a literal 0 would make them float64, and the loop half as wide: 0.88 -> 0.43 ms), added up over the
    # images in float64.
    N, C = xw.shape[:2]
    K = gw.shape[1]
    KH, KW = gW.shape[2:]
    T = gw.shape[2]
    total = np.empty((KH, KW), dtype=np.float64)
    for p in range(lo, hi):  # this thread's part of range(K * C)
        k, c = p // C, p % C
        total[:] = 0
        for n in range(N):
            rows = gw[n, k]
            plane = xw[n, c]
            for i in range(KH):
                j = 0
                while j + 4 <= KW:
                    src0 = plane[i * Wp + j:]
                    src1 = plane[i * Wp + j + 1:]
                    src2 = plane[i * Wp + j + 2:]
                    src3 = plane[i * Wp + j + 3:]
                    s0 = s1 = s2 = s3 = zero
                    for t in range(T):
                        r = rows[t]
                        s0 += r * src0[t]
                        s1 += r * src1[t]
                        s2 += r * src2[t]
                        s3 += r * src3[t]
                    total[i, j] += s0
                    total[i, j + 1] += s1
                    total[i, j + 2] += s2
                    total[i, j + 3] += s3
                    j += 4
                for jj in range(j, KW):
                    src = plane[i * Wp + jj:]
                    s0 = zero
                    for t in range(T):
                        s0 += rows[t] * src[t]
                    total[i, jj] += s0
        for i in range(KH):
            for j in range(KW):
                gW[k, c, i, j] = total[i, j]


def direct_conv2d(x, W, PH, PW, SH=1, SW=1, b=None):
    """Numba direct convolution: x (N, C, H, W), W (K, C, KH, KW), b (K,) or None -> y (N, K, OH, OW). See
    reference. float32: the register-tiled kernel (kernels/cpu/tiled.py), any stride, the bias added as it
    stores each row; float64: stride 1, the bias added after."""
    if x.dtype == np.float32:
        return tiled.tiled_conv2d(x, W, PH, PW, SH, SW, b)
    N, C, H, W_in = x.shape
    K, _, KH, KW = W.shape
    Wp = W_in + 2 * PW
    y = np.empty((N, K, H + 2 * PH - KH + 1, Wp - KW + 1), dtype=x.dtype)
    parallel_for(_direct_conv2d, N * K, wide_planes(x, PH, PW), np.ascontiguousarray(W, dtype=x.dtype), Wp, y)
    if b is not None:
        y += b.astype(x.dtype).reshape(1, -1, 1, 1)
    return y


def direct_conv2d_grad_input(gy, W, H, Wd, PH, PW):
    """Numba input gradient of direct_conv2d: gy (N, K, OH, OW), W (K, C, KH, KW) -> gx (N, C, H, Wd). See reference.
    float32 with padding smaller than the kernel: the register-tiled kernel (kernels/cpu/tiled.py)."""
    if gy.dtype == np.float32 and PH < W.shape[2] and PW < W.shape[3]:
        return tiled.tiled_conv2d_grad_input(gy, W, H, Wd, PH, PW)
    N = gy.shape[0]
    C = W.shape[1]
    Hp, Wp = H + 2 * PH, Wd + 2 * PW
    gx = np.empty((N, C, H, Wd), dtype=gy.dtype)
    parallel_for(_direct_conv2d_grad_input, N * C, wide_rows(np.ascontiguousarray(gy), Wp),
                 np.ascontiguousarray(W, dtype=gy.dtype), Hp, Wp, PH, PW, gx)
    return gx


def direct_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    """Numba filter gradient of direct_conv2d: x (N, C, H, W), gy (N, K, OH, OW) -> gW (K, C, KH, KW). See reference.
    float32: the register-tiled kernel (kernels/cpu/tiled.py), any stride; float64: stride 1."""
    if x.dtype == np.float32:
        return tiled.tiled_conv2d_grad_weight(x, gy.astype(np.float32, copy=False), KH, KW, PH, PW, SH, SW)
    C, Wp = x.shape[1], x.shape[3] + 2 * PW
    K = gy.shape[1]
    gW = np.empty((K, C, KH, KW), dtype=x.dtype)
    parallel_for(_direct_conv2d_grad_weight, K * C, wide_planes(x, PH, PW),
                 wide_rows(np.ascontiguousarray(gy, dtype=x.dtype), Wp), Wp, gW, x.dtype.type(0))
    return gW


def direct_conv2d_grad_weight_parts(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    """direct_conv2d_grad_weight in pieces for a caller that runs its parts (kernels.threads.beside_map):
    float32 only (tiled.grad_weight_parts); ``(part, groups, partial_elements, finish)``."""
    if x.dtype != np.float32:
        raise ValueError(f"direct_conv2d_grad_weight_parts: x must be float32, got {x.dtype}")
    return tiled.grad_weight_parts(x, gy.astype(np.float32, copy=False), KH, KW, PH, PW, SH, SW)
