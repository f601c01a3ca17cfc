"""The window geometry of every kernel, and the argument checks the dispatchers of ``minidl.kernels`` run
once before any kernel set (reference, cpu, gpu) sees its arguments.

Each check raises ValueError naming the kernel, what it expected and what it got. The kernel sets
themselves check nothing: they compute, assuming arguments that passed here (notation:
``minidl.kernels.reference``).
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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


def check_int(op, name, value, minimum):
    if type(value) is int and value >= minimum:   # the common case, checked first: this runs on every call
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")


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
        check_int(op, name, value, minimum)
    out = window_count(size, k, s, p, d, ceil_mode)
    if out < 1:
        raise ValueError(f"{op}: a kernel of {k} with dilation {d} spans {d * (k - 1) + 1}, more than the "
                         f"padded size {size} + 2*{p} = {size + 2 * p}"
                         + (f" by at least the stride {s}, even with ceil_mode" if ceil_mode else ""))
    return out


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


def check_per_channel(op, C, **vectors):
    """Per-channel vectors (gamma, beta, running stats, ...) must have shape (C,)."""
    for name, a in vectors.items():
        if getattr(a, "shape", None) != (C,):
            got = tuple(a.shape) if hasattr(a, "shape") else type(a).__name__
            raise ValueError(f"{op}: {name} must have shape (C,) = ({C},), got {got}")


def window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, DH=1, DW=1, ceil_mode=False, pool=False):
    """Check a 2-d window (kernel, stride, padding, dilation) against an H x W input; return (OH, OW).

    For pooling (``pool=True``) the padding may be at most half the kernel, as in PyTorch. Without
    ceil_mode the dilated kernel must fit in the padded input; with it, see conv_output_size.
    """
    for name, value, minimum in (("H", H, 1), ("W", W, 1), ("KH", KH, 1), ("KW", KW, 1), ("SH", SH, 1),
                                 ("SW", SW, 1), ("PH", PH, 0), ("PW", PW, 0), ("DH", DH, 1), ("DW", DW, 1)):
        check_int(op, name, value, minimum)
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


def check_out(op, out, shape, dtype):
    """``out`` (if given) must be a C-contiguous array of this shape and dtype."""
    if out is None:
        return
    if getattr(out, "shape", None) != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        got = f"{out.dtype} {tuple(out.shape)}" if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"{op}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}, got {got}")


def windows(op, x, KH, KW, SH, SW, PH, PW, DH=1, DW=1, ceil_mode=False, pool=False):
    """x (N, C, H, W) under a window: im2col, im2col_gemm and the pooling forward kernels."""
    N, C, H, W = check_array(op, "x", x, 4).shape
    window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, DH, DW, ceil_mode, pool)


def columns(op, col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    """col2im's col (N, C, KH, KW, OH, OW), or col2im_gemm's (C, KH, KW, N, OH, OW), for an H x W input."""
    shape = check_array(op, "col", col, 6).shape
    KH, KW, OH, OW = (shape[2], shape[3], shape[4], shape[5]) if op == "col2im" else (shape[1], shape[2], shape[4], shape[5])
    check_output_hw(op, "col", (OH, OW), window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, DH, DW), H, W)


def depthwise_conv2d(x, W, PH, PW):
    """x (N, C, H, W) and one filter per channel, W (C, 1, KH, KW)."""
    op = "depthwise_conv2d"
    N, C, H, Wd = check_array(op, "x", x, 4).shape
    check_array(op, "W", W, 4)
    if W.shape[0] != C or W.shape[1] != 1:
        raise ValueError(f"{op}: W must be C x 1 x KH x KW with C = {C} (one filter per channel), "
                         f"got shape {W.shape}")
    window_geometry(op, H, Wd, W.shape[2], W.shape[3], 1, 1, PH, PW)


def depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW):
    op = "depthwise_conv2d_grad_weight"
    N, C, H, W = check_array(op, "x", x, 4).shape
    expected = (N, C) + window_geometry(op, H, W, KH, KW, 1, 1, PH, PW)
    check_same_shape(op, "gy", gy, "the output", expected)


def direct_conv2d(x, W, PH, PW, SH=1, SW=1, b=None):
    """x (N, C, H, W) and filters W (K, C, KH, KW) over all C channels (one group), stride SH, SW (a stride
    other than 1 needs float32: the register-tiled kernel); b None or (K,)."""
    op = "direct_conv2d"
    N, C, H, Wd = check_array(op, "x", x, 4).shape
    check_array(op, "W", W, 4)
    if W.shape[1] != C:
        raise ValueError(f"{op}: W must be K x C x KH x KW with C = {C} (one group), got shape {W.shape}")
    if b is not None:
        check_same_shape(op, "b", check_array(op, "b", b, 1), "W's output channels", (W.shape[0],))
    window_geometry(op, H, Wd, W.shape[2], W.shape[3], SH, SW, PH, PW)
    _unit_stride_unless_float32(op, x, SH, SW)


def _unit_stride_unless_float32(op, x, SH, SW):
    if (SH, SW) != (1, 1) and x.dtype != np.float32:
        raise ValueError(f"{op}: a stride other than 1 needs float32 arrays (the register-tiled kernel), got "
                         f"stride ({SH}, {SW}) and {x.dtype}")


def direct_conv2d_grad_input(gy, W, H, Wd, PH, PW):
    op = "direct_conv2d_grad_input"
    N = check_array(op, "gy", gy, 4).shape[0]
    K, C, KH, KW = check_array(op, "W", W, 4).shape
    check_int(op, "H", H, 1)
    check_int(op, "Wd", Wd, 1)
    expected = (N, K) + window_geometry(op, H, Wd, KH, KW, 1, 1, PH, PW)
    check_same_shape(op, "gy", gy, "the output", expected)


def direct_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    op = "direct_conv2d_grad_weight"
    N, C, H, W = check_array(op, "x", x, 4).shape
    K = check_array(op, "gy", gy, 4).shape[1]
    expected = (N, K) + window_geometry(op, H, W, KH, KW, SH, SW, PH, PW)
    check_same_shape(op, "gy", gy, "the output", expected)
    _unit_stride_unless_float32(op, x, SH, SW)


def _float_array(op, name, a):
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise ValueError(f"{op}: {name} must be an array, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{op}: {name} must be float32 or float64, got {a.dtype}")


def tanh_scales(op, outer, inner):
    """The scales of outer * tanh(inner * x) (kernels.tanh_forward/backward, F.scaled_tanh): finite, nonzero."""
    for name, value in (("outer", outer), ("inner", inner)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value == 0:
            raise ValueError(f"{op}: {name} must be a finite nonzero number, got {value!r}")


def tanh_forward(x, outer=1.0, inner=1.0):
    """x: a float32/float64 array of any shape; outer, inner: finite nonzero numbers."""
    _float_array("tanh_forward", "x", x)
    tanh_scales("tanh_forward", outer, inner)


def tanh_backward(gy, y, outer=1.0, inner=1.0):
    _float_array("tanh_backward", "gy", gy)
    _float_array("tanh_backward", "y", y)
    check_same_shape("tanh_backward", "y", y, "gy", gy.shape)
    tanh_scales("tanh_backward", outer, inner)


def relu_forward(x):
    """x: a float32/float64 array of any shape."""
    _float_array("relu_forward", "x", x)


def relu_backward(gy, y):
    _float_array("relu_backward", "gy", gy)
    _float_array("relu_backward", "y", y)
    check_same_shape("relu_backward", "y", y, "gy", gy.shape)


def pad_nhwc(x, PT, PL, Hp, Wp):
    """x (N, C, H, W) must fit in Hp x Wp at offset (PT, PL)."""
    N, C, H, W = check_array("pad_nhwc", "x", x, 4).shape
    if min(PT, PL) < 0 or Hp < PT + H or Wp < PL + W:
        raise ValueError(f"pad_nhwc: a {H}x{W} input at offset ({PT}, {PL}) does not fit in Hp x Wp = {Hp}x{Wp}")


def crop_nchw(x, PT, PL, H, W, out=None):
    """An H x W window at (PT, PL) must lie inside x (N, Hp, Wp, C)."""
    N, Hp, Wp, C = check_array("crop_nchw", "x", x, 4).shape
    if min(PT, PL) < 0 or Hp < PT + H or Wp < PL + W:
        raise ValueError(f"crop_nchw: a {H}x{W} window at ({PT}, {PL}) does not fit in the {Hp}x{Wp} input")
    check_out("crop_nchw", out, (N, C, H, W), x.dtype)


def _tile_arguments(op, L, s, TH, TW):
    check_array(op, "L", L, 2)
    for name, value in (("s", s), ("TH", TH), ("TW", TW)):
        check_int(op, name, value, 1)


def winograd_tiles(x, L, s, TH, TW, out=None):
    """x is channels-last (N, Hp, Wp, C), L (AO, AI)."""
    op = "winograd_tiles"
    check_array(op, "x", x, 4)
    _tile_arguments(op, L, s, TH, TW)
    AO, AI = L.shape
    if x.shape[1] < s * (TH - 1) + AI or x.shape[2] < s * (TW - 1) + AI:
        raise ValueError(f"{op}: {TH}x{TW} tiles of {AI}x{AI} at stride {s} need an input of at least "
                         f"{s * (TH - 1) + AI}x{s * (TW - 1) + AI}, got {x.shape[1]}x{x.shape[2]} (x is N, H, W, C)")
    check_out(op, out, (AO * AO, x.shape[0] * TH * TW, x.shape[3]), x.dtype)


def winograd_untiles(M, L, s, TH, TW, Hp, Wp, out=None):
    """M is (AI*AI, N*TH*TW, K), L (AO, AI)."""
    op = "winograd_untiles"
    check_array(op, "M", M, 3)
    _tile_arguments(op, L, s, TH, TW)
    AO, AI = L.shape
    if M.shape[0] != AI * AI or M.shape[1] % (TH * TW):
        raise ValueError(f"{op}: M must be (AI*AI, N*TH*TW, K) = ({AI * AI}, N*{TH * TW}, K) for L of "
                         f"{AO}x{AI}, got {M.shape}")
    if Hp < s * (TH - 1) + AO or Wp < s * (TW - 1) + AO:
        raise ValueError(f"{op}: {TH}x{TW} tiles of {AO}x{AO} at stride {s} need an output of at least "
                         f"{s * (TH - 1) + AO}x{s * (TW - 1) + AO}, got Hp x Wp = {Hp}x{Wp}")
    check_out(op, out, (M.shape[1] // (TH * TW), Hp, Wp, M.shape[2]), M.dtype)


def max_pool2d_backward(gy, indices, H, W):
    op = "max_pool2d_backward"
    check_array(op, "gy", gy, 4)
    check_int(op, "H", H, 1)
    check_int(op, "W", W, 1)
    check_same_shape(op, "indices", indices, "gy", gy.shape)
    if indices.dtype.kind not in "iu":
        raise ValueError(f"{op}: indices must be an integer array, got {indices.dtype}")


def indices_out_of_range(op, indices, H, W):
    """The error for max-pool indices outside an H x W plane (the kernels find them while they run)."""
    return ValueError(f"{op}: indices must lie in [0, H*W) = [0, {H * W}), "
                      f"got values in [{indices.min()}, {indices.max()}]")


def avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    op = "avg_pool2d_backward"
    N, C, OH, OW = check_array(op, "gy", gy, 4).shape
    check_output_hw(op, "gy", (OH, OW), window_geometry(op, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode,
                                                        pool=True), H, W)


def check_eps(op, eps):
    if not eps >= 0:
        raise ValueError(f"{op}: eps must be >= 0, got {eps!r}")


def _one_value_per_channel(op, name, a):
    N, C, H, W = a.shape
    if N * H * W == 0:
        raise ValueError(f"{op}: needs at least one value per channel, got {name} of shape {a.shape}")


def batch_norm_forward_train(x, gamma, beta, eps):
    op = "batch_norm_forward_train"
    C = check_array(op, "x", x, 4).shape[1]
    check_per_channel(op, C, gamma=gamma, beta=beta)
    check_eps(op, eps)
    _one_value_per_channel(op, "x", x)


def batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    op = "batch_norm_forward_eval"
    C = check_array(op, "x", x, 4).shape[1]
    check_per_channel(op, C, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    check_eps(op, eps)


def batch_norm_backward(gy, x, gamma, mean, invstd):
    op = "batch_norm_backward"
    C = check_array(op, "gy", gy, 4).shape[1]
    check_same_shape(op, "x", x, "gy", gy.shape)
    check_per_channel(op, C, gamma=gamma, mean=mean, invstd=invstd)
    _one_value_per_channel(op, "gy", gy)


def lrn_forward(x, size, alpha, beta, k):
    check_array("lrn_forward", "x", x, 4)
    check_int("lrn_forward", "size", size, 1)


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    op = "lrn_backward"
    check_array(op, "gy", gy, 4)
    for name, a in (("x", x), ("y", y), ("scale", scale)):
        check_same_shape(op, name, a, "gy", gy.shape)
    check_int(op, "size", size, 1)
