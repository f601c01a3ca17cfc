"""Convolution by im2col + GEMM, and its transpose.

Notation (used throughout minidl's conv and pooling code):
    N batch, C input channels, H x W input size, K filters (output channels), G groups,
    KH x KW kernel, SH x SW stride, PH x PW zero padding, DH x DW dilation, OH x OW output size:
    OH = (H + 2 PH - DH (KH - 1) - 1) // SH + 1.

im2col unrolls every KH x KW window of x into a column, so the convolution becomes one matrix product
per group for the whole batch:  y[:, g] = W[g] (K/G x C/G*KH*KW) @ col[g] (C/G*KH*KW x N*OH*OW).
How to compute it fast (in chunks of images, Winograd, depthwise, direct, 1x1) is minidl.kernels.conv's business.
"""
from minidl import kernels
from minidl.functions._checks import as_input, check_ndim, check_same_device, pair
from minidl.kernels.conv import channel_sums, conv2d_backward, conv2d_forward, grouped_matmul
from minidl.tensor import Function


class Conv2d(Function):
    """y[:, g] = W[g] @ im2col(x)[g] for each group g: one GEMM per group over the whole batch.

    Forward unrolls every KH x KW window of x into a column of col (G, C/G*KH*KW, N*OH*OW), multiplies by
    the filters (G, K/G, C/G*KH*KW), and turns (K, N, OH, OW) back into NCHW. Backward is the chain rule
    through that product: dW = gy @ col^T and dcol = W^T @ gy, which col2im adds back onto the pixels it
    was read from. One large GEMM per group runs near the BLAS peak, where N per-image ones do not.

    ``minidl.kernels.conv`` decides when another algorithm computes the same faster (Winograd, depthwise,
    direct for few channels, 1x1, or im2col + GEMM a chunk of images at a time when the whole batch's
    columns are too large to keep):
    then ``kernels.conv.conv2d_forward`` returns y and the algorithm, and backward asks it too.
    """

    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x, W, b=None):
        self.x, self.W, self.col, self.kept = x, W, None, {}
        fast = conv2d_forward(x, W, self.stride, self.padding, self.dilation, self.groups, self.kept, b)
        if fast is not None:
            y, self.algorithm = fast        # with the bias added
            return y
        self.algorithm = "im2col"
        N, C, H, W_in = x.shape
        K, Cg, KH, KW = W.shape
        G, (SH, SW), (PH, PW), (DH, DW) = self.groups, self.stride, self.padding, self.dilation
        OH, OW = kernels.conv_output_size(H, KH, SH, PH, DH), kernels.conv_output_size(W_in, KW, SW, PW, DW)
        self.col = kernels.im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH, DW).reshape(G, Cg * KH * KW, N * OH * OW)
        y_t = grouped_matmul(W.reshape(G, K // G, Cg * KH * KW), self.col)          # (G, K/G, N*OH*OW)
        y = self.xp.ascontiguousarray(y_t.reshape(K, N, OH, OW).transpose(1, 0, 2, 3))
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, gy):
        # A network's first conv reads the images, which need no gradient: skip a GEMM and the col2im.
        need_gx, need_gb = self.inputs[0].requires_grad, len(self.inputs) == 3
        if self.col is None:
            gx, gW, gb = conv2d_backward(self.x, self.W, gy, self.algorithm, self.stride, self.padding,
                                         self.dilation, self.groups, need_gx, need_gb, self.kept)
        else:
            N, C, H, W_in = self.x.shape
            K, Cg, KH, KW = self.W.shape
            G, (SH, SW), (PH, PW), (DH, DW) = self.groups, self.stride, self.padding, self.dilation
            OH, OW = gy.shape[2:]
            gy_t = self.xp.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(G, K // G, N * OH * OW)
            gb = gy_t.reshape(K, N * OH * OW).sum(axis=-1) if need_gb else None
            gW = grouped_matmul(self.col, gy_t.swapaxes(-1, -2)).swapaxes(-1, -2).reshape(self.W.shape)  # gy @ col^T
            gx = None
            if need_gx:
                gcol = grouped_matmul(self.W.reshape(G, K // G, Cg * KH * KW).swapaxes(-1, -2), gy_t)  # W^T @ gy
                gx = kernels.col2im_gemm(gcol.reshape(C, KH, KW, N, OH, OW), H, W_in, SH, SW, PH, PW, DH, DW)
        return (gx, gW, gb) if need_gb else (gx, gW)

    def backward_graph(self, gy):
        """Second order: dX = conv_transpose2d(dY, W), dW = a convolution of x with dY, db = sum of dY, as
        Functions whose own backward is made of the same three (minidl.functions.conv_grad), so conv2d is
        differentiable any number of times, through the same kernels as this first-order backward."""
        from minidl.functions import conv_grad   # it builds on this module's Functions
        return conv_grad.conv2d_backward_graph(self, gy)


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
        return gx, gW, channel_sums(gy)

    def backward_graph(self, gy):
        """Second order: dX = conv2d(dY, W), dW = a convolution of dY with x (minidl.functions.conv_grad)."""
        from minidl.functions import conv_grad   # it builds on this module's Functions
        return conv_grad.conv_transpose2d_backward_graph(self, gy)


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
