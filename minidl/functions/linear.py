"""The fully connected layer's op."""
from minidl import kernels, ops
from minidl.functions._checks import as_input, check_same_device
from minidl.tensor import Function


class Linear(Function):
    def forward(self, x, W, b=None):
        self.x, self.W = x, W
        y = kernels.matmul(x, W.T)
        return y if b is None else y + b

    def backward(self, gy):
        x2 = self.x.reshape(-1, self.x.shape[-1])
        gy2 = gy.reshape(-1, gy.shape[-1])
        gx = kernels.matmul(gy, self.W)
        gW = kernels.matmul(gy2.T, x2)
        if len(self.inputs) == 2:
            return gx, gW
        return gx, gW, gy2.sum(axis=0)

    def backward_graph(self, gy):
        x, W = self.inputs[:2]
        gy2 = ops.reshape(gy, (-1, gy.shape[-1]))
        gx = ops.matmul(gy, W)
        gW = ops.matmul(gy2.T, ops.reshape(x, (-1, x.shape[-1])))
        return (gx, gW) if len(self.inputs) == 2 else (gx, gW, ops.sum(gy2, 0))


def linear(input, weight, bias=None):  # noqa: A002 - torch's names
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
    op = "linear"
    x, W, b = as_input(input, op), as_input(weight, op), bias
    inputs = [x, W]
    if W.ndim != 2:
        raise ValueError(f"{op}: W must be 2-D (out_features x in_features), got shape {tuple(W.shape)}")
    if x.ndim < 1 or x.shape[-1] != W.shape[1]:
        raise ValueError(f"{op}: x has {x.shape[-1] if x.ndim else 0} features (shape {tuple(x.shape)}) but W "
                         f"{tuple(W.shape)} expects {W.shape[1]}")
    if b is not None:
        b = as_input(b, op)
        if b.shape != (W.shape[0],):
            raise ValueError(f"{op}: b must have shape ({W.shape[0]},), got {tuple(b.shape)}")
        inputs.append(b)
    check_same_device(op, *inputs)
    return Linear()(*inputs)
