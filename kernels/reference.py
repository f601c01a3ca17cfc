"""Plain NumPy reference kernels: the readable oracle that the Numba (and CUDA) kernels are tested against.

Notation (every array is NCHW):
    N batch, C channels, H, W input height and width, KH, KW kernel, SH, SW stride, PH, PW padding,
    DH, DW dilation, OH, OW output height and width.

Arrays are float32 or float64 (indices int64). Outputs are C-contiguous, in the dtype of the first array
argument. The functions compute and check nothing: ``minidl.kernels`` checks the arguments once (in
``kernels/_checks.py``, which also holds the window geometry, ``window_count``) before any kernel set runs.
"""
import numpy as np

from minidl.kernels._checks import indices_out_of_range, window_count


def _output_hw(H, W, KH, KW, SH, SW, PH, PW, DH=1, DW=1, ceil_mode=False):
    return window_count(H, KH, SH, PH, DH, ceil_mode), window_count(W, KW, SW, PW, DW, ceil_mode)


def _pad_for_windows(x, OH, OW, KH, KW, SH, SW, PH, PW, value):
    """Pad H and W so that every pooling window, ceil_mode overhang included, lies inside the array."""
    H, W = x.shape[2:]
    bottom = max(0, (OH - 1) * SH + KH - H - PH)
    right = max(0, (OW - 1) * SW + KW - W - PW)
    return np.pad(x, ((0, 0), (0, 0), (PH, bottom), (PW, right)), constant_values=value)


