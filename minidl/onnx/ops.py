"""One converter per minidl Function: ``convert(g, func, xs, ys)`` appends the ONNX nodes computing ``func``.

``g`` is the GraphBuilder, ``func`` the traced Function (its attributes: stride, axes, ...), ``xs`` the
ONNX names of its inputs and ``ys`` the names its outputs must get. ``func.inputs`` are the input tensors
(for their shapes and dtypes) and ``func.output_meta`` the outputs' shapes and dtypes.

Where ONNX's op means something else than minidl's, the converter says how it is made equal:

* LRN: minidl's Function holds the *effective* alpha (the paper's alpha as written, or PyTorch's alpha /
  size already divided); ONNX divides its alpha by ``size``, so it gets ``alpha * size``. ONNX centres an
  even window the other way (floor/ceil swapped), so even sizes are composed from Pad and AveragePool.
* Adaptive average pooling with bins that overlap (input not a multiple of the output): a product of two
  constant averaging matrices, ``A_H @ x @ A_W^T``, the same bins as ``AdaptiveAvgPool2d``.
* Pooling with ``ceil_mode``: ONNX keeps a last window that starts in the right padding, minidl and PyTorch
  drop it; the end padding is made explicit instead. Average windows clipped at the edges divide by their
  own size (count_include_pad counts the padding but not the overhang): Pad, AveragePool and a constant
  per-position scale where ONNX's AveragePool would divide otherwise.
* Indexing other than plain slices with positive steps (ints, arrays, masks): a Gather from the flattened
  tensor with the flat indices NumPy's indexing selects.
* Tanh with scales (``F.scaled_tanh``, outer * tanh(inner * x)): ONNX's Tanh between two Muls.
* LogSigmoid and Softplus: composed in minidl's stable form (ONNX has no log1p; its Softplus has neither
  beta nor the threshold).
"""
import numpy as np
from onnx import helper

from minidl.onnx import ExportError


def _same(op_type):
    """An op ONNX has under another name, with the same inputs and meaning."""
    def convert(g, func, xs, ys):
        g.node(op_type, xs, ys)
    return convert


def _pow(g, func, xs, ys):
    g.node("Pow", [xs[0], g.scalar(func.c, func.inputs[0].dtype, "exponent")], ys)


def _axes_of(func):
    ndim = func.inputs[0].ndim
    return list(range(ndim)) if func.axes is None else [a % ndim for a in func.axes]


def _reduce(g, op_type, x, y, axes, keepdims):
    # ReduceSum takes its axes as an input from opset 13, the other reductions only from opset 18
    if op_type == "ReduceSum" or g.opset >= 18:
        g.node(op_type, [x, g.ints(axes, "axes")], [y], keepdims=int(keepdims))
    else:
        g.node(op_type, [x], [y], axes=axes, keepdims=int(keepdims))


def _sum(g, func, xs, ys):
    _reduce(g, "ReduceSum", xs[0], ys[0], _axes_of(func), func.keepdims)


def _mean(g, func, xs, ys):
    _reduce(g, "ReduceMean", xs[0], ys[0], _axes_of(func), func.keepdims)


def _max_min(g, func, xs, ys):
    _reduce(g, "ReduceMax" if func.take_max else "ReduceMin", xs[0], ys[0], _axes_of(func), func.keepdims)


def _max_min_dim(g, func, xs, ys):
    """Values and (first) indices of the extreme along one dim, as ``torch.max(x, dim)``."""
    axis = func.axis % func.inputs[0].ndim
    _reduce(g, "ReduceMax" if func.take_max else "ReduceMin", xs[0], ys[0], [axis], func.keepdims)
    g.node("ArgMax" if func.take_max else "ArgMin", xs, ys[1:], axis=axis, keepdims=int(func.keepdims),
           select_last_index=0)


def _maximum(g, func, xs, ys):
    g.node("Max" if func.take_max else "Min", xs, ys)


def _clamp(g, func, xs, ys):
    dtype = func.inputs[0].dtype
    bounds = ["" if b is None else g.scalar(b, dtype, "clamp") for b in (func.low, func.high)]
    g.node("Clip", [xs[0]] + bounds, ys)


def _reshape(g, func, xs, ys):
    g.node("Reshape", [xs[0], g.ints(func.output_meta[0][0])], ys)


def _transpose(g, func, xs, ys):
    ndim = func.inputs[0].ndim
    perm = list(range(ndim))[::-1] if func.axes is None else [a % ndim for a in func.axes]
    g.node("Transpose", xs, ys, perm=perm)


