"""Max, average and adaptive average pooling, and max unpooling (with the pooling switches).

Shape letters as in ``minidl.functions.conv``. With ``ceil_mode`` the output size rounds up, so the last
window may hang over the edge (it must still start inside the input or its left padding), and the kernel
may be larger than the padded input (PyTorch: max_pool2d of a 2x4 input with a 3x3/2 window, ceil_mode,
is 1x2): see ``minidl.kernels.reference.window_count``.

Second order (``backward(create_graph=True)``): every pooling gradient is linear in dY, so each is a Function
whose own gradient is its adjoint, and all orders run the first-order kernels:
    max_pool2d     dX = scatter of dY by the switches (MaxPool2dBackward), whose adjoint is the gather of
                   the same switches (SwitchGather); the switches are constants, so d2y/dx2 = 0 (x without ties)
    max_unpool2d   dX = the gather of dY by the switches (times the mask of the switches that were written)
    avg_pool2d, adaptive_avg_pool2d   y = A x, dX = A^T dY (AvgPool2dBackward, AdaptiveAvgPool2dBackward),
                   whose adjoint is the pooling A again
"""
from minidl import backend, kernels
from minidl.functions._checks import as_input, check_ndim, pair
from minidl.ops import through
from minidl.tensor import Function, Tensor


def _pool_args(op, x, kernel_size, stride, padding, ceil_mode):
    x = as_input(x, op)
    check_ndim(x, 4, op)
    kernel = pair(kernel_size, op, "kernel_size", minimum=1)
    stride = kernel if stride is None else pair(stride, op, "stride", minimum=1)
    padding = pair(padding, op, "padding", minimum=0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    H, W = x.shape[2:]
    if min(H, W) < 1:
        raise ValueError(f"{op}: x must have at least one row and one column, got shape {tuple(x.shape)}")
    if (kernels.window_count(H, kernel[0], stride[0], padding[0], 1, ceil_mode) < 1
            or kernels.window_count(W, kernel[1], stride[1], padding[1], 1, ceil_mode) < 1):
        overhang = f" by at least the stride {stride}, even with ceil_mode" if ceil_mode else ""
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input {H}x{W} + 2*{padding}{overhang}; "
                         f"x has shape {tuple(x.shape)}")
    return x, kernel, stride, padding


class MaxPool2d(Function):
    def __init__(self, kernel, stride, padding, ceil_mode):
        self.args = (*kernel, *stride, *padding, ceil_mode)

    def forward(self, x):
        self.x_hw = x.shape[2:]
        y, self.indices = kernels.max_pool2d_forward(x, *self.args)
        return y

    def backward(self, gy):
        return kernels.max_pool2d_backward(gy, self.indices, *self.x_hw)

    def backward_graph(self, gy):   # recorded as depending on x through the switches, as torch
        return through(MaxPool2dBackward(self.indices, self.x_hw)(gy), self.inputs[0])


def _gather(g, indices):
    """out[n, c, o] = g[n, c].flat[indices[n, c, o]]: g (N, C, H, W), indices (N, C, OH, OW) -> (N, C, OH, OW)."""
    N, C = indices.shape[:2]
    flat = backend.get_array_module(g).take_along_axis(g.reshape(N, C, -1), indices.reshape(N, C, -1), axis=2)
    return flat.reshape(indices.shape)


class MaxPool2dBackward(Function):
    """max_pool2d's gradient as a Function of dY: gx[n, c].flat[indices[n, c, o]] += gy[n, c, o] (the
    scatter by the switches; overlapping windows add up). Linear in gy; its adjoint is SwitchGather."""
    saves_arrays = False

    def __init__(self, indices, x_hw):
        self.indices, self.x_hw = indices, x_hw

    def forward(self, gy):
        return kernels.max_pool2d_backward(gy, self.indices, *self.x_hw)

    def backward(self, ggx):
        return _gather(ggx, self.indices)

    def backward_graph(self, ggx):
        return SwitchGather(self.indices, self.x_hw)(ggx)


