"""Numba batch normalisation (training and inference) and local response normalisation, forward and
backward. Statistics are accumulated in float64. Formulas: ``minidl.kernels.reference``."""
import numpy as np
from numba import njit

from minidl.kernels.threads import parallel_for


@njit(cache=True, fastmath=True, nogil=True)
def _channel_mean_var(lo, hi, x, mean, var):
    # x (N, C, L) -> float64 mean, biased var (C,); two passes, so no E[x^2] - E[x]^2 cancellation.
    N, C, L = x.shape
    for c in range(lo, hi):  # this thread's chunk of range(C)
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


@njit(cache=True, fastmath=True, nogil=True)
def _channel_affine(lo, hi, x, center, scale, shift, y):
    # y[n, c] = (x[n, c] - center[c]) * scale[c] + shift[c]; subtracting the center first keeps float32 precise.
    N, C, L = x.shape
    for nc in range(lo, hi):  # this thread's chunk of range(N * C)
        n, c = nc // C, nc % C
        m, a, b = center[c], scale[c], shift[c]
        for l in range(L):
            y[n, c, l] = (x[n, c, l] - m) * a + b


@njit(cache=True, fastmath=True, nogil=True)
def _channel_grad_sums(lo, hi, gy, x, mean, sum_gy, sum_gy_xc):
    # -> float64 sum(gy), sum(gy * (x - mean)) per channel
    N, C, L = x.shape
    for c in range(lo, hi):  # this thread's chunk of range(C)
        m = mean[c]
        s, t = 0.0, 0.0
        for n in range(N):
            for l in range(L):
                g = gy[n, c, l]
                s += g
                t += g * (x[n, c, l] - m)
        sum_gy[c] = s
        sum_gy_xc[c] = t


@njit(cache=True, fastmath=True, nogil=True)
def _bn_backward_apply(lo, hi, gy, x, mean, a, b, d, gx):
    # gx[n, c] = a[c] * gy + b[c] * (x - mean[c]) + d[c]
    N, C, L = x.shape
    for nc in range(lo, hi):  # this thread's chunk of range(N * C)
        n, c = nc // C, nc % C
        m, ac, bc, dc = mean[c], a[c], b[c], d[c]
        for l in range(L):
            gx[n, c, l] = ac * gy[n, c, l] + bc * (x[n, c, l] - m) + dc


def _affine(x, center, scale, shift):
    """y[:, c] = (x[:, c] - center[c]) * scale[c] + shift[c], with the (C,) vectors cast to x's dtype."""
    N, C, H, W = x.shape
    y = np.empty_like(x)
    center, scale, shift = (np.ascontiguousarray(v, dtype=x.dtype) for v in (center, scale, shift))
    parallel_for(_channel_affine, N * C, x.reshape(N, C, H * W), center, scale, shift, y.reshape(N, C, H * W))
    return y


def batch_norm_forward_train(x, gamma, beta, eps):
    """Numba training-mode batch norm: -> y, mean, invstd, var. See reference.batch_norm_forward_train."""
    N, C, H, W = x.shape
    x = np.ascontiguousarray(x)
    mean, var = np.empty(C), np.empty(C)
    parallel_for(_channel_mean_var, C, x.reshape(N, C, H * W), mean, var)
    invstd = 1.0 / np.sqrt(var + eps)
    y = _affine(x, mean, np.asarray(gamma, dtype=np.float64) * invstd, beta)
    return y, mean.astype(x.dtype), invstd.astype(x.dtype), var


def batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """Numba inference-mode batch norm: -> y. See reference.batch_norm_forward_eval."""
    scale = np.asarray(gamma, dtype=np.float64) / np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)
    return _affine(np.ascontiguousarray(x), running_mean, scale, beta)