def _broadcast_to(g, func, xs, ys):
    g.node("Expand", [xs[0], g.ints(func.shape)], ys)


def _astype(g, func, xs, ys):
    g.node("Cast", xs, ys, to=helper.np_dtype_to_tensor_dtype(func.dtype))


def _getitem(g, func, xs, ys):
    x = func.inputs[0]
    index = func.index if isinstance(func.index, tuple) else (func.index,)
    if all(type(i) is slice for i in index) and len(index) <= x.ndim:
        starts, ends, steps = zip(*(i.indices(n) for i, n in zip(index, x.shape)))
        if all(s > 0 for s in steps):
            g.node("Slice", [xs[0], g.ints(starts, "starts"), g.ints(ends, "ends"),
                             g.ints(range(len(index)), "axes"), g.ints(steps, "steps")], ys)
            return
    flat_index = np.arange(int(np.prod(x.shape)), dtype=np.int64).reshape(x.shape)[func.index]
    flat = g.node("Reshape", [xs[0], g.ints([-1])])
    g.node("Gather", [flat[0], g.const(np.ascontiguousarray(flat_index), "index")], ys, axis=0)


def _softmax(op_type):
    def convert(g, func, xs, ys):
        g.node(op_type, xs, ys, axis=func.axis)
    return convert


def _tanh(g, func, xs, ys):
    """outer * tanh(inner * x) (F.scaled_tanh; plain Tanh when both scales are 1): ONNX's Tanh between two Muls."""
    if func.outer == func.inner == 1:
        g.node("Tanh", xs, ys)
        return
    dtype = func.inputs[0].dtype
    inside = g.node("Mul", [xs[0], g.scalar(func.inner, dtype, "tanh_inner")])
    g.node("Mul", [g.node("Tanh", inside)[0], g.scalar(func.outer, dtype, "tanh_outer")], ys)


def _leaky_relu(g, func, xs, ys):
    g.node("LeakyRelu", xs, ys, alpha=float(func.slope))


def _log1p_exp_neg_abs(g, z, dtype):
    """log(1 + exp(-|z|)): the stable tail shared by log-sigmoid and softplus (ONNX has no log1p)."""
    e = g.node("Exp", g.node("Neg", g.node("Abs", [z])))
    return g.node("Log", g.node("Add", [e[0], g.scalar(1.0, dtype)]))[0]


def _log_sigmoid(g, func, xs, ys):
    """min(x, 0) - log(1 + exp(-|x|)), as minidl computes it."""
    dtype = func.inputs[0].dtype
    low = g.node("Min", [xs[0], g.scalar(0.0, dtype)])
    g.node("Sub", [low[0], _log1p_exp_neg_abs(g, xs[0], dtype)], ys)


def _softplus(g, func, xs, ys):
    """(max(z, 0) + log(1 + exp(-|z|))) / beta with z = beta x, and x where z > threshold (as minidl and torch;
    ONNX's Softplus has neither beta nor the threshold)."""
    dtype = func.inputs[0].dtype
    z = g.node("Mul", [xs[0], g.scalar(func.beta, dtype)])[0]
    high = g.node("Max", [z, g.scalar(0.0, dtype)])
    soft = g.node("Div", [g.node("Add", [high[0], _log1p_exp_neg_abs(g, z, dtype)])[0], g.scalar(func.beta, dtype)])
    above = g.node("Greater", [z, g.scalar(func.threshold, dtype)])
    g.node("Where", [above[0], xs[0], soft[0]], ys)


def _conv_attrs(func, W):
    (ph, pw), (sh, sw), (dh, dw) = func.padding, func.stride, func.dilation
    return dict(kernel_shape=list(W.shape[2:]), strides=[sh, sw], pads=[ph, pw, ph, pw],
                dilations=[dh, dw], group=func.groups)


def _conv2d(g, func, xs, ys):
    attrs = _conv_attrs(func, func.inputs[1])
    extra = getattr(func, "extra", (0, 0))    # padding="same" with an even span: more at the bottom and right
    attrs["pads"] = attrs["pads"][:2] + [attrs["pads"][2] + extra[0], attrs["pads"][3] + extra[1]]
    g.node("Conv", xs, ys, **attrs)


def _conv_transpose2d(g, func, xs, ys):
    W = func.inputs[1]
    in_hw = func.inputs[0].shape[2:]
    natural = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
               zip(in_hw, func.stride, func.padding, func.dilation, W.shape[2:])]
    attrs = _conv_attrs(func, W)
    attrs["group"] = func.groups  # W is C x K/groups x KH x KW, as ONNX's ConvTranspose expects
    g.node("ConvTranspose", xs, ys, output_padding=[o - n for o, n in zip(func.out_size, natural)], **attrs)


