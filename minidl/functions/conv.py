"""Convolution by im2col + GEMM, and its transpose.

Notation (used throughout minidl's conv and pooling code):
    N batch, C input channels, H x W input size, K filters (output channels), G groups,
    KH x KW kernel, SH x SW stride, PH x PW zero padding, DH x DW dilation, OH x OW output size:
    OH = (H + 2 PH - DH (KH - 1) - 1) // SH + 1.

im2col unrolls every KH x KW window of x into a column, so the convolution becomes one matrix product
per group for a whole chunk of n images:  y[:, g] = W[g] (K/G x C/G*KH*KW) @ col[g] (C/G*KH*KW x n*OH*OW).
A 1x1 convolution needs no im2col at all: x itself, channels first (C x n*H*W), is the column matrix.
"""
import os

from minidl import kernels
from minidl.functions import winograd
from minidl.functions._checks import as_input, check_ndim, check_same_device, pair
from minidl.tensor import Function


# Column-buffer elements per chunk of images (2 MB in float32: it stays in cache between im2col and the
# GEMM; a ResNet-20 step measured 22% faster than with 32 MB chunks). The buffer is 9x a 3x3 conv's input: whole
# batches of it (VGG conv1_2 at batch 8: 925 MB; the 19 buffers of a ResNet-20 step at batch 128: 870 MB)
# would dominate memory, so forward and backward each build it a chunk of images at a time and keep none.
COL_CHUNK_ELEMENTS = 2 ** 19
# A layer whose whole column buffer is at most this (2 MB in float32: LeNet-5 C5 at batch 64) builds it
# once, for the whole batch, and keeps it for backward instead of building it again. Since im2col became a
# vectorised loop, keeping C3's 3.8 MB too (2^20) or C1's 5 MB (2^21) gained nothing measurable (a LeNet-5
# step at batch 64: 4.9-5.3 ms in each setting, 5 alternating rounds) and C3's cost a third of the step's memory.
COL_KEEP_ELEMENTS = 2 ** 19

# Which 3x3 convolutions (stride 1, padding 1, no dilation or groups) run by Winograd's F(4x4, 3x3)
# (minidl.functions.winograd) instead of im2col + GEMM:
#   "auto"    float32 with at least 32 input and output channels, at least 128 output tiles of 4x4, and
#             at most 2^22 elements of transformed filters (36 C K: up to 256 x 256 channels) (the default):
#             where it measured faster. One thread, forward + backward, im2col + GEMM -> Winograd: ResNet-18
#             CIFAR's 64 x 32 x 32 306 -> 149 ms, 128 x 16 x 16 285 -> 114 ms, 256 x 8 x 8 279 -> 116 ms
#             (batch 128); ResNet-20's 32 x 16 x 16 23 -> 15 ms. With 16 channels the gain was within noise
#             (27.3 -> 26.1 ms per layer, none in a ResNet-20 step), so they keep im2col's smaller rounding
#             error. Few tiles lose: 512 x 7 x 7 at batch 16 (64 tiles) 111 -> 119 ms, the 36 transformed
#             filter matrices outweighing the tiles. 512 x 512 filters gain (4x4 maps, batch 128: 285 -> 173
#             ms) but their 38 MB of transformed filters, twice over in backward (U and dU), raised ResNet-18's
#             training memory 7%, to 1.42-1.52x PyTorch's: past the 1.5x this project allows itself.
#   "off"     never (im2col + GEMM only: ~10x smaller rounding error in float32)
#   "always"  every such convolution, any dtype and size (the tests use it to check the path in float64)
# Read from the environment variable MINIDL_WINOGRAD at import; set this attribute to change it later.
WINOGRAD = os.environ.get("MINIDL_WINOGRAD", "auto").strip().lower()
WINOGRAD_MODES = ("auto", "off", "always")
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_TILES = 128
WINOGRAD_MAX_FILTER_ELEMENTS = 2 ** 22


