"""minidl's differentiable functions, used as ``import minidl.functions as F``.

Every op is a Function class (forward and backward on arrays) with a lowercase wrapper that checks its
inputs and says in words what is wrong.
"""
from minidl.functions.activation import (leaky_relu, log_softmax, logsigmoid, relu, scaled_tanh, sigmoid, softmax,
                                         softplus, tanh)
from minidl.functions.conv import conv2d, conv_transpose2d
from minidl.functions.dropout import drop_path, dropout
from minidl.functions.linear import linear
from minidl.functions.loss import cross_entropy, mse_loss
from minidl.functions.normalization import batch_norm, local_response_norm
from minidl.functions.pooling import (adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d,
                                      max_unpool2d)
from minidl.functions.shape import cat, concat, pad, split
from minidl.ops import (abs, add, amax, amin, argmax, argmin, broadcast_to, clamp, clip, clone, div, exp,
                        flatten, getitem, log, matmul, max, maximum, mean, min, minimum, mul, neg, permute, pow,
                        reshape, sqrt, squeeze, std, sub, sum, sum_to, transpose, unsqueeze, var)

__all__ = [
    "abs", "adaptive_avg_pool2d", "add", "amax", "amin", "argmax", "argmin", "avg_pool2d", "batch_norm",
    "broadcast_to", "cat", "clamp", "clip", "clone", "concat", "conv2d", "conv_transpose2d", "cross_entropy",
    "div", "drop_path", "dropout", "exp", "flatten", "getitem", "global_avg_pool2d", "leaky_relu", "linear",
    "local_response_norm", "log", "log_softmax", "logsigmoid", "matmul", "max", "max_pool2d", "max_unpool2d",
    "maximum", "mean", "min", "minimum", "mse_loss", "mul", "neg", "pad", "permute", "pow", "relu", "reshape",
    "scaled_tanh", "sigmoid", "softmax", "softplus", "split", "sqrt", "squeeze", "std", "sub", "sum", "sum_to",
    "tanh", "transpose", "unsqueeze", "var",
]
