"""minidl's differentiable functions, used as ``import minidl.functions as F``.

Every op is a Function class (forward and backward on arrays) with a lowercase wrapper that checks its
inputs and says in words what is wrong.
"""
from minidl.functions.activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from minidl.functions.conv import conv2d, conv_transpose2d
from minidl.functions.dropout import drop_path, dropout
from minidl.functions.linear import linear
from minidl.functions.loss import cross_entropy, mse_loss
from minidl.functions.normalization import batch_norm, local_response_norm
from minidl.functions.pooling import (adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d,
                                      max_unpool2d)
from minidl.functions.shape import cat, concat, pad, split
from minidl.ops import (abs, add, broadcast_to, div, exp, flatten, getitem, log, matmul, max, mean, min, mul,
                        neg, pow, reshape, sqrt, sub, sum, sum_to, transpose)

__all__ = [
    "abs", "adaptive_avg_pool2d", "add", "avg_pool2d", "batch_norm", "broadcast_to", "cat", "concat",
    "conv2d", "conv_transpose2d", "cross_entropy", "div", "drop_path", "dropout", "exp", "flatten",
    "getitem", "global_avg_pool2d", "leaky_relu", "linear", "local_response_norm", "log", "log_softmax",
    "matmul", "max", "max_pool2d", "max_unpool2d", "mean", "min", "mse_loss", "mul", "neg", "pad", "pow",
    "relu", "reshape", "sigmoid", "softmax", "split", "sqrt", "sub", "sum", "sum_to", "tanh", "transpose",
]
