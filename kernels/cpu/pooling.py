"""Numba max and average pooling, forward and backward. Formulas and tie rules: ``minidl.kernels.reference``."""
import numpy as np
from numba import njit

from minidl.kernels._checks import indices_out_of_range, window_count
from minidl.kernels.threads import parallel_for


# No fastmath here: it lets LLVM assume there are no NaNs or infinities, and max pooling starts from -inf
# and must let a NaN through.
@njit(cache=True, nogil=True)
def _max_pool2d_forward(lo, hi, x, y, indices, KH, KW, SH, SW, PH, PW, OH, OW):
    # x (P, H, W) -> y, indices (P, OH*OW). Per plane, for each window offset (i, j) in scan order, the
    # candidates of all windows are gathered into one contiguous row, then a branch-free loop keeps the
    # best (strictly greater, or the first NaN) with selects, which vectorises. Windows start at -inf and at
    # the index of their first element inside x; candidates in the padding (or, with ceil_mode, past the
    # edge) never win. About 3x faster than a loop with the window's bounds and a data-dependent branch per
    # element (benchmarks/README.md), with the same results, bit for bit.
    # The scratch rows are made once a call, not once a plane (an allocation a plane cost as much as pooling
    # a LeNet-sized plane).
    P, H, W = x.shape
    L = OH * OW
    best = np.empty(L, x.dtype)
    index = np.empty(L, np.int64)
    first = np.empty(L, np.int64)             # flat index of the window's first element inside x
    corner = np.empty(L, np.int64)            # flat index of the window's top-left (may be outside x)
    v = np.empty(L, x.dtype)
    inside = np.empty(L, np.bool_)
    for oh in range(OH):
        for ow in range(OW):
            l = oh * OW + ow
            h0, w0 = oh * SH - PH, ow * SW - PW
            corner[l] = h0 * W + w0
            first[l] = max(h0, 0) * W + max(w0, 0)
    for p in range(lo, hi):  # this thread's chunk of range(P)
        for l in range(L):
            best[l] = -np.inf
            index[l] = first[l]
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


@njit(cache=True, nogil=True)
def _max_pool2d_forward_2x2(lo, hi, x, y, indices):
    # The common 2x2, stride 2, unpadded window with its loops unrolled: 5-8x faster than the general loop.
    # Same scan order and tie rule.
    P, H, W = x.shape
    OH, OW = y.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(P)
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


@njit(cache=True, nogil=True)
def _max_pool2d_forward_2x2_short(lo, hi, x, y, indices, OH, OW):
    # The 2x2 kernel above for short output rows (OW < 32). There LLVM leaves the row loop scalar, and its
    # three data-dependent compares mispredict on real activations. Here each plane's windows are first
    # gathered into four contiguous rows (plain copies), then one loop over the whole plane picks the max
    # and its index with selects and integer arithmetic instead of branches, which vectorises (3-5x faster
    # on LeNet's S2/S4; on 112x112 planes the kernel above stays faster). Same results, bit for bit: first
    # max wins, the first NaN wins.
    # y, indices: (P, OH*OW).
    # The scratch rows are made once a call, not once a plane: LeNet's S4 (1,024 planes of 10x10) 323 -> 173 us.
    P, H, W = x.shape
    L = OH * OW
    q = np.empty((4, L), x.dtype)                # top-left, top-right, bottom-left, bottom-right
    base = np.empty(L, np.int64)                 # flat index of the top-left element
    for oh in range(OH):
        for ow in range(OW):
            base[oh * OW + ow] = 2 * oh * W + 2 * ow
    for p in range(lo, hi):  # this thread's chunk of range(P)
        for oh in range(OH):
            for ow in range(OW):
                h, w, l = 2 * oh, 2 * ow, oh * OW + ow
                q[0, l] = x[p, h, w]
                q[1, l] = x[p, h, w + 1]
                q[2, l] = x[p, h + 1, w]
                q[3, l] = x[p, h + 1, w + 1]
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


@njit(cache=True, fastmath=True, nogil=True)
def _max_pool2d_backward(lo, hi, gy, indices, gx, out_of_range):
    # gy, indices (P, OH*OW) -> gx (P, H*W); out_of_range[p] flags a bad index instead of writing it.
    P, HW = gx.shape
    L = gy.shape[1]
    for p in range(lo, hi):  # this thread's chunk of range(P)
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
    N, C, H, W = x.shape
    OH, OW = window_count(H, KH, SH, PH, 1, ceil_mode), window_count(W, KW, SW, PW, 1, ceil_mode)
    x = np.ascontiguousarray(x)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    indices = np.empty((N, C, OH, OW), dtype=np.int64)
    planes = (x.reshape(N * C, H, W), y.reshape(N * C, OH, OW), indices.reshape(N * C, OH, OW))
    if (KH, KW, SH, SW, PH, PW) == (2, 2, 2, 2, 0, 0) and 2 * OH <= H and 2 * OW <= W:   # no partial window
        if OW < 32:
            parallel_for(_max_pool2d_forward_2x2_short, N * C, planes[0], planes[1].reshape(N * C, OH * OW),
                         planes[2].reshape(N * C, OH * OW), OH, OW)
        else:
            parallel_for(_max_pool2d_forward_2x2, N * C, *planes)
    else:
        parallel_for(_max_pool2d_forward, N * C, planes[0], planes[1].reshape(N * C, OH * OW),
                     planes[2].reshape(N * C, OH * OW), KH, KW, SH, SW, PH, PW, OH, OW)
    return y, indices