class SwitchGather(Function):
    """out[n, c, o] = g[n, c].flat[indices[n, c, o]]: read each switch's element (N, C, H, W) -> indices' shape.
    The adjoint of MaxPool2dBackward (and, masked, the gradient of max_unpool2d)."""
    saves_arrays = False

    def __init__(self, indices, x_hw):
        self.indices, self.x_hw = indices, x_hw

    def forward(self, g):
        return _gather(g, self.indices)

    def backward(self, gy):
        return kernels.max_pool2d_backward(gy, self.indices, *self.x_hw)

    def backward_graph(self, gy):
        return MaxPool2dBackward(self.indices, self.x_hw)(gy)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002 - torch's
               return_indices=False):
    """The maximum of each KH x KW window (stride defaults to the kernel size), with
    ``torch.nn.functional.max_pool2d``'s arguments in its order.

    With ``return_indices`` also returns the *switches*: for each output, the flat index h*W + w of the
    winning input in its plane (PyTorch's convention), which ``max_unpool2d`` uses to put values back,
    as Zeiler & Fergus's deconvnet does. Dilated pooling is not implemented (``dilation`` must be 1).
    """
    x = input
    if pair(dilation, "max_pool2d", "dilation", minimum=1) != (1, 1):
        raise NotImplementedError(f"max_pool2d: dilation {dilation} is not implemented, only 1 (no network of the "
                                  "notes uses dilated pooling)")
    x, kernel, stride, padding = _pool_args("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    f = MaxPool2d(kernel, stride, padding, ceil_mode)
    y = f(x)
    if return_indices:
        return y, Tensor(f.indices)
    return y


class MaxUnpool2d(Function):
    def __init__(self, indices, out_hw):
        self.indices, self.out_hw = indices, out_hw

    def forward(self, x):
        xp = self.xp
        N, C = x.shape[:2]
        flat_index = self.indices.reshape(N, C, -1)
        y = xp.zeros((N, C, self.out_hw[0] * self.out_hw[1]), dtype=x.dtype)
        xp.put_along_axis(y, flat_index, x.reshape(N, C, -1), axis=2)
        # Overlapping windows can share a switch; the last write wins, so only it receives gradient.
        order = xp.zeros(y.shape, dtype=xp.int64)
        position = xp.broadcast_to(xp.arange(flat_index.shape[2]), flat_index.shape)
        xp.put_along_axis(order, flat_index, position, axis=2)
        self.written = xp.take_along_axis(order, flat_index, axis=2) == position
        return y.reshape(N, C, *self.out_hw)

    def backward(self, gy):
        N, C = gy.shape[:2]
        flat_index = self.indices.reshape(N, C, -1)
        gx = self.xp.take_along_axis(gy.reshape(N, C, -1), flat_index, axis=2) * self.written
        return gx.reshape(self.indices.shape)

    def backward_graph(self, gy):
        written = Tensor(self.written.reshape(self.indices.shape).astype(gy.dtype))
        return SwitchGather(self.indices, self.out_hw)(gy) * written


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):  # noqa: A002 - torch's
    """Partial inverse of max_pool2d: put each value back where its switch says, zeros elsewhere.

    The output is (H - 1) SH - 2 PH + KH tall unless ``output_size`` (H, W) says otherwise.
    """
    op = "max_unpool2d"
    x = as_input(input, op)
    check_ndim(x, 4, op)
    idx = backend.as_device_array(indices.data if isinstance(indices, Tensor) else indices, x.device)
    if tuple(idx.shape) != tuple(x.shape):
        raise ValueError(f"{op}: indices have shape {tuple(idx.shape)} but x has shape {tuple(x.shape)}")
    kernel = pair(kernel_size, op, "kernel_size", minimum=1)
    stride = kernel if stride is None else pair(stride, op, "stride", minimum=1)
    padding = pair(padding, op, "padding", minimum=0)
    if output_size is None:
        out_hw = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], stride, padding, kernel))
    else:
        out_hw = tuple(int(n) for n in tuple(output_size)[-2:])
    if idx.size and bool(((idx < 0) | (idx >= out_hw[0] * out_hw[1])).any()):
        raise ValueError(f"{op}: indices must lie in [0, {out_hw[0] * out_hw[1]}) for an output of {out_hw}; "
                         f"pass output_size= matching the tensor that was pooled")
    return MaxUnpool2d(idx, out_hw)(x)


class AvgPool2d(Function):
    def __init__(self, kernel, stride, padding, ceil_mode, count_include_pad):
        self.args = (*kernel, *stride, *padding, ceil_mode, count_include_pad)

    def forward(self, x):
        self.x_hw = x.shape[2:]
        return kernels.avg_pool2d_forward(x, *self.args)

    def backward(self, gy):
        return kernels.avg_pool2d_backward(gy, *self.x_hw, *self.args)

    def backward_graph(self, gy):   # recorded as depending on x (zero derivative), as torch
        return through(AvgPool2dBackward(self.args, self.x_hw)(gy), self.inputs[0])