def batch_norm_backward(gy, x, gamma, mean, invstd):
    """Numba training-mode batch-norm gradients: -> gx, dgamma, dbeta. See reference.batch_norm_backward.

    With k = gamma * invstd and the formula of the reference rearranged per channel:
        gx = k * gy - k * invstd**2 * dgamma' / M * (x - mean) - k * dbeta / M,   dgamma' = sum(gy * (x - mean))
    """
    N, C, H, W = gy.shape
    M = N * H * W
    dt = gy.dtype
    gy, x, mean = np.ascontiguousarray(gy), np.ascontiguousarray(x, dtype=dt), np.ascontiguousarray(mean, dtype=dt)
    sum_gy, sum_gy_xc = np.empty(C), np.empty(C)
    parallel_for(_channel_grad_sums, C, gy.reshape(N, C, H * W), x.reshape(N, C, H * W), mean, sum_gy, sum_gy_xc)
    invstd64 = np.asarray(invstd, dtype=np.float64)
    k = np.asarray(gamma, dtype=np.float64) * invstd64
    dbeta, dgamma = sum_gy, sum_gy_xc * invstd64
    a, b, d = (np.ascontiguousarray(v, dtype=dt) for v in (k, -k * invstd64 * dgamma / M, -k * dbeta / M))
    gx = np.empty_like(gy)
    parallel_for(_bn_backward_apply, N * C, gy.reshape(N, C, H * W), x.reshape(N, C, H * W), mean, a, b, d,
                 gx.reshape(N, C, H * W))
    return gx, dgamma.astype(dt), dbeta.astype(dt)


@njit(cache=True, fastmath=True, nogil=True)
def _lrn_forward(lo, hi, x, y, scale, size, alpha, beta, k):
    # x (N, C, L) -> y, scale; each (n, c) sums its own channel window, so the planes are independent.
    N, C, L = x.shape
    for nc in range(lo, hi):  # this thread's chunk of range(N * C)
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


@njit(cache=True, fastmath=True, nogil=True)
def _lrn_ratio(lo, hi, gy, y, scale, ratio):
    # (N*C, L) planes: ratio = gy * y / scale
    L = gy.shape[1]
    for nc in range(lo, hi):  # this thread's chunk of range(N * C)
        for l in range(L):
            ratio[nc, l] = gy[nc, l] * y[nc, l] / scale[nc, l]


@njit(cache=True, fastmath=True, nogil=True)
def _lrn_backward(lo, hi, gy, x, scale, ratio, gx, size, beta, two_alpha_beta):
    # Channel c enters the sums of c' in [c - (size-1)//2, c + size//2]: gather their ratios (all of them
    # computed by _lrn_ratio first: the channel window crosses the chunks).
    N, C, L = x.shape
    for nc in range(lo, hi):  # this thread's chunk of range(N * C)
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
    N, C, H, W = x.shape
    x = np.ascontiguousarray(x)
    y, scale = np.empty_like(x), np.empty_like(x)
    t = x.dtype.type   # scalars in the array's dtype keep float32 loops in float32
    parallel_for(_lrn_forward, N * C, x.reshape(N, C, H * W), y.reshape(N, C, H * W), scale.reshape(N, C, H * W),
                 size, t(alpha), t(beta), t(k))
    return y, scale


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    """Numba LRN gradient: -> gx. See reference.lrn_backward."""
    N, C, H, W = gy.shape
    dt = gy.dtype
    gy, x, y, scale = (np.ascontiguousarray(a, dtype=dt).reshape(N, C, H * W) for a in (gy, x, y, scale))
    ratio, gx = np.empty((N, C, H * W), dtype=dt), np.empty((N, C, H, W), dtype=dt)
    parallel_for(_lrn_ratio, N * C, gy.reshape(N * C, H * W), y.reshape(N * C, H * W), scale.reshape(N * C, H * W),
                 ratio.reshape(N * C, H * W))
    parallel_for(_lrn_backward, N * C, gy, x, scale, ratio, gx.reshape(N, C, H * W), size, dt.type(beta),
                 dt.type(2 * alpha * beta))
    return gx