def im2col(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    """Unfold every KH x KW window of x into a column buffer.

        col[n, c, i, j, oh, ow] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]      (xpad: x zero-padded by PH, PW)

    x (N, C, H, W) -> col (N, C, KH, KW, OH, OW). A convolution is then one matmul of the weights
    (K, C*KH*KW) with col.reshape(N, C*KH*KW, OH*OW).

    >>> import numpy as np
    >>> im2col(np.ones((1, 1, 4, 4), np.float32), 3, 3, 1, 1, 1, 1).shape
    (1, 1, 3, 3, 4, 4)
    """
    N, C, H, W = x.shape
    OH, OW = _output_hw(H, W, KH, KW, SH, SW, PH, PW, DH, DW)
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    col = np.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            h, w = i * DH, j * DW
            col[:, :, i, j] = xpad[:, :, h:h + SH * (OH - 1) + 1:SH, w:w + SW * (OW - 1) + 1:SW]
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    """Adjoint of im2col: add every column entry back at the input position it was read from.

        x[n, c, h, w] = sum of col[n, c, i, j, oh, ow] over all (i, j, oh, ow) with
                        oh*SH + i*DH - PH = h and ow*SW + j*DW - PW = w

    col (N, C, KH, KW, OH, OW) -> x (N, C, H, W); contributions that land in the padding are dropped.
    """
    N, C, KH, KW, OH, OW = col.shape
    xpad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            h, w = i * DH, j * DW
            xpad[:, :, h:h + SH * (OH - 1) + 1:SH, w:w + SW * (OW - 1) + 1:SW] += col[:, :, i, j]
    return np.ascontiguousarray(xpad[:, :, PH:PH + H, PW:PW + W])


def im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    """im2col laid out for one GEMM over the whole batch: the rows are (c, i, j), the columns (n, oh, ow).

        col[c, i, j, n, oh, ow] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]

    x (N, C, H, W) -> col (C, KH, KW, N, OH, OW). A convolution is then a single matmul of the weights
    (K, C*KH*KW) with col.reshape(C*KH*KW, N*OH*OW), instead of N small ones.

    >>> import numpy as np
    >>> im2col_gemm(np.ones((2, 1, 4, 4), np.float32), 3, 3, 1, 1, 1, 1).shape
    (1, 3, 3, 2, 4, 4)
    """
    return np.ascontiguousarray(im2col(x, KH, KW, SH, SW, PH, PW, DH, DW).transpose(1, 2, 3, 0, 4, 5))


def col2im_gemm(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    """Adjoint of im2col_gemm: col (C, KH, KW, N, OH, OW) -> x (N, C, H, W). See col2im."""
    return col2im(np.ascontiguousarray(col.transpose(3, 0, 1, 2, 4, 5)), H, W, SH, SW, PH, PW, DH, DW)


def depthwise_conv2d(x, W, PH, PW):
    """Depthwise convolution (groups = C, one filter per channel), stride 1, no dilation:

        y[n, c, oh, ow] = sum over i, j of W[c, 0, i, j] * xpad[n, c, oh + i, ow + j]

    x (N, C, H, W), W (C, 1, KH, KW) -> y (N, C, OH, OW). As a grouped convolution this is C matmuls of
    1 x KH*KW by KH*KW x N*OH*OW, which BLAS runs at a fraction of its rate.
    """
    KH, KW = W.shape[2:]
    col = im2col(x, KH, KW, 1, 1, PH, PW)                               # N C KH KW OH OW
    return np.ascontiguousarray(np.einsum("ncijhw,cij->nchw", col, W[:, 0].astype(x.dtype)))


def depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW):
    """The filter gradient of depthwise_conv2d:  gW[c, 0, i, j] = sum over n, oh, ow of
    gy[n, c, oh, ow] * xpad[n, c, oh + i, ow + j].  x (N, C, H, W), gy (N, C, OH, OW) -> gW (C, 1, KH, KW)."""
    col = im2col(x, KH, KW, 1, 1, PH, PW)
    gW = np.einsum("ncijhw,nchw->cij", col, gy.astype(x.dtype))
    return np.ascontiguousarray(gW[:, None])


def direct_conv2d(x, W, PH, PW, SH=1, SW=1, b=None):
    """Convolution (cross-correlation, as every framework's conv2d), no dilation, one group:

        y[n, k, oh, ow] = sum over c, i, j of W[k, c, i, j] * xpad[n, c, oh*SH + i, ow*SW + j]  (+ b[k])

    x (N, C, H, W), W (K, C, KH, KW), b (K,) or None -> y (N, K, OH, OW). The CPU set computes it plane by
    plane, for layers with few channels (LeNet-5's C1), whose im2col + GEMM is a thin product that BLAS runs
    slowly, and adds the bias as it stores each row (one rounding: the sum, then the sum plus b[k]).
    """
    KH, KW = W.shape[2:]
    col = im2col(x, KH, KW, SH, SW, PH, PW)                             # N C KH KW OH OW
    y = np.ascontiguousarray(np.einsum("ncijhw,kcij->nkhw", col, W.astype(x.dtype)))
    if b is not None:
        y += b.astype(x.dtype).reshape(1, -1, 1, 1)
    return y


def direct_conv2d_grad_input(gy, W, H, Wd, PH, PW):
    """The input gradient of direct_conv2d:  gx[n, c, h, w] = sum of W[k, c, i, j] * gy[n, k, oh, ow] over
    every (k, i, j, oh, ow) with oh + i - PH = h and ow + j - PW = w.
    gy (N, K, OH, OW), W (K, C, KH, KW) -> gx (N, C, H, Wd)."""
    gcol = np.einsum("kcij,nkhw->ncijhw", W.astype(gy.dtype), gy)
    return col2im(gcol, H, Wd, 1, 1, PH, PW)


def direct_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    """The filter gradient of direct_conv2d:  gW[k, c, i, j] = sum over n, oh, ow of
    gy[n, k, oh, ow] * xpad[n, c, oh*SH + i, ow*SW + j].  x (N, C, H, W), gy (N, K, OH, OW) -> gW (K, C, KH, KW)."""
    col = im2col(x, KH, KW, SH, SW, PH, PW)
    return np.ascontiguousarray(np.einsum("ncijhw,nkhw->kcij", col, gy.astype(x.dtype)))


def tanh_forward(x, outer=1.0, inner=1.0):
    """y = outer * tanh(inner * x), element by element (tanh itself by default; LeCun's squashing function
    1.7159 tanh(2x/3) with outer = 1.7159, inner = 2/3); x any shape. The CPU set computes float32 tanh by a
    rational function (at most 3e-7 from the exact value, |tanh| <= 1, tanh(+-inf) = +-1, NaN stays NaN)."""
    return np.ascontiguousarray(outer * np.tanh(inner * x.astype(np.float64))).astype(x.dtype)


def tanh_backward(gy, y, outer=1.0, inner=1.0):
    """The gradient of y = outer * tanh(inner * x) from its output:  gx = gy * outer * inner * (1 - (y /
    outer)^2);  gy, y of one shape -> gx (gy * (1 - y^2) for tanh)."""
    t = y.astype(np.float64) / outer
    return np.ascontiguousarray(gy * (outer * inner * (1 - t * t))).astype(gy.dtype)


def relu_forward(x):
    """y = max(x, 0) as PyTorch's relu: 0 where x < 0, else x itself (-0.0 and NaN pass unchanged); any shape."""
    return np.ascontiguousarray(np.where(x < 0, np.zeros((), x.dtype), x))


def relu_backward(gy, y):
    """The gradient of relu from its output, as PyTorch's:  gx = 0 where y <= 0, else gy (an inf or NaN
    gradient reaching a zero output gives 0);  gy, y of one shape -> gx."""
    return np.ascontiguousarray(np.where(y <= 0, np.zeros((), gy.dtype), gy))


# Winograd's F(4x4, 3x3) (Lavin & Gray 2016): a 4x4 output tile Y of a 3x3 filter g over a 6x6 input
# tile d is Y = AT [(G g G^T) * (BT d BT^T)] AT^T. minidl.kernels.winograd uses them with the kernels
# below; the CPU kernel set runs these four matrices (BT, AT^T for winograd_tiles; AT, BT^T for
# winograd_untiles) by loops written out for them, any other L by the general loops.
WINOGRAD_BT = ((4, 0, -5, 0, 1, 0),
               (0, -4, -4, 1, 1, 0),
               (0, 4, -4, -1, 1, 0),
               (0, -2, -1, 2, 1, 0),
               (0, 2, -1, -2, 1, 0),
               (0, 4, 0, -5, 0, 1))
WINOGRAD_G = ((1 / 4, 0, 0),
              (-1 / 6, -1 / 6, -1 / 6),
              (-1 / 6, 1 / 6, -1 / 6),
              (1 / 24, 1 / 12, 1 / 6),
              (1 / 24, -1 / 12, 1 / 6),
              (0, 0, 1))
WINOGRAD_AT = ((1, 1, 1, 1, 1, 0),
               (0, 1, -1, 2, -2, 0),
               (0, 1, 1, 4, 4, 0),
               (0, 1, -1, 8, -8, 1))












def pad_nhwc(x, PT, PL, Hp, Wp):
    """x (N, C, H, W) channels-last and zero-padded: out[n, PT + h, PL + w, c] = x[n, c, h, w], zero elsewhere.

    -> (N, Hp, Wp, C), with Hp >= PT + H and Wp >= PL + W (the rows and columns past PT + H, PL + W are zero).
    The Winograd transforms run on this layout: the C values of one pixel are contiguous, so every transform
    is a sum of whole rows of C.
    """
    N, C, H, W = x.shape
    out = np.zeros((N, Hp, Wp, C), dtype=x.dtype)
    out[:, PT:PT + H, PL:PL + W] = x.transpose(0, 2, 3, 1)
    return out


def crop_nchw(x, PT, PL, H, W, out=None):
    """The inverse of pad_nhwc: x (N, Hp, Wp, C) -> (N, C, H, W), out[n, c, h, w] = x[n, PT + h, PL + w, c]."""
    N, Hp, Wp, C = x.shape
    out = np.empty((N, C, H, W), dtype=x.dtype) if out is None else out
    out[...] = x[:, PT:PT + H, PL:PL + W].transpose(0, 3, 1, 2)
    return out


def winograd_tiles(x, L, s, TH, TW, out=None):
    """Cut x into TH x TW tiles of AI x AI pixels at stride s, and transform each tile by L on both sides:

        V[a*AO + b, (n*TH + th)*TW + tw, c] = sum over i, j of L[a, i] * L[b, j] * x[n, s*th + i, s*tw + j, c]

    x (N, Hp, Wp, C) channels-last, L (AO, AI) -> V (AO*AO, N*TH*TW, C). With L = B^T of Winograd's
    F(m x m, r x r) this is the input transform B^T d B of every tile d (AI = AO = m + r - 1, s = m); with
    L = A it is the transform A dY A^T that the backward pass applies to dY's m x m tiles (AI = m, s = m).
    Each V[a*AO + b] is a matrix of tiles x channels, ready for one GEMM per (a, b).
    """
    N, C = x.shape[0], x.shape[3]
    AO, AI = L.shape
    # patches[i, j, n, th, tw, c] = x[n, s*th + i, s*tw + j, c]
    patches = np.stack([np.stack([x[:, i:i + s * (TH - 1) + 1:s, j:j + s * (TW - 1) + 1:s] for j in range(AI)])
                        for i in range(AI)])
    V = np.einsum("ai,bj,ijnuvc->abnuvc", L.astype(x.dtype), L.astype(x.dtype), patches)
    out = np.empty((AO * AO, N * TH * TW, C), dtype=x.dtype) if out is None else out
    out[...] = V.reshape(AO * AO, N * TH * TW, C)
    return out


def winograd_untiles(M, L, s, TH, TW, Hp, Wp, out=None):
    """Transform every tile of M by L on both sides and add it into the image at its place (the adjoint of
    winograd_tiles with L transposed):

        out[n, s*th + i, s*tw + j, k] = sum over tiles covering the pixel, and a, b, of
                                        L[i, a] * L[j, b] * M[a*AI + b, (n*TH + th)*TW + tw, k]

    M (AI*AI, N*TH*TW, K), L (AO, AI) -> out (N, Hp, Wp, K) channels-last, zero where no tile lands. With
    L = A^T (AO = m, AI = m + r - 1, s = m) it is Winograd's output transform A^T M A, the m x m tiles side
    by side; with L = B (AO = AI = m + r - 1, s = m) it is the backward pass's B dV B^T, whose tiles overlap
    by r - 1 and add up.
    """
    AO, AI = L.shape
    N, K = M.shape[1] // (TH * TW), M.shape[2]
    Y = np.einsum("ia,jb,abnuvk->ijnuvk", L.astype(M.dtype), L.astype(M.dtype), M.reshape(AI, AI, N, TH, TW, K))
    out = np.empty((N, Hp, Wp, K), dtype=M.dtype) if out is None else out
    out[...] = 0
    for i in range(AO):
        for j in range(AO):
            out[:, i:i + s * (TH - 1) + 1:s, j:j + s * (TW - 1) + 1:s] += Y[i, j]
    return out


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False):
    """Max over each KH x KW window (padding counts as -inf), and where it was found.

        y[n, c, oh, ow] = max of x[n, c, h, w] over the window at (oh*SH - PH, ow*SW - PW)
        indices[n, c, oh, ow] = h*W + w of that max (PyTorch's return_indices convention)

    Ties: the first max in row-major window order wins; a NaN counts as the max (the first NaN wins);
    a window holding only -inf points at its first in-bounds element. x (N, C, H, W) -> y, indices
    (N, C, OH, OW), indices int64.
    """
    N, C, H, W = x.shape
    OH, OW = _output_hw(H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode)
    xpad = _pad_for_windows(x, OH, OW, KH, KW, SH, SW, PH, PW, value=-np.inf)
    windows = np.stack([xpad[:, :, i:i + SH * (OH - 1) + 1:SH, j:j + SW * (OW - 1) + 1:SW]
                        for i in range(KH) for j in range(KW)], axis=2)        # N x C x KH*KW x OH x OW
    arg = np.argmax(windows, axis=2)                                          # first max (or NaN) wins
    y = np.take_along_axis(windows, arg[:, :, None], axis=2)[:, :, 0]
    i, j = np.divmod(arg, KW)
    # Only an all -inf window can pick its (padded) first element: clipping moves it to the first real one.
    h = np.maximum(np.arange(OH)[:, None] * SH - PH + i, 0)
    w = np.maximum(np.arange(OW)[None, :] * SW - PW + j, 0)
    return np.ascontiguousarray(y), (h * W + w).astype(np.int64)






