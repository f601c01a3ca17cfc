"""Plain NumPy reference kernels: the readable oracle that the Numba (and CUDA) kernels are tested against.

Notation (every array is NCHW):
    N batch, C channels, H, W input height and width, KH, KW kernel, SH, SW stride, PH, PW padding,
    DH, DW dilation, OH, OW output height and width.

Arrays are float32 or float64 (indices int64). Outputs are C-contiguous, in the dtype of the first array
argument. Every function checks its arguments first and raises ValueError naming the kernel, what it
expected and what it got. The checks (``check_*``, ``window_geometry``) are shared with ``cpu``.
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(op, name, a, ndim):
    """Return ``a`` after checking it is a float32/float64 array with ``ndim`` dimensions."""
    shape = getattr(a, "shape", None)
    if shape is None or len(shape) != ndim:
        layout = "(N, C, H, W)" if ndim == 4 else f"{ndim}-d"
        got = f"shape {tuple(shape)}" if shape is not None else type(a).__name__
        raise ValueError(f"{op}: {name} must be a {ndim}-d array {layout}, got {got}")
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{op}: {name} must be float32 or float64, got {a.dtype}")
    return a


def check_same_shape(op, name, a, expected_name, shape):
    if getattr(a, "shape", None) != tuple(shape):
        got = tuple(a.shape) if hasattr(a, "shape") else type(a).__name__
        raise ValueError(f"{op}: {name} must have the shape of {expected_name} {tuple(shape)}, got {got}")


def check_per_channel(op, name, a, C):
    """A per-channel vector (gamma, beta, running stats) must have shape (C,)."""
    if getattr(a, "shape", None) != (C,):
        got = tuple(a.shape) if hasattr(a, "shape") else type(a).__name__
        raise ValueError(f"{op}: {name} must have shape (C,) = ({C},), got {got}")


def _check_int(op, name, value, minimum):
    if type(value) is int and value >= minimum:   # the common case, checked first: this runs on every call
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")


def window_count(size, k, s, p, d=1, ceil_mode=False):
    """PyTorch's number of windows along one axis (``pooling_output_shape``), which may come out below 1.

        out = floor((size + 2p - d*(k-1) - 1 + (s-1 if ceil_mode else 0)) / s) + 1

    With ceil_mode the last window may hang past the padded input, even when the kernel is larger than
    the padded input; it is dropped if it would start inside the right padding, i.e. if
    (out-1)*s >= size + p, so every window overlaps the input. Arguments are not checked.
    """
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def conv_output_size(size, k, s, p, d=1, ceil_mode=False):
    """Number of windows along one axis of a convolution or pooling (see window_count), at least 1.

        out = floor((size + 2p - d*(k-1) - 1) / s) + 1        (ceil instead of floor when ceil_mode)

    Without ceil_mode the dilated kernel must fit in the padded input. With ceil_mode it may be larger,
    as in PyTorch, as long as one window starts inside the input or its left padding and reaches the
    input: size + 2p - d*(k-1) - 1 > -s.

    >>> conv_output_size(32, 5, 1, 0)                    # LeNet C1
    28
    >>> conv_output_size(6, 3, 2, 0, ceil_mode=True)     # windows start at 0, 2, 4; the last overhangs
    3
    >>> conv_output_size(2, 3, 2, 0, ceil_mode=True)     # one window, larger than the input
    1
    """
    op = "conv_output_size"
    for name, value, minimum in (("size", size, 1), ("k", k, 1), ("s", s, 1), ("p", p, 0), ("d", d, 1)):
        _check_int(op, name, value, minimum)
    out = window_count(size, k, s, p, d, ceil_mode)
    if out < 1:
        raise ValueError(f"{op}: a kernel of {k} with dilation {d} spans {d * (k - 1) + 1}, more than the "
                         f"padded size {size} + 2*{p} = {size + 2 * p}"
                         + (f" by at least the stride {s}, even with ceil_mode" if ceil_mode else ""))
    return out


def window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, DH=1, DW=1, ceil_mode=False, pool=False):
    """Check a 2-d window (kernel, stride, padding, dilation) against an H x W input; return (OH, OW).

    For pooling (``pool=True``) the padding may be at most half the kernel, as in PyTorch. Without
    ceil_mode the dilated kernel must fit in the padded input; with it, see conv_output_size.
    """
    for name, value, minimum in (("H", H, 1), ("W", W, 1), ("KH", KH, 1), ("KW", KW, 1), ("SH", SH, 1),
                                 ("SW", SW, 1), ("PH", PH, 0), ("PW", PW, 0), ("DH", DH, 1), ("DW", DW, 1)):
        _check_int(op, name, value, minimum)
    if pool and (PH > KH // 2 or PW > KW // 2):
        raise ValueError(f"{op}: padding must be at most half the kernel, got padding {PH}x{PW} "
                         f"for kernel {KH}x{KW}")
    OH, OW = window_count(H, KH, SH, PH, DH, ceil_mode), window_count(W, KW, SW, PW, DW, ceil_mode)
    if OH < 1 or OW < 1:
        span_h, span_w = DH * (KH - 1) + 1, DW * (KW - 1) + 1
        raise ValueError(f"{op}: kernel {KH}x{KW} (dilation {DH}x{DW}) spans {span_h}x{span_w}, larger than "
                         f"the padded input {H + 2 * PH}x{W + 2 * PW} (H={H}, W={W}, padding {PH}x{PW})"
                         + (f", even with ceil_mode (stride {SH}x{SW}): the output would be {OH}x{OW}"
                            if ceil_mode else ""))
    return OH, OW


def check_output_hw(op, name, got, expected, H, W):
    """A backward input's (OH, OW) must be what the forward window over an H x W input produced."""
    if tuple(got) != tuple(expected):
        raise ValueError(f"{op}: {name} has OH x OW = {got[0]}x{got[1]}, but this window over an {H}x{W} "
                         f"input gives {expected[0]}x{expected[1]}")


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
    N, C, H, W = check_array("im2col", "x", x, 4).shape
    OH, OW = window_geometry("im2col", H, W, KH, KW, SH, SW, PH, PW, DH, DW)
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
    N, C, KH, KW, OH, OW = check_array("col2im", "col", col, 6).shape
    check_output_hw("col2im", "col", (OH, OW), window_geometry("col2im", H, W, KH, KW, SH, SW, PH, PW, DH, DW), H, W)
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
    check_array("col2im_gemm", "col", col, 6)
    return col2im(np.ascontiguousarray(col.transpose(3, 0, 1, 2, 4, 5)), H, W, SH, SW, PH, PW, DH, DW)