class Conv2d(Function):
    """y = W @ col per group, over a chunk of images at once, with col laid out (C/G*KH*KW, n*OH*OW).

    One large GEMM per group runs near the BLAS peak; N small per-image GEMMs (and NumPy's broadcasting
    matmul of the weights against a stack of images, which does not call BLAS) ran 10-70x slower on CIFAR
    shapes. The price is a transpose of y from (K, n, OH, OW) to NCHW, and of gy back, both memory-bound.
    Backward builds the columns again rather than keeping them, unless they are small (COL_KEEP_ELEMENTS).
    """

    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def _is_pointwise(self, W):
        return W.shape[2:] == (1, 1) and self.padding == (0, 0)

    def _depthwise(self, x, W):
        """Whether this is a depthwise convolution (groups = C = K) with stride 1 and no dilation, which
        kernels.depthwise_conv2d runs directly. Xception's 3x3 (16 x 128 x 56 x 56), one thread: forward 19 -> 8 ms,
        backward 106 -> 28 ms against the grouped GEMM (C matmuls of 1 x KH*KW by KH*KW x N*OH*OW)."""
        return (self.groups == x.shape[1] == W.shape[0] and W.shape[1] == 1 and self.stride == (1, 1)
                and self.dilation == (1, 1) and self.padding[0] < W.shape[2] and self.padding[1] < W.shape[3]
                and kernels.has_kernel(x, "depthwise_conv2d"))

    def _winograd(self, x, W):
        """Whether this convolution runs by Winograd's F(4x4, 3x3) (see WINOGRAD)."""
        if WINOGRAD not in WINOGRAD_MODES:
            raise ValueError(f"conv2d: minidl.functions.conv.WINOGRAD (or MINIDL_WINOGRAD) must be one of "
                             f"{WINOGRAD_MODES}, got {WINOGRAD!r}")
        if WINOGRAD == "off" or W.shape[2:] != (3, 3) or self.groups != 1 or self.stride != (1, 1) \
                or self.padding != (1, 1) or self.dilation != (1, 1) or x.dtype != W.dtype \
                or not kernels.has_kernel(x, "winograd_tiles"):
            return False
        if WINOGRAD == "always":
            return True
        N, C, H, W_in = x.shape
        TH, TW = winograd.tiles(H, W_in)
        return (x.dtype == self.xp.float32 and min(C, W.shape[0]) >= WINOGRAD_MIN_CHANNELS
                and N * TH * TW >= WINOGRAD_MIN_TILES
                and winograd.ALPHA ** 2 * C * W.shape[0] <= WINOGRAD_MAX_FILTER_ELEMENTS)

    def _chunks(self, N, per_image):
        # A chunk's columns hold at least twice the weights' elements: with many large filters (ResNet-18's
        # 512-channel 3x3 layers on 4x4 maps) 2 MB of columns is a handful of images, and every chunk's GEMMs
        # read the 9 MB of weights (and add into the 9 MB dW) again. That layer, forward + backward at batch
        # 128, one thread: 338 -> 288 ms; ResNet-50's 512-channel 3x3 at batch 16: 133 -> 111 ms. Twice or
        # 8 times measured the same; the smaller keeps the transient buffers small.
        limit = max(COL_CHUNK_ELEMENTS, 2 * self.W.size)
        step = max(1, min(N, limit // max(per_image, 1)))
        return [(n0, min(n0 + step, N)) for n0 in range(0, N, step)]

    def _columns(self, x, W, OH, OW):
        """The column matrix of images x: (G, C/G*KH*KW, n*OH*OW)."""
        n, C = x.shape[:2]
        G, (KH, KW) = self.groups, W.shape[2:]
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        if self._is_pointwise(W):   # a 1x1 convolution: x itself, channels first, is the column matrix
            xs = x if (SH, SW) == (1, 1) else x[:, :, ::SH, ::SW][:, :, :OH, :OW]
            return self.xp.ascontiguousarray(xs.transpose(1, 0, 2, 3)).reshape(G, C // G, n * OH * OW)
        col = kernels.im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH, DW)
        return col.reshape(G, C // G * KH * KW, n * OH * OW)

    def forward(self, x, W, b=None):
        xp = self.xp
        N, C, H, W_in = x.shape
        K, Cg, KH, KW = W.shape
        G = self.groups
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        OH = kernels.conv_output_size(H, KH, SH, PH, DH)
        OW = kernels.conv_output_size(W_in, KW, SW, PW, DW)
        self.x, self.W, self.col = x, W, None
        self.winograd = self._winograd(x, W)   # decided once: backward takes the same path
        if self.winograd:
            y = winograd.conv3x3_forward(x, W, xp)
            if b is not None:
                y += b.reshape(1, K, 1, 1)
            return y
        if self._depthwise(x, W):
            y = kernels.depthwise_conv2d(x, W, PH, PW)
            if b is not None:
                y += b.reshape(1, K, 1, 1)
            return y
        Wm = W.reshape(G, K // G, Cg * KH * KW)
        if N * C * KH * KW * OH * OW <= COL_KEEP_ELEMENTS:   # small: one chunk, kept for backward
            self.col = self._columns(x, W, OH, OW)
            y_t = _grouped_matmul(Wm, self.col)
            y = xp.ascontiguousarray(y_t.reshape(K, N, OH, OW).transpose(1, 0, 2, 3))
        else:
            y = xp.empty((N, K, OH, OW), dtype=xp.result_type(x.dtype, W.dtype))
            for n0, n1 in self._chunks(N, C * KH * KW * OH * OW):
                y_t = _grouped_matmul(Wm, self._columns(x[n0:n1], W, OH, OW))    # (G, K/G, n*OH*OW)
                y[n0:n1] = y_t.reshape(K, n1 - n0, OH, OW).transpose(1, 0, 2, 3)
        if b is not None:
            y += b.reshape(1, K, 1, 1)
        return y

    def backward(self, gy):
        xp, x, W = self.xp, self.x, self.W
        N, C, H, W_in = x.shape
        K, Cg, KH, KW = W.shape
        G = self.groups
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        OH, OW = gy.shape[2:]
        # A network's first conv reads the images, which need no gradient: skip a GEMM and the col2im.
        need_gx = self.inputs[0].requires_grad
        if self.winograd:
            gx, gW = winograd.conv3x3_backward(x, W, gy, need_gx, xp)
            return (gx, gW) if len(self.inputs) == 2 else (gx, gW, gy.sum(axis=(0, 2, 3)))
        if self._depthwise(x, W):   # dX: dY, padded by K-1-P, convolved with the flipped filters
            gx = kernels.depthwise_conv2d(gy, W[:, :, ::-1, ::-1], KH - 1 - PH, KW - 1 - PW) if need_gx else None
            gW = kernels.depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW)
            return (gx, gW) if len(self.inputs) == 2 else (gx, gW, gy.sum(axis=(0, 2, 3)))
        Wm_t = W.reshape(G, K // G, Cg * KH * KW).swapaxes(-1, -2)
        pointwise = self._is_pointwise(W)
        gx = (xp.zeros if pointwise and (SH, SW) != (1, 1) else xp.empty)(x.shape, dtype=gy.dtype) if need_gx else None
        gW = xp.zeros((G, K // G, Cg * KH * KW), dtype=gy.dtype)
        gb = xp.zeros(K, dtype=gy.dtype)
        # For stride 1 and "same" padding, dX is a convolution of dY (padded by K-1-P = P) with the flipped,
        # transposed filters: im2col of dY and a GEMM that writes C x n*H*W, instead of a GEMM that writes the
        # 9x larger C*KH*KW x n*OH*OW gradient of the columns and a col2im to sum it. The same columns of dY
        # give dW too, flipped: sum over n,h,w of x[c,h,w] dY[k,h+i'-P,w+j'-P] is dW[k,c,KH-1-i',KW-1-j'],
        # so x needs no im2col in backward at all, only a transpose to C x n*H*W. ResNet-20's step measured
        # 8% faster (636 -> 585 ms, one thread) than with im2col of x and dY both. Unpadded, dY would need K-1
        # of padding (LeNet C3: 4x slower), and a first conv (no dX wanted) builds the smaller columns of x.
        same = need_gx and self.col is None and G == 1 and (SH, SW, DH, DW) == (1, 1, 1, 1) \
            and (2 * PH, 2 * PW) == (KH - 1, KW - 1) and not pointwise
        if same:
            W_flipped = xp.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(C, K * KH * KW)
            gW_flipped = xp.zeros((K * KH * KW, C), dtype=gy.dtype)
        chunks = [(0, N)] if self.col is not None else self._chunks(N, max(C, K if same else 0) * KH * KW * OH * OW)
        for n0, n1 in chunks:
            n = n1 - n0
            if same:
                if len(self.inputs) == 3:
                    gb += gy[n0:n1].sum(axis=(0, 2, 3))
                col_gy = kernels.im2col_gemm(gy[n0:n1], KH, KW, 1, 1, PH, PW).reshape(K * KH * KW, n * H * W_in)
                x_t = xp.ascontiguousarray(x[n0:n1].transpose(1, 0, 2, 3)).reshape(C, n * H * W_in)
                # (col @ x_t.T) rather than the transposed (x_t @ col.T): BLAS measured 5-15% faster this way.
                gW_flipped += col_gy @ x_t.T                                           # (K*KH*KW, C)
                gx_t = W_flipped @ col_gy                                              # (C, n*H*W)
                gx[n0:n1] = gx_t.reshape(C, n, H, W_in).transpose(1, 0, 2, 3)
                continue
            gy_t = xp.ascontiguousarray(gy[n0:n1].transpose(1, 0, 2, 3)).reshape(G, K // G, n * OH * OW)
            if len(self.inputs) == 3:
                gb += gy_t.reshape(K, n * OH * OW).sum(axis=-1)
            col = self.col if self.col is not None else self._columns(x[n0:n1], W, OH, OW)
            gW += _grouped_matmul(col, gy_t.swapaxes(-1, -2)).swapaxes(-1, -2)
            if not need_gx:
                continue
            gcol = _grouped_matmul(Wm_t, gy_t)   # (G, C/G*KH*KW, n*OH*OW)
            if pointwise:
                gx[n0:n1, :, ::SH, ::SW][:, :, :OH, :OW] = gcol.reshape(C, n, OH, OW).transpose(1, 0, 2, 3)
            else:
                gx[n0:n1] = kernels.col2im_gemm(gcol.reshape(C, KH, KW, n, OH, OW), H, W_in, SH, SW, PH, PW, DH, DW)
        if same:
            gW = gW_flipped.reshape(K, KH, KW, C)[:, ::-1, ::-1, :].transpose(0, 3, 1, 2)
            gW = xp.ascontiguousarray(gW)
        gW = gW.reshape(W.shape)
        if len(self.inputs) == 2:
            return gx, gW
        return gx, gW, gb


class Conv2dExtraPadding(Conv2d):
    """Conv2d of x with (EH, EW) more zero rows and columns at the bottom and right than at the top and
    left: padding="same" with an even dilated kernel span, whose DH (KH - 1) rows of padding do not split
    evenly (PyTorch, too, pads the input by the difference and then runs the symmetric convolution).
    A subclass, so that the common, symmetric convolution pays nothing for it."""

    def __init__(self, stride, padding, dilation, groups, extra):
        super().__init__(stride, padding, dilation, groups)
        self.extra = extra

    def forward(self, x, W, b=None):
        self.x_hw = x.shape[2:]
        x = self.xp.pad(x, ((0, 0), (0, 0), (0, self.extra[0]), (0, self.extra[1])))
        return super().forward(x, W, b)

    def backward(self, gy):
        gx, *rest = super().backward(gy)
        if gx is not None:   # the gradient of the padded x, cut back to x
            gx = self.xp.ascontiguousarray(gx[:, :, :self.x_hw[0], :self.x_hw[1]])
        return (gx, *rest)


PADDING_STRINGS = ("same", "valid")


def string_padding(padding, kernel_size, stride=1, dilation=1, op="conv2d"):
    """PyTorch's padding strings as zero padding: ((PH, PW) on every side, (EH, EW) more at the bottom/right).

        "valid"   no padding: (0, 0), (0, 0)
        "same"    an output as large as the input (stride 1 only): DH (KH - 1) rows in all, PH = DH (KH - 1) // 2
                  at the top and the rest at the bottom, so an even kernel (KH = 4: 1 above, 2 below) pads
                  one more row at the bottom (EH = 1) and one more column at the right, as PyTorch does.

    >>> string_padding("same", (4, 3))
    ((1, 1), (1, 0))
    """
    if padding not in PADDING_STRINGS:
        raise ValueError(f"{op}: padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    stride, dilation = pair(stride, op, "stride", minimum=1), pair(dilation, op, "dilation", minimum=1)
    if padding == "valid":
        return (0, 0), (0, 0)
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1 (PyTorch does not support it for strided "
                         f"convolutions), got stride {stride}")
    total = [d * (k - 1) for k, d in zip(pair(kernel_size, op, "kernel_size", minimum=1), dilation)]
    return tuple(t // 2 for t in total), tuple(t % 2 for t in total)


def _grouped_matmul(a, b):
    """a (G, M, K) @ b (G, K, P) -> (G, M, P): a single 2-D GEMM when G == 1, which BLAS runs best."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return a @ b


def _conv_args(op, x, W, b, stride, padding, dilation, groups):
    x, W = as_input(x, op), as_input(W, op)
    check_ndim(x, 4, op)
    check_ndim(W, 4, op, "W", "K x C/groups x KH x KW" if op == "conv2d" else "C x K/groups x KH x KW")
    stride = pair(stride, op, "stride", minimum=1)
    if not (op == "conv2d" and isinstance(padding, str)):   # conv2d resolves "same" and "valid" itself
        padding = pair(padding, op, "padding", minimum=0)
    dilation = pair(dilation, op, "dilation", minimum=1)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    inputs = [x, W]
    if b is not None:
        b = as_input(b, op)
        inputs.append(b)
    check_same_device(op, *inputs)
    return inputs, stride, padding, dilation


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002 - torch's names
    """2-D convolution (cross-correlation, as in every framework) of N x C x H x W ``x`` with
    K x C/groups x KH x KW filters ``W`` and an optional bias of shape (K,).

    ``groups`` splits the channels into independent convolutions: AlexNet's two towers (groups=2),
    ResNeXt's cardinality, and Xception's depthwise convolutions (groups=C). ``padding`` is an int, a
    pair, or PyTorch's "valid" (none) or "same" (stride 1: OH = H, OW = W; see string_padding).

    >>> y = conv2d(minidl.randn(8, 3, 32, 32), minidl.randn(16, 3, 5, 5), padding=2)   # 8 x 16 x 32 x 32
    >>> y = conv2d(minidl.randn(8, 3, 32, 32), minidl.randn(16, 3, 4, 4), padding="same")   # the same
    """
    op = "conv2d"
    x, W, b = input, weight, bias
    inputs, stride, padding, dilation = _conv_args(op, x, W, b, stride, padding, dilation, groups)
    x, W = inputs[0], inputs[1]
    N, C, H, W_in = x.shape
    K, Cg, KH, KW = W.shape
    if C != Cg * groups:
        expected = Cg * groups
        raise ValueError(f"conv2d: x has {C} channels but W {tuple(W.shape)} with groups={groups} expects {expected}")
    if K % groups:
        raise ValueError(f"conv2d: {K} filters cannot be split into {groups} groups")
    extra = (0, 0)
    if isinstance(padding, str):
        padding, extra = string_padding(padding, (KH, KW), stride, dilation)
    for size, k, p, e, d, axis in ((H, KH, padding[0], extra[0], dilation[0], "height"),
                                   (W_in, KW, padding[1], extra[1], dilation[1], "width")):
        if d * (k - 1) + 1 > size + 2 * p + e:
            raise ValueError(f"conv2d: kernel {axis} {k} (dilation {d}) is larger than the padded input {axis} "
                             f"{size} + 2*{p}; x has shape {tuple(x.shape)}")
    if len(inputs) == 3 and inputs[2].shape != (K,):
        raise ValueError(f"conv2d: b must have shape ({K},), got {tuple(inputs[2].shape)}")
    if extra != (0, 0):
        return Conv2dExtraPadding(stride, padding, dilation, groups, extra)(*inputs)
    return Conv2d(stride, padding, dilation, groups)(*inputs)


class ConvTranspose2d(Function):
    """The adjoint of Conv2d with respect to its input: forward is Conv2d's backward, and vice versa."""

    def __init__(self, stride, padding, dilation, groups, out_size):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.out_size = out_size

    def forward(self, x, W, b=None):
        N, C, H, W_in = x.shape
        _, Kg, KH, KW = W.shape
        G = self.groups
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        OH, OW = self.out_size
        self.x, self.W = x, W
        Wm = W.reshape(G, C // G, Kg * KH * KW)
        col = Wm.swapaxes(-1, -2) @ x.reshape(N, G, C // G, H * W_in)  # (N, G, K/G*KH*KW, H*W)
        col = col.reshape(N, G * Kg, KH, KW, H, W_in)
        if kernels.window_count(OH, KH, SH, PH, DH) == H and kernels.window_count(OW, KW, SW, PW, DW) == W_in:
            y = kernels.col2im(col, OH, OW, SH, SW, PH, PW, DH, DW)
        else:
            y = self._col2im_past_the_windows(col)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def _col2im_past_the_windows(self, col):
        """col2im when output_padding >= stride (allowed while it is smaller than the dilation): a conv2d
        over the OH x OW output would have more than H x W windows, so col2im cannot take OH x OW. Sum the
        windows onto the unpadded canvas they cover, FH = (H - 1) SH + DH (KH - 1) + 1 tall, then cut the
        output out of it: y[h] = canvas[h + PH], zero where h + PH is past the canvas."""
        N, K, KH, KW, H, W_in = col.shape
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        OH, OW = self.out_size
        FH, FW = (H - 1) * SH + DH * (KH - 1) + 1, (W_in - 1) * SW + DW * (KW - 1) + 1
        canvas = kernels.col2im(col, FH, FW, SH, SW, 0, 0, DH, DW)
        rows, cols = max(0, min(OH, FH - PH)), max(0, min(OW, FW - PW))
        y = self.xp.zeros((N, K, OH, OW), dtype=canvas.dtype)
        y[:, :, :rows, :cols] = canvas[:, :, PH:PH + rows, PW:PW + cols]
        return y

    def backward(self, gy):
        N, C, H, W_in = self.x.shape
        _, Kg, KH, KW = self.W.shape
        G = self.groups
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        col = kernels.im2col(gy, KH, KW, SH, SW, PH, PW, DH, DW)[..., :H, :W_in]
        col = self.xp.ascontiguousarray(col).reshape(N, G, Kg * KH * KW, H * W_in)
        Wm = self.W.reshape(G, C // G, Kg * KH * KW)
        gx = (Wm @ col).reshape(self.x.shape)
        xg = self.x.reshape(N, G, C // G, H * W_in)
        gW = (xg @ col.swapaxes(-1, -2)).sum(axis=0).reshape(self.W.shape)
        if len(self.inputs) == 2:
            return gx, gW
        return gx, gW, gy.sum(axis=(0, 2, 3))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """Transposed convolution ("deconvolution", Zeiler & Fergus's deconvnet): the gradient of conv2d with
    respect to its input, used as a layer. ``W`` has shape C x K/groups x KH x KW, and

        OH = (H - 1) SH - 2 PH + DH (KH - 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    x, W, b = input, weight, bias
    inputs, stride, padding, dilation = _conv_args(op, x, W, b, stride, padding, dilation, groups)
    x, W = inputs[0], inputs[1]
    output_padding = pair(output_padding, op, "output_padding", minimum=0)
    N, C, H, W_in = x.shape
    Cw, Kg, KH, KW = W.shape
    if C != Cw:
        raise ValueError(f"{op}: x has {C} channels but W {tuple(W.shape)} expects {Cw}")
    if C % groups:
        raise ValueError(f"{op}: {C} input channels cannot be split into {groups} groups")
    if output_padding[0] >= max(stride[0], dilation[0]) or output_padding[1] >= max(stride[1], dilation[1]):
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either stride {stride} "
                         f"or dilation {dilation} (PyTorch's rule), in each dimension")
    out_size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op_ + 1 for n, s, p, d, k, op_ in
                     zip((H, W_in), stride, padding, dilation, (KH, KW), output_padding))
    if min(out_size) < 1:
        raise ValueError(f"{op}: the output would be {out_size}, too small: check padding {padding}")
    if len(inputs) == 3 and inputs[2].shape != (Kg * groups,):
        raise ValueError(f"{op}: b must have shape ({Kg * groups},), got {tuple(inputs[2].shape)}")
    return ConvTranspose2d(stride, padding, dilation, groups, out_size)(*inputs)