def max_pool2d_backward(gy, indices, H, W):
    """Route each output gradient to the input element that was the max (overlapping windows add up).

        gx[n, c].flat[indices[n, c, oh, ow]] += gy[n, c, oh, ow]

    gy, indices (N, C, OH, OW) -> gx (N, C, H, W).
    """
    N, C, OH, OW = gy.shape
    if indices.size and (indices.min() < 0 or indices.max() >= H * W):
        raise indices_out_of_range("max_pool2d_backward", indices, H, W)
    gx = np.zeros((N * C, H * W), dtype=gy.dtype)
    planes = np.arange(N * C)[:, None]
    np.add.at(gx, (planes, indices.reshape(N * C, OH * OW)), gy.reshape(N * C, OH * OW))
    return gx.reshape(N, C, H, W)


def avg_pool_divisor(size, k, s, p, out, count_include_pad):
    """Divisor of each window along one axis, exactly as PyTorch computes it.

    start = o*s - p; end = min(start + k, size + p): the window counts the padding but not a ceil_mode
    overhang. Without count_include_pad it counts only the in-bounds elements. The 2-d divisor is the
    outer product of the H and W divisors.
    """
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """Mean over each KH x KW window (zero padding), divided as PyTorch divides (see avg_pool_divisor).

    x (N, C, H, W) -> y (N, C, OH, OW).
    """
    N, C, H, W = x.shape
    OH, OW = _output_hw(H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode)
    xpad = _pad_for_windows(x, OH, OW, KH, KW, SH, SW, PH, PW, value=0)
    total = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            total += xpad[:, :, i:i + SH * (OH - 1) + 1:SH, j:j + SW * (OW - 1) + 1:SW]
    divisor = np.outer(avg_pool_divisor(H, KH, SH, PH, OH, count_include_pad),
                       avg_pool_divisor(W, KW, SW, PW, OW, count_include_pad))
    return total / divisor.astype(x.dtype)


def avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """Spread each output gradient evenly over its window: gx[window] += gy / divisor.

    gy (N, C, OH, OW) -> gx (N, C, H, W).
    """
    N, C, OH, OW = gy.shape
    divisor = np.outer(avg_pool_divisor(H, KH, SH, PH, OH, count_include_pad),
                       avg_pool_divisor(W, KW, SW, PW, OW, count_include_pad))
    g = gy / divisor.astype(gy.dtype)
    gxpad = _pad_for_windows(np.zeros((N, C, H, W), dtype=gy.dtype), OH, OW, KH, KW, SH, SW, PH, PW, value=0)
    for i in range(KH):
        for j in range(KW):
            gxpad[:, :, i:i + SH * (OH - 1) + 1:SH, j:j + SW * (OW - 1) + 1:SW] += g
    return np.ascontiguousarray(gxpad[:, :, PH:PH + H, PW:PW + W])




def _per_channel(v):
    """(C,) -> (1, C, 1, 1), in float64, to broadcast against NCHW."""
    return np.asarray(v, dtype=np.float64).reshape(1, -1, 1, 1)


def batch_norm_forward_train(x, gamma, beta, eps):
    """Batch normalisation with the statistics of this batch (training mode).

        mean[c] = mean of x[:, c] over N, H, W;   var[c] = biased variance;   invstd = 1 / sqrt(var + eps)
        y = gamma[c] * (x - mean[c]) * invstd[c] + beta[c]

    x (N, C, H, W) (reshape (N, C) to (N, C, 1, 1)), gamma, beta (C,) -> y (N, C, H, W), mean, invstd (C,)
    in x's dtype, and var (C,) in float64 (for the running statistics: rebuilding it from a float32 invstd
    loses it where var is small next to eps). Statistics are accumulated in float64.
    """
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 2, 3))
    var = x64.var(axis=(0, 2, 3))
    invstd = 1.0 / np.sqrt(var + eps)
    y = _per_channel(gamma) * (x64 - _per_channel(mean)) * _per_channel(invstd) + _per_channel(beta)
    return y.astype(x.dtype), mean.astype(x.dtype), invstd.astype(x.dtype), var


def batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """Batch normalisation with stored statistics (inference mode).

        y = gamma[c] * (x - running_mean[c]) / sqrt(running_var[c] + eps) + beta[c]
    """
    invstd = 1.0 / np.sqrt(_per_channel(running_var) + eps)
    y = _per_channel(gamma) * (x.astype(np.float64) - _per_channel(running_mean)) * invstd + _per_channel(beta)
    return y.astype(x.dtype)


def batch_norm_backward(gy, x, gamma, mean, invstd):
    """Gradients of training-mode batch normalisation, with M = N*H*W values per channel:

        xhat = (x - mean) * invstd
        dbeta = sum(gy);   dgamma = sum(gy * xhat)                 (sums over N, H, W)
        gx = gamma * invstd / M * (M * gy - dbeta - xhat * dgamma)

    gy, x (N, C, H, W), gamma, mean, invstd (C,) -> gx (N, C, H, W), dgamma, dbeta (C,).
    """
    N, C, H, W = gy.shape
    M = N * H * W
    gy64 = gy.astype(np.float64)
    xhat = (x.astype(np.float64) - _per_channel(mean)) * _per_channel(invstd)
    dbeta = gy64.sum(axis=(0, 2, 3))
    dgamma = (gy64 * xhat).sum(axis=(0, 2, 3))
    gx = _per_channel(gamma) * _per_channel(invstd) / M * (M * gy64 - _per_channel(dbeta) - xhat * _per_channel(dgamma))
    return gx.astype(gy.dtype), dgamma.astype(gy.dtype), dbeta.astype(gy.dtype)




