"""Numba depthwise convolution (groups = C = K), stride 1, and its filter gradient. Formulas:
``minidl.kernels.reference``."""
import numpy as np
from numba import njit

from minidl.kernels._checks import window_count
from minidl.kernels.cpu.im2col import zero_pad
from minidl.kernels.threads import parallel_for


# One loop iteration per plane (n, c), over a zero-padded copy of x so that the loops carry no bounds.
# The output plane is accumulated in a local buffer (in L1 for planes up to ~90 x 90), one pass per kernel
# offset: about twice as fast as conv2d's grouped GEMM (C matmuls of 1 x 9 by 9 x N*OH*OW); a version with
# the strides in the index arithmetic did not vectorise (benchmarks/README.md).
@njit(cache=True, fastmath=True, nogil=True)
def _depthwise_conv2d(lo, hi, xpad, W, y):
    N, C = xpad.shape[:2]
    KH, KW = W.shape[2:]
    OH, OW = y.shape[2:]
    acc = np.empty((OH, OW), dtype=y.dtype)     # made once a call, zeroed for each plane
    for p in range(lo, hi):  # this thread's chunk of range(N * C)
        n, c = p // C, p % C
        acc[:] = 0
        for i in range(KH):
            for j in range(KW):
                w = W[c, 0, i, j]
                for oh in range(OH):
                    for ow in range(OW):
                        acc[oh, ow] += w * xpad[n, c, oh + i, ow + j]
        y[n, c] = acc


@njit(cache=True, fastmath=True, nogil=True)
def _depthwise_conv2d_grad_weight(lo, hi, xpad, gy, gW):
    # One loop iteration per channel, summing over the images; each (n, c) plane pair stays in L1 for all
    # KH*KW offsets. The sums are float64 (``gy[...] * 0``: a float32 times an int literal is float64 in
    # Numba); float32 sums measured no faster here (Xception's 16 x 64 x 56 x 56: 15.7 vs 16.9 ms).
    N, C = xpad.shape[:2]
    KH, KW = gW.shape[2:]
    OH, OW = gy.shape[2:]
    for c in range(lo, hi):  # this thread's chunk of range(C)
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
    KH, KW = W.shape[2:]
    OH, OW = window_count(x.shape[2], KH, 1, PH), window_count(x.shape[3], KW, 1, PW)
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    parallel_for(_depthwise_conv2d, y.shape[0] * y.shape[1], zero_pad(x, PH, PW),
                 np.ascontiguousarray(W, dtype=x.dtype), y)
    return y


def depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW):
    """Numba filter gradient of depthwise_conv2d: -> gW (C, 1, KH, KW). See reference."""
    gW = np.empty((x.shape[1], 1, KH, KW), dtype=x.dtype)
    parallel_for(_depthwise_conv2d_grad_weight, x.shape[1], zero_pad(x, PH, PW),
                 np.ascontiguousarray(gy, dtype=x.dtype), gW)
    return gW

