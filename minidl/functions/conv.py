"""Convolution by im2col + GEMM, and its transpose.

Notation (used throughout minidl's conv and pooling code):
    N batch, C input channels, H x W input size, K filters (output channels), G groups,
    KH x KW kernel, SH x SW stride, PH x PW zero padding, DH x DW dilation, OH x OW output size:
    OH = (H + 2 PH - DH (KH - 1) - 1) // SH + 1.

im2col unrolls every KH x KW window of x into a column, so the convolution becomes one matrix product
per image and group:  y[n, g] = W[g] (K/G x C/G*KH*KW) @ col[n, g] (C/G*KH*KW x OH*OW).
A 1x1 convolution needs no im2col at all: x itself, viewed as (C x H*W), is the column matrix.
"""
from minidl import kernels
from minidl.functions._checks import as_input, check_ndim, check_same_device, pair
from minidl.tensor import Function


class Conv2d(Function):
    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def _is_pointwise(self, W):
        return W.shape[2:] == (1, 1) and self.padding == (0, 0)

    def forward(self, x, W, b=None):
        N, C, H, W_in = x.shape
        K, Cg, KH, KW = W.shape
        G = self.groups
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        OH = kernels.conv_output_size(H, KH, SH, PH, DH)
        OW = kernels.conv_output_size(W_in, KW, SW, PW, DW)
        self.x_shape = x.shape
        if self._is_pointwise(W):
            xs = x if (SH, SW) == (1, 1) else self.xp.ascontiguousarray(x[:, :, ::SH, ::SW][:, :, :OH, :OW])
            col = xs.reshape(N, G, Cg, OH * OW)
        else:
            col = kernels.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW).reshape(N, G, Cg * KH * KW, OH * OW)
        self.col, self.W = col, W
        y = W.reshape(G, K // G, Cg * KH * KW) @ col  # (N, G, K/G, OH*OW): one GEMM per image and group
        y = y.reshape(N, K, OH, OW)
        if b is not None:
            y += b.reshape(1, K, 1, 1)
        return y

    def backward(self, gy):
        N, C, H, W_in = self.x_shape
        K, Cg, KH, KW = self.W.shape
        G = self.groups
        (SH, SW), (PH, PW), (DH, DW) = self.stride, self.padding, self.dilation
        OH, OW = gy.shape[2:]
        gy_g = gy.reshape(N, G, K // G, OH * OW)
        Wm = self.W.reshape(G, K // G, Cg * KH * KW)
        gW = (gy_g @ self.col.swapaxes(-1, -2)).sum(axis=0).reshape(self.W.shape)
        gcol = Wm.swapaxes(-1, -2) @ gy_g  # (N, G, C/G*KH*KW, OH*OW)
        if self._is_pointwise(self.W):
            gcol = gcol.reshape(N, C, OH, OW)
            if (SH, SW) == (1, 1):
                gx = gcol
            else:
                gx = self.xp.zeros(self.x_shape, dtype=gy.dtype)
                gx[:, :, ::SH, ::SW][:, :, :OH, :OW] = gcol
        else:
            gx = kernels.col2im(gcol.reshape(N, C, KH, KW, OH, OW), H, W_in, SH, SW, PH, PW, DH, DW)
        if len(self.inputs) == 2:
            return gx, gW
        return gx, gW, gy.sum(axis=(0, 2, 3))


def _conv_args(op, x, W, b, stride, padding, dilation, groups):
    x, W = as_input(x, op), as_input(W, op)
    check_ndim(x, 4, op)
    check_ndim(W, 4, op, "W", "K x C/groups x KH x KW" if op == "conv2d" else "C x K/groups x KH x KW")
    stride = pair(stride, op, "stride", minimum=1)
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


def conv2d(x, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every framework) of N x C x H x W ``x`` with
    K x C/groups x KH x KW filters ``W`` and an optional bias of shape (K,).

    ``groups`` splits the channels into independent convolutions: AlexNet's two towers (groups=2),
    ResNeXt's cardinality, and Xception's depthwise convolutions (groups=C).

    >>> y = conv2d(minidl.randn(8, 3, 32, 32), minidl.randn(16, 3, 5, 5), padding=2)   # 8 x 16 x 32 x 32
    """
    op = "conv2d"
    inputs, stride, padding, dilation = _conv_args(op, x, W, b, stride, padding, dilation, groups)
    x, W = inputs[0], inputs[1]
    N, C, H, W_in = x.shape
    K, Cg, KH, KW = W.shape
    if C != Cg * groups:
        expected = Cg * groups
        raise ValueError(f"conv2d: x has {C} channels but W {tuple(W.shape)} with groups={groups} expects {expected}")
    if K % groups:
        raise ValueError(f"conv2d: {K} filters cannot be split into {groups} groups")
    for size, k, s, p, d, axis in ((H, KH, stride[0], padding[0], dilation[0], "height"),
                                   (W_in, KW, stride[1], padding[1], dilation[1], "width")):
        if d * (k - 1) + 1 > size + 2 * p:
            raise ValueError(f"conv2d: kernel {axis} {k} (dilation {d}) is larger than the padded input {axis} "
                             f"{size} + 2*{p}; x has shape {tuple(x.shape)}")
    if len(inputs) == 3 and inputs[2].shape != (K,):
        raise ValueError(f"conv2d: b must have shape ({K},), got {tuple(inputs[2].shape)}")
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
        y = kernels.col2im(col.reshape(N, G * Kg, KH, KW, H, W_in), OH, OW, SH, SW, PH, PW, DH, DW)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
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


def conv_transpose2d(x, W, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution ("deconvolution", Zeiler & Fergus's deconvnet): the gradient of conv2d with
    respect to its input, used as a layer. ``W`` has shape C x K/groups x KH x KW, and

        OH = (H - 1) SH - 2 PH + DH (KH - 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
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
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than stride {stride} or dilation")
    out_size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op_ + 1 for n, s, p, d, k, op_ in
                     zip((H, W_in), stride, padding, dilation, (KH, KW), output_padding))
    if min(out_size) < 1:
        raise ValueError(f"{op}: the output would be {out_size}, too small: check padding {padding}")
    if len(inputs) == 3 and inputs[2].shape != (Kg * groups,):
        raise ValueError(f"{op}: b must have shape ({Kg * groups},), got {tuple(inputs[2].shape)}")
    return ConvTranspose2d(stride, padding, dilation, groups, out_size)(*inputs)