def _channel_window_sum(a, front, back):
    """out[:, c] = sum of a[:, c'] for c - front <= c' <= c + back (channels outside [0, C) count as 0)."""
    C = a.shape[1]
    apad = np.pad(a, ((0, 0), (front, back), (0, 0), (0, 0)))
    return sum(apad[:, offset:offset + C] for offset in range(front + back + 1))


def lrn_forward(x, size, alpha, beta, k):
    """Local response normalisation across channels (AlexNet section 3.3).

        scale[n, c] = k + alpha * sum of x[n, c']**2 for c - size//2 <= c' <= c + (size-1)//2
        y = x * scale**(-beta)

    alpha is the effective coefficient: for the PyTorch/Caffe convention pass alpha / size.
    x (N, C, H, W) -> y, scale (N, C, H, W).
    """
    scale = k + alpha * _channel_window_sum(x.astype(np.float64) ** 2, size // 2, (size - 1) // 2)
    y = x * scale ** (-beta)
    return y.astype(x.dtype), scale.astype(x.dtype)


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    """Gradient of lrn_forward. Channel c' uses c in its sum when c' - (size-1)//2 <= c <= c' + size//2:

        gx[c] = gy[c] * scale[c]**(-beta)
                - 2 * alpha * beta * x[c] * sum over those c' of gy[c'] * y[c'] / scale[c']
    """
    gy64, scale64 = gy.astype(np.float64), scale.astype(np.float64)
    ratio = gy64 * y / scale64
    gx = gy64 * scale64 ** (-beta) - 2 * alpha * beta * x * _channel_window_sum(ratio, (size - 1) // 2, size // 2)
    return gx.astype(gy.dtype)