def check_depthwise(op, x, W, PH, PW):
    """Check a depthwise convolution's x (N, C, H, W) and filters W (C, 1, KH, KW); return (OH, OW)."""
    N, C, H, Wd = check_array(op, "x", x, 4).shape
    check_array(op, "W", W, 4)
    if W.shape[0] != C or W.shape[1] != 1:
        raise ValueError(f"{op}: W must be C x 1 x KH x KW with C = {C} (one filter per channel), "
                         f"got shape {W.shape}")
    return window_geometry(op, H, Wd, W.shape[2], W.shape[3], 1, 1, PH, PW)


def depthwise_conv2d(x, W, PH, PW):
    """Depthwise convolution (groups = C, one filter per channel), stride 1, no dilation:

        y[n, c, oh, ow] = sum over i, j of W[c, 0, i, j] * xpad[n, c, oh + i, ow + j]

    x (N, C, H, W), W (C, 1, KH, KW) -> y (N, C, OH, OW). As a grouped convolution this is C matmuls of
    1 x KH*KW by KH*KW x N*OH*OW, which BLAS runs at a fraction of its rate.
    """
    OH, OW = check_depthwise("depthwise_conv2d", x, W, PH, PW)
    KH, KW = W.shape[2:]
    col = im2col(x, KH, KW, 1, 1, PH, PW)                               # N C KH KW OH OW
    return np.ascontiguousarray(np.einsum("ncijhw,cij->nchw", col, W[:, 0].astype(x.dtype)))


def depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW):
    """The filter gradient of depthwise_conv2d:  gW[c, 0, i, j] = sum over n, oh, ow of
    gy[n, c, oh, ow] * xpad[n, c, oh + i, ow + j].  x (N, C, H, W), gy (N, C, OH, OW) -> gW (C, 1, KH, KW)."""
    N, C, H, W = check_array("depthwise_conv2d_grad_weight", "x", x, 4).shape
    expected = (N, C) + window_geometry("depthwise_conv2d_grad_weight", H, W, KH, KW, 1, 1, PH, PW)
    check_same_shape("depthwise_conv2d_grad_weight", "gy", gy, "the output", expected)
    col = im2col(x, KH, KW, 1, 1, PH, PW)
    gW = np.einsum("ncijhw,nchw->cij", col, gy.astype(x.dtype))
    return np.ascontiguousarray(gW[:, None])


# Winograd's F(4x4, 3x3) (Lavin & Gray 2016): a 4x4 output tile Y of a 3x3 filter g over a 6x6 input
# tile d is Y = AT [(G g G^T) * (BT d BT^T)] AT^T. minidl.functions.winograd uses them with the kernels
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


def check_out(op, out, shape, dtype):
    """A new array of this shape and dtype, or ``out`` after checking it is one (C-contiguous)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if getattr(out, "shape", None) != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        got = f"{out.dtype} {tuple(out.shape)}" if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"{op}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}, got {got}")
    return out


def check_winograd_tiles(op, x, L, s, TH, TW):
    """Check the arguments of winograd_tiles; x is channels-last (N, Hp, Wp, C), L (AO, AI)."""
    check_array(op, "x", x, 4)
    check_array(op, "L", L, 2)
    for name, value in (("s", s), ("TH", TH), ("TW", TW)):
        _check_int(op, name, value, 1)
    AI = L.shape[1]
    if x.shape[1] < s * (TH - 1) + AI or x.shape[2] < s * (TW - 1) + AI:
        raise ValueError(f"{op}: {TH}x{TW} tiles of {AI}x{AI} at stride {s} need an input of at least "
                         f"{s * (TH - 1) + AI}x{s * (TW - 1) + AI}, got {x.shape[1]}x{x.shape[2]} (x is N, H, W, C)")


def check_winograd_untiles(op, M, L, s, TH, TW, Hp, Wp):
    """Check the arguments of winograd_untiles; M is (AI*AI, N*TH*TW, K), L (AO, AI)."""
    check_array(op, "M", M, 3)
    check_array(op, "L", L, 2)
    for name, value in (("s", s), ("TH", TH), ("TW", TW)):
        _check_int(op, name, value, 1)
    AO, AI = L.shape
    if M.shape[0] != AI * AI or M.shape[1] % (TH * TW):
        raise ValueError(f"{op}: M must be (AI*AI, N*TH*TW, K) = ({AI * AI}, N*{TH * TW}, K) for L of "
                         f"{AO}x{AI}, got {M.shape}")
    if Hp < s * (TH - 1) + AO or Wp < s * (TW - 1) + AO:
        raise ValueError(f"{op}: {TH}x{TW} tiles of {AO}x{AO} at stride {s} need an output of at least "
                         f"{s * (TH - 1) + AO}x{s * (TW - 1) + AO}, got Hp x Wp = {Hp}x{Wp}")


def check_pad_nhwc(op, x, PT, PL, Hp, Wp):
    """Check that x (N, C, H, W) fits in Hp x Wp at offset (PT, PL); return x's shape."""
    N, C, H, W = check_array(op, "x", x, 4).shape
    if min(PT, PL) < 0 or Hp < PT + H or Wp < PL + W:
        raise ValueError(f"{op}: a {H}x{W} input at offset ({PT}, {PL}) does not fit in Hp x Wp = {Hp}x{Wp}")
    return N, C, H, W