class AvgPool2dBackward(AvgPool2d):
    """avg_pool2d's gradient as a Function of dY: for y = A x, gx = A^T gy. Its forward and backward are
    AvgPool2d's backward and forward swapped (A^T's adjoint is A), so it runs the same kernels."""
    saves_arrays = False

    def __init__(self, args, x_hw):
        self.args, self.x_hw = args, x_hw

    def forward(self, gy):
        return AvgPool2d.backward(self, gy)

    def backward(self, ggx):
        return AvgPool2d.forward(self, ggx)

    def backward_graph(self, ggx):
        kernel, stride, padding, rest = self.args[0:2], self.args[2:4], self.args[4:6], self.args[6:]
        return AvgPool2d(kernel, stride, padding, *rest)(ggx)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """The mean of each KH x KW window. ``count_include_pad`` counts zero padding in the divisor (the
    default, as PyTorch); windows cut off by ``ceil_mode`` count only the part inside the padded input."""
    if divisor_override is not None:
        raise NotImplementedError("avg_pool2d: divisor_override is not implemented (the divisor is the window's "
                                  "count, as count_include_pad says)")
    x, kernel, stride, padding = _pool_args("avg_pool2d", input, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad)(x)


class AdaptiveAvgPool2d(Function):
    """Average over the bins [floor(i H / OH), ceil((i + 1) H / OH)), as PyTorch defines them."""

    def __init__(self, out_hw):
        self.out_hw = out_hw

    def _bins(self, size, out):
        return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]

    def forward(self, x):
        self.x_shape = x.shape
        H, W = x.shape[2:]
        self.rows, self.cols = self._bins(H, self.out_hw[0]), self._bins(W, self.out_hw[1])
        y = self.xp.empty(x.shape[:2] + self.out_hw, dtype=x.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.cols):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return y

    def backward(self, gy):
        gx = self.xp.zeros(self.x_shape, dtype=gy.dtype)
        for i, (h0, h1) in enumerate(self.rows):
            for j, (w0, w1) in enumerate(self.cols):
                gx[:, :, h0:h1, w0:w1] += gy[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
        return gx

    def backward_graph(self, gy):   # recorded as depending on x (zero derivative), as torch
        return through(AdaptiveAvgPool2dBackward(self.out_hw, self.x_shape)(gy), self.inputs[0])


class AdaptiveAvgPool2dBackward(AdaptiveAvgPool2d):
    """adaptive_avg_pool2d's gradient as a Function of dY (gx = A^T gy): AdaptiveAvgPool2d with forward and
    backward swapped, as AvgPool2dBackward."""
    saves_arrays = False

    def __init__(self, out_hw, x_shape):
        super().__init__(out_hw)
        self.x_shape = x_shape
        self.rows, self.cols = self._bins(x_shape[2], out_hw[0]), self._bins(x_shape[3], out_hw[1])

    def forward(self, gy):
        return AdaptiveAvgPool2d.backward(self, gy)

    def backward(self, ggx):
        return AdaptiveAvgPool2d.forward(self, ggx)

    def backward_graph(self, ggx):
        return AdaptiveAvgPool2d(self.out_hw)(ggx)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002 - torch's name
    """Average pooling to a fixed ``output_size`` whatever the input size; ``output_size=1`` is global
    average pooling (NiN, GoogLeNet, ResNet: one number per channel instead of big FC layers)."""
    op = "adaptive_avg_pool2d"
    x = as_input(input, op)
    check_ndim(x, 4, op)
    out_hw = pair(output_size, op, "output_size", minimum=1)
    H, W = x.shape[2:]
    if out_hw == (1, 1):
        return x.mean(axis=(2, 3), keepdims=True)
    if H % out_hw[0] == 0 and W % out_hw[1] == 0:
        kernel = (H // out_hw[0], W // out_hw[1])
        return AvgPool2d(kernel, kernel, (0, 0), False, True)(x)
    return AdaptiveAvgPool2d(out_hw)(x)


def global_avg_pool2d(x):
    """N x C x H x W -> N x C x 1 x 1."""
    return adaptive_avg_pool2d(x, 1)
