"""The gradients of conv2d and conv_transpose2d as Functions of their own, for second (and higher) order.

Shape letters as in ``minidl.functions.conv``; ``conv`` below stands for (stride, padding, dilation, groups).
For y = conv2d(x, W) and its gradient dY:

    dX = conv_transpose2d(dY, W), sized to x              (ConvTranspose2d: the adjoint of conv2d in x)
    dW = conv2d_weight(x, dY)                             (Conv2dWeightGrad: a convolution of x with dY)
         dW[k, c, i, j] = sum over n, oh, ow of dY[n, k, oh, ow] xpad[n, g C/G + c, oh SH + i DH, ow SW + j DW]
                          (g = k // (K/G), the group of filter k)
    db = dY summed over N, OH, OW

Each of the three Functions is bilinear, and the gradient of each is made of the other two
(h is the incoming gradient of the Function's output):

    conv2d(x, W)              dx = conv_transpose2d(h, W)       dW = conv2d_weight(x, h)
    conv_transpose2d(a, W)    da = conv2d(h, W), cut to a       dW = conv2d_weight(h, a)
    conv2d_weight(x, g)       dx = conv_transpose2d(g, h)       dg = conv2d(x, h), cut to g

so a gradient of any order of a convolution runs the same im2col + GEMM kernels as the forward pass.
"Cut to": a transposed convolution whose output_padding is at least its stride (possible when the
dilation is larger) has fewer input rows than the convolution over its output has windows; the windows
past them are dropped.
"""
from minidl import kernels
from minidl.autograd import no_grad
from minidl.functions.conv import Conv2d, Conv2dExtraPadding, ConvTranspose2d
from minidl.functions.shape import pad
from minidl.tensor import Function, Tensor


def _cut(y, hw):
    """y (a Tensor) cut to its first hw = (H, W) rows and columns, if it has more."""
    return y if tuple(y.shape[2:]) == tuple(hw) else y[:, :, :hw[0], :hw[1]]


class Conv2dWeightGrad(Function):
    """dW of conv2d as a Function of (x, dY): dW (K, C/G, KH, KW) = dY^T @ columns of x, per group.

    x (N, C, H, W) and dY (N, K, OH, OW); windows of x past dY's OH x OW are dropped (see the module
    docstring). The columns of the whole batch are built at once, as in Conv2d's plain path (kernels.conv's
    chunked and faster algorithms serve the first-order pass only).
    """

    def __init__(self, stride, padding, dilation, groups, kernel_hw):
        self.conv = (stride, padding, dilation, groups)
        self.kernel_hw = kernel_hw

    def forward(self, x, gy):
        xp = self.xp
        (SH, SW), (PH, PW), (DH, DW), G = self.conv
        KH, KW = self.kernel_hw
        N, C = x.shape[:2]
        K, OH, OW = gy.shape[1:]
        col = kernels.im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH, DW)[..., :OH, :OW]   # (C, KH, KW, N, OH, OW)
        col = xp.ascontiguousarray(col).reshape(G, C // G * KH * KW, N * OH * OW)
        gy_t = xp.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(G, K // G, N * OH * OW)
        return (gy_t @ col.swapaxes(-1, -2)).reshape(K, C // G, KH, KW)

    def backward(self, gW):
        with no_grad():
            return tuple(None if g is None else g.data for g in self.backward_graph(Tensor(gW)))

    def backward_graph(self, gW):
        x, gy = self.inputs
        gx = ConvTranspose2d(*self.conv, x.shape[2:])(gy, gW) if x.requires_grad else None
        ggy = _cut(Conv2d(*self.conv)(x, gW), gy.shape[2:]) if gy.requires_grad else None
        return gx, ggy


def conv2d_backward_graph(f, gy):
    """Conv2d's (and Conv2dExtraPadding's) gradients (dX, dW[, db]) as differentiable Functions of dY."""
    x, W = f.inputs[:2]
    conv = (f.stride, f.padding, f.dilation, f.groups)
    EH, EW = f.extra if isinstance(f, Conv2dExtraPadding) else (0, 0)
    H, W_in = x.shape[2:]
    gx = gW = None
    if x.requires_grad:   # the gradient of the bottom/right-padded x, cut back to x
        gx = _cut(ConvTranspose2d(*conv, (H + EH, W_in + EW))(gy, W), (H, W_in))
    if W.requires_grad:
        x_padded = x if (EH, EW) == (0, 0) else pad(x, (0, EW, 0, EH))
        gW = Conv2dWeightGrad(*conv, W.shape[2:])(x_padded, gy)
    if len(f.inputs) == 2:
        return gx, gW
    return gx, gW, gy.sum(dim=(0, 2, 3))


def conv_transpose2d_backward_graph(f, gy):
    """ConvTranspose2d's gradients (dX, dW[, db]) as differentiable Functions of dY."""
    x, W = f.inputs[:2]
    conv = (f.stride, f.padding, f.dilation, f.groups)
    gx = _cut(Conv2d(*conv)(gy, W), x.shape[2:]) if x.requires_grad else None
    gW = Conv2dWeightGrad(*conv, W.shape[2:])(gy, x) if W.requires_grad else None
    if len(f.inputs) == 2:
        return gx, gW
    return gx, gW, gy.sum(dim=(0, 2, 3))