def _linear(g, func, xs, ys):
    if func.inputs[0].ndim == 2:  # y = x W^T + b
        g.node("Gemm", xs, ys, transB=1)
        return
    wt = g.node("Transpose", [xs[1]], perm=[1, 0])
    if len(xs) == 2:
        g.node("MatMul", [xs[0], wt[0]], ys)
    else:
        g.node("Add", [g.node("MatMul", [xs[0], wt[0]])[0], xs[2]], ys)


def _batch_norm_eval(g, func, xs, ys):
    mean, var = g.const(func.running_mean, "running_mean"), g.const(func.running_var, "running_var")
    g.node("BatchNormalization", [xs[0], xs[1], xs[2], mean, var], ys, epsilon=float(func.eps))


def _local_response_norm(g, func, xs, ys):
    size, alpha, beta, k = func.size, float(func.alpha), float(func.beta), float(func.k)
    if size % 2:  # ONNX: x / (bias + alpha / size * sum of squares) ** beta over the same centred window
        g.node("LRN", xs, ys, size=size, alpha=alpha * size, beta=beta, bias=k)
        return
    # even size: minidl sums channels c - size//2 .. c + (size-1)//2, ONNX the mirror image. Compose it:
    # squares as N x 1 x C x HW, padded on the channel axis, averaged over size channels, times size.
    N, C, H, W = func.inputs[0].shape
    dtype = func.inputs[0].dtype
    square = g.node("Mul", [xs[0], xs[0]])
    planes = g.node("Reshape", [square[0], g.ints([N, 1, C, H * W])])
    pads = g.ints([0, 0, size // 2, 0, 0, 0, (size - 1) // 2, 0], "pads")
    padded = g.node("Pad", [planes[0], pads])
    window_mean = g.node("AveragePool", padded, kernel_shape=[size, 1], strides=[1, 1])
    sums = g.node("Reshape", [window_mean[0], g.ints([N, C, H, W])])
    scale = g.node("Add", [g.node("Mul", [sums[0], g.scalar(alpha * size, dtype)])[0], g.scalar(k, dtype)])
    denominator = g.node("Pow", [scale[0], g.scalar(beta, dtype)])
    g.node("Div", [xs[0], denominator[0]], ys)


def _pool_geometry(func):
    """kernel, strides, begin pads, end pads for a pooling Function, with ceil_mode made explicit.

    ONNX's ceil_mode keeps a last window that starts in the right padding; minidl (and PyTorch) drop it.
    So ceil_mode is never passed on: the end padding is grown until the floor formula gives minidl's
    output size (each extra row or column only ever falls inside a window that minidl also has)."""
    kh, kw, sh, sw, ph, pw = func.args[:6]
    (H, W), (OH, OW) = func.inputs[0].shape[2:], func.output_meta[0][0][2:]
    end = [(OH - 1) * sh + kh - H - ph, (OW - 1) * sw + kw - W - pw]
    return [kh, kw], [sh, sw], [ph, pw], [max(e, 0) for e in end]


def _max_pool2d(g, func, xs, ys):
    kernel, strides, begin, end = _pool_geometry(func)
    g.node("MaxPool", xs, ys, kernel_shape=kernel, strides=strides, pads=begin + end)   # pads count as -inf


def _avg_divisors(n, size, k, s, p, count_include_pad):
    """minidl's divisor per output position along one axis: the window clipped to the padded input (or to
    the input itself without count_include_pad), as PyTorch's avg_pool2d."""
    starts = np.arange(n) * s - p
    ends = np.minimum(starts + k, size + p)
    if not count_include_pad:
        starts, ends = np.maximum(starts, 0), np.minimum(ends, size)
    return (ends - starts).astype(np.float64)


def _avg_pool2d(g, func, xs, ys):
    kernel, strides, begin, end = _pool_geometry(func)
    count_include_pad = func.args[7]
    if end == begin and (count_include_pad or begin == [0, 0]):   # ONNX's AveragePool means the same
        g.node("AveragePool", xs, ys, kernel_shape=kernel, strides=strides, pads=begin + end,
               count_include_pad=int(count_include_pad))
        return
    # Otherwise: sum each window of the zero-padded input (mean x window size), then divide by minidl's
    # divisor, which depends on the position (clipped windows at the edges).
    (H, W), (OH, OW) = func.inputs[0].shape[2:], func.output_meta[0][0][2:]
    dh = _avg_divisors(OH, H, kernel[0], strides[0], begin[0], count_include_pad)
    dw = _avg_divisors(OW, W, kernel[1], strides[1], begin[1], count_include_pad)
    scale = (kernel[0] * kernel[1] / np.outer(dh, dw)).astype(func.inputs[0].dtype)[None, None]
    padded = g.node("Pad", [xs[0], g.ints([0, 0] + begin + [0, 0] + end, "pads")])
    mean = g.node("AveragePool", padded, kernel_shape=kernel, strides=strides)
    g.node("Mul", [mean[0], g.const(scale, "divisor_scale")], ys)


def _averaging_matrix(bins, size, dtype):
    A = np.zeros((len(bins), size), dtype=dtype)
    for i, (start, stop) in enumerate(bins):
        A[i, start:stop] = 1.0 / (stop - start)
    return A


def _adaptive_avg_pool2d(g, func, xs, ys):
    N, C, H, W = func.inputs[0].shape
    dtype = func.inputs[0].dtype
    A_h = _averaging_matrix(func._bins(H, func.out_hw[0]), H, dtype)        # OH x H
    A_wt = _averaging_matrix(func._bins(W, func.out_hw[1]), W, dtype).T     # W x OW
    cols = g.node("MatMul", [xs[0], g.const(np.ascontiguousarray(A_wt), "adaptive_cols")])  # N x C x H x OW
    g.node("MatMul", [g.const(A_h, "adaptive_rows"), cols[0]], ys)                             # N x C x OH x OW


def _concat(g, func, xs, ys):
    g.node("Concat", xs, ys, axis=func.axis)


def _split(g, func, xs, ys):
    sizes = [shape[func.axis] for shape, _ in func.output_meta]
    g.node("Split", [xs[0], g.ints(sizes, "split")], ys, axis=func.axis)


def _pad(g, func, xs, ys):
    before, after = zip(*func.pad_width)
    value = g.scalar(func.value, func.inputs[0].dtype, "pad_value")
    g.node("Pad", [xs[0], g.ints(list(before) + list(after), "pads"), value], ys)


def _identity(g, func, xs, ys):
    g.node("Identity", xs, ys)


def _refuse(reason):
    def convert(g, func, xs, ys):
        raise ExportError(f"minidl.onnx.export: {func.name} cannot be exported: {reason}")
    return convert


CONVERTERS = {
    "Add": _same("Add"), "Sub": _same("Sub"), "Mul": _same("Mul"), "Div": _same("Div"),
    "MatMul": _same("MatMul"), "PowTensor": _same("Pow"), "Pow": _pow,
    "Neg": _same("Neg"), "Exp": _same("Exp"), "Log": _same("Log"), "Sqrt": _same("Sqrt"), "Abs": _same("Abs"),
    "ReLU": _same("Relu"), "Tanh": _tanh, "Sigmoid": _same("Sigmoid"), "LeakyReLU": _leaky_relu,
    "Softmax": _softmax("Softmax"), "LogSoftmax": _softmax("LogSoftmax"), "LogSigmoid": _log_sigmoid,
    "Softplus": _softplus,
    "Sum": _sum, "Mean": _mean, "MaxMin": _max_min, "AMaxMin": _max_min, "MaxMinDim": _max_min_dim,
    "Maximum": _maximum, "Clamp": _clamp, "Clone": _identity,
    "Reshape": _reshape, "Transpose": _transpose, "Permute": _transpose, "GetItem": _getitem,
    "BroadcastTo": _broadcast_to, "AsType": _astype, "ToDevice": _identity,
    "Conv2d": _conv2d, "Conv2dExtraPadding": _conv2d, "ConvTranspose2d": _conv_transpose2d, "Linear": _linear,
    "BatchNormEval": _batch_norm_eval, "LocalResponseNorm": _local_response_norm,
    "MaxPool2d": _max_pool2d, "AvgPool2d": _avg_pool2d, "AdaptiveAvgPool2d": _adaptive_avg_pool2d,
    "Concat": _concat, "Split": _split, "Pad": _pad,
    "BatchNormTrain": _refuse("batch norm in training mode uses the batch's statistics; export in eval mode"),
    "Dropout": _refuse("dropout draws a random mask; export in eval mode, where it is the identity"),
    "MaxUnpool2d": _refuse("the pooling switches are a second input ONNX's MaxUnpool would need; not supported"),
    "CrossEntropy": _refuse("a loss is not part of the inference graph"),
    "MSELoss": _refuse("a loss is not part of the inference graph"),
    "SoftCrossEntropy": _refuse("a loss is not part of the inference graph"),
}