def check_crop_nchw(op, x, PT, PL, H, W):
    """Check that an H x W window at (PT, PL) lies inside x (N, Hp, Wp, C); return x's shape."""
    N, Hp, Wp, C = check_array(op, "x", x, 4).shape
    if min(PT, PL) < 0 or Hp < PT + H or Wp < PL + W:
        raise ValueError(f"{op}: a {H}x{W} window at ({PT}, {PL}) does not fit in the {Hp}x{Wp} input")
    return N, Hp, Wp, C


def pad_nhwc(x, PT, PL, Hp, Wp):
    """x (N, C, H, W) channels-last and zero-padded: out[n, PT + h, PL + w, c] = x[n, c, h, w], zero elsewhere.

    -> (N, Hp, Wp, C), with Hp >= PT + H and Wp >= PL + W (the rows and columns past PT + H, PL + W are zero).
    The Winograd transforms run on this layout: the C values of one pixel are contiguous, so every transform
    is a sum of whole rows of C.
    """
    N, C, H, W = check_pad_nhwc("pad_nhwc", x, PT, PL, Hp, Wp)
    out = np.zeros((N, Hp, Wp, C), dtype=x.dtype)
    out[:, PT:PT + H, PL:PL + W] = x.transpose(0, 2, 3, 1)
    return out


def crop_nchw(x, PT, PL, H, W, out=None):
    """The inverse of pad_nhwc: x (N, Hp, Wp, C) -> (N, C, H, W), out[n, c, h, w] = x[n, PT + h, PL + w, c]."""
    N, Hp, Wp, C = check_crop_nchw("crop_nchw", x, PT, PL, H, W)
    out = check_out("crop_nchw", out, (N, C, H, W), x.dtype)
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
    check_winograd_tiles("winograd_tiles", x, L, s, TH, TW)
    N, C = x.shape[0], x.shape[3]
    AO, AI = L.shape
    # patches[i, j, n, th, tw, c] = x[n, s*th + i, s*tw + j, c]
    patches = np.stack([np.stack([x[:, i:i + s * (TH - 1) + 1:s, j:j + s * (TW - 1) + 1:s] for j in range(AI)])
                        for i in range(AI)])
    V = np.einsum("ai,bj,ijnuvc->abnuvc", L.astype(x.dtype), L.astype(x.dtype), patches)
    out = check_out("winograd_tiles", out, (AO * AO, N * TH * TW, C), x.dtype)
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
    check_winograd_untiles("winograd_untiles", M, L, s, TH, TW, Hp, Wp)
    AO, AI = L.shape
    N, K = M.shape[1] // (TH * TW), M.shape[2]
    Y = np.einsum("ia,jb,abnuvk->ijnuvk", L.astype(M.dtype), L.astype(M.dtype), M.reshape(AI, AI, N, TH, TW, K))
    out = check_out("winograd_untiles", out, (N, Hp, Wp, K), M.dtype)
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
    N, C, H, W = check_array("max_pool2d_forward", "x", x, 4).shape
    OH, OW = window_geometry("max_pool2d_forward", H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode, pool=True)
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


def check_max_pool2d_backward(op, gy, indices, H, W):
    check_array(op, "gy", gy, 4)
    _check_int(op, "H", H, 1)
    _check_int(op, "W", W, 1)
    check_same_shape(op, "indices", indices, "gy", gy.shape)
    if indices.dtype.kind not in "iu":
        raise ValueError(f"{op}: indices must be an integer array, got {indices.dtype}")


def indices_out_of_range(op, indices, H, W):
    return ValueError(f"{op}: indices must lie in [0, H*W) = [0, {H * W}), "
                      f"got values in [{indices.min()}, {indices.max()}]")