def max_pool2d_backward(gy, indices, H, W):
    """Numba scatter-add of gy at indices: -> gx (N, C, H, W). See reference.max_pool2d_backward."""
    N, C, OH, OW = gy.shape
    gy = np.ascontiguousarray(gy)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    gx = np.empty((N, C, H, W), dtype=gy.dtype)
    out_of_range = np.zeros(N * C, dtype=np.bool_)
    parallel_for(_max_pool2d_backward, N * C, gy.reshape(N * C, OH * OW), indices.reshape(N * C, OH * OW),
                 gx.reshape(N * C, H * W), out_of_range)
    if out_of_range.any():
        raise indices_out_of_range("max_pool2d_backward", indices, H, W)
    return gx


@njit(cache=True, inline="always")
def _avg_window(o, S, P, K, size):
    # (lo, hi, divisor with padding): window o covers inputs lo:hi, and K - overhang past the padding
    start = o * S - P
    end = min(start + K, size + P)
    return max(start, 0), min(end, size), end - start


@njit(cache=True, fastmath=True, nogil=True)
def _avg_pool2d_forward(lo, hi, x, y, KH, KW, SH, SW, PH, PW, count_include_pad):
    P, H, W = x.shape
    OH, OW = y.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(P)
        for oh in range(OH):
            h0, h1, pool_h = _avg_window(oh, SH, PH, KH, H)
            for ow in range(OW):
                w0, w1, pool_w = _avg_window(ow, SW, PW, KW, W)
                total = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        total += x[p, h, w]
                divisor = pool_h * pool_w if count_include_pad else (h1 - h0) * (w1 - w0)
                y[p, oh, ow] = total / divisor


@njit(cache=True, fastmath=True, nogil=True)
def _avg_pool2d_backward(lo, hi, gy, gx, KH, KW, SH, SW, PH, PW, count_include_pad):
    P, H, W = gx.shape
    OH, OW = gy.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(P)
        for h in range(H):
            for w in range(W):
                gx[p, h, w] = 0
        for oh in range(OH):
            h0, h1, pool_h = _avg_window(oh, SH, PH, KH, H)
            for ow in range(OW):
                w0, w1, pool_w = _avg_window(ow, SW, PW, KW, W)
                divisor = pool_h * pool_w if count_include_pad else (h1 - h0) * (w1 - w0)
                g = gy[p, oh, ow] / divisor
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        gx[p, h, w] += g


# The common 2x2, stride 2, unpadded window (LeNet's subsampling, DenseNet's transitions) with every window
# inside x: the sums written out, no bounds and no float64 accumulator, which vectorises (5-10x the general
# kernels; benchmarks/README.md).
@njit(cache=True, fastmath=True, nogil=True)
def _avg_pool2d_forward_2x2(lo, hi, x, y):
    P = x.shape[0]
    OH, OW = y.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(P)
        for oh in range(OH):
            for ow in range(OW):
                y[p, oh, ow] = (x[p, 2 * oh, 2 * ow] + x[p, 2 * oh, 2 * ow + 1]
                                + x[p, 2 * oh + 1, 2 * ow] + x[p, 2 * oh + 1, 2 * ow + 1]) * 0.25


@njit(cache=True, fastmath=True, nogil=True)
def _avg_pool2d_backward_2x2(lo, hi, gy, gx):
    P, H, W = gx.shape
    OH, OW = gy.shape[1:]
    for p in range(lo, hi):  # this thread's chunk of range(P)
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


def _avg_pool(a, out_hw, H, W, OH, OW, window, count_include_pad, unrolled, general):
    """Run an average-pooling kernel on the N*C planes of a (C-contiguous copy of) a: the unrolled 2x2/2 one
    when every window lies inside x, else the general one; -> (N, C) + out_hw."""
    N, C = a.shape[:2]
    a = np.ascontiguousarray(a)
    out = np.empty((N, C) + out_hw, dtype=a.dtype)
    planes = (a.reshape((N * C,) + a.shape[2:]), out.reshape((N * C,) + out_hw))
    if window == (2, 2, 2, 2, 0, 0) and 2 * OH <= H and 2 * OW <= W:
        parallel_for(unrolled, N * C, *planes)
    else:
        parallel_for(general, N * C, *planes, *window, bool(count_include_pad))
    return out


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """Numba average pooling: x (N, C, H, W) -> y (N, C, OH, OW). See reference.avg_pool2d_forward."""
    H, W = x.shape[2:]
    OH, OW = window_count(H, KH, SH, PH, 1, ceil_mode), window_count(W, KW, SW, PW, 1, ceil_mode)
    return _avg_pool(x, (OH, OW), H, W, OH, OW, (KH, KW, SH, SW, PH, PW), count_include_pad,
                     _avg_pool2d_forward_2x2, _avg_pool2d_forward)


def avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """Numba average-pooling gradient: gy (N, C, OH, OW) -> gx (N, C, H, W). See reference.avg_pool2d_backward."""
    OH, OW = gy.shape[2:]
    return _avg_pool(gy, (H, W), H, W, OH, OW, (KH, KW, SH, SW, PH, PW), count_include_pad,
                     _avg_pool2d_backward_2x2, _avg_pool2d_backward)