def max_pool2d_backward(gy, indices, H, W):
    """Route each output gradient to the input element that was the max (overlapping windows add up).

        gx[n, c].flat[indices[n, c, oh, ow]] += gy[n, c, oh, ow]

    gy, indices (N, C, OH, OW) -> gx (N, C, H, W).
    """
    op = "max_pool2d_backward"
    check_max_pool2d_backward(op, gy, indices, H, W)
    N, C, OH, OW = gy.shape
    if indices.size and (indices.min() < 0 or indices.max() >= H * W):
        raise indices_out_of_range(op, indices, H, W)
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
    op = "avg_pool2d_forward"
    N, C, H, W = check_array(op, "x", x, 4).shape
    OH, OW = window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode, pool=True)
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
    op = "avg_pool2d_backward"
    N, C, OH, OW = check_array(op, "gy", gy, 4).shape
    check_output_hw(op, "gy", (OH, OW), window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode,
                                                        pool=True), H, W)
    divisor = np.outer(avg_pool_divisor(H, KH, SH, PH, OH, count_include_pad),
                       avg_pool_divisor(W, KW, SW, PW, OW, count_include_pad))
    g = gy / divisor.astype(gy.dtype)
    gxpad = _pad_for_windows(np.zeros((N, C, H, W), dtype=gy.dtype), OH, OW, KH, KW, SH, SW, PH, PW, value=0)
    for i in range(KH):
        for j in range(KW):
            gxpad[:, :, i:i + SH * (OH - 1) + 1:SH, j:j + SW * (OW - 1) + 1:SW] += g
    return np.ascontiguousarray(gxpad[:, :, PH:PH + H, PW:PW + W])


def check_eps(op, eps):
    if not eps >= 0:
        raise ValueError(f"{op}: eps must be >= 0, got {eps!r}")


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
    op = "batch_norm_forward_train"
    N, C, H, W = check_array(op, "x", x, 4).shape
    check_per_channel(op, "gamma", gamma, C)
    check_per_channel(op, "beta", beta, C)
    check_eps(op, eps)
    if N * H * W == 0:
        raise ValueError(f"{op}: needs at least one value per channel, got x of shape {x.shape}")
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
    op = "batch_norm_forward_eval"
    C = check_array(op, "x", x, 4).shape[1]
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        check_per_channel(op, name, v, C)
    check_eps(op, eps)
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
    op = "batch_norm_backward"
    N, C, H, W = check_array(op, "gy", gy, 4).shape
    check_same_shape(op, "x", x, "gy", gy.shape)
    for name, v in (("gamma", gamma), ("mean", mean), ("invstd", invstd)):
        check_per_channel(op, name, v, C)
    M = N * H * W
    if M == 0:
        raise ValueError(f"{op}: needs at least one value per channel, got gy of shape {gy.shape}")
    gy64 = gy.astype(np.float64)
    xhat = (x.astype(np.float64) - _per_channel(mean)) * _per_channel(invstd)
    dbeta = gy64.sum(axis=(0, 2, 3))
    dgamma = (gy64 * xhat).sum(axis=(0, 2, 3))
    gx = _per_channel(gamma) * _per_channel(invstd) / M * (M * gy64 - _per_channel(dbeta) - xhat * _per_channel(dgamma))
    return gx.astype(gy.dtype), dgamma.astype(gy.dtype), dbeta.astype(gy.dtype)


def check_lrn_size(op, size):
    _check_int(op, "size", size, 1)


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
    check_array("lrn_forward", "x", x, 4)
    check_lrn_size("lrn_forward", size)
    scale = k + alpha * _channel_window_sum(x.astype(np.float64) ** 2, size // 2, (size - 1) // 2)
    y = x * scale ** (-beta)
    return y.astype(x.dtype), scale.astype(x.dtype)


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    """Gradient of lrn_forward. Channel c' uses c in its sum when c' - (size-1)//2 <= c <= c' + size//2:

        gx[c] = gy[c] * scale[c]**(-beta)
                - 2 * alpha * beta * x[c] * sum over those c' of gy[c'] * y[c'] / scale[c']
    """
    op = "lrn_backward"
    check_array(op, "gy", gy, 4)
    for name, a in (("x", x), ("y", y), ("scale", scale)):
        check_same_shape(op, name, a, "gy", gy.shape)
    check_lrn_size(op, size)
    gy64, scale64 = gy.astype(np.float64), scale.astype(np.float64)
    ratio = gy64 * y / scale64
    gx = gy64 * scale64 ** (-beta) - 2 * alpha * beta * x * _channel_window_sum(ratio, (size - 1) // 2, size // 2)
    return gx.astype(gy.dtype)
