"""Losses: a fused, numerically stable cross-entropy and the mean squared error."""
import numpy as np

from minidl import backend, ops
from minidl.functions._checks import as_input
from minidl.functions.activation import LogSoftmax, _log_softmax
from minidl.tensor import Function, Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _classes_last(xp, x):
    """(N, C, d1, ..., dk) -> (N d1 ... dk, C); (C,) -> (1, C)."""
    if x.ndim == 1:
        return x[None, :]
    if x.ndim == 2:     # already (N, C): no moveaxis (a tenth of a small loss's time)
        return x
    return xp.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _classes_back(xp, g, shape):
    """The inverse of :func:`_classes_last` for a gradient."""
    if len(shape) == 1:
        return g[0]
    if len(shape) == 2:
        return g
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return xp.ascontiguousarray(xp.moveaxis(g.reshape(moved), -1, 1))


def _classes_last_graph(x):
    """:func:`_classes_last` as differentiable ops on a Tensor (for second-order gradients)."""
    if x.ndim == 1:
        return ops.reshape(x, (1, x.shape[0]))
    return ops.reshape(ops.permute(x, (0,) + tuple(range(2, x.ndim)) + (1,)), (-1, x.shape[1]))


def _classes_back_graph(g, shape):
    """:func:`_classes_back` as differentiable ops on a Tensor."""
    if len(shape) == 1:
        return ops.reshape(g, shape)
    moved = ops.reshape(g, (shape[0],) + tuple(shape[2:]) + (shape[1],))
    return ops.permute(moved, (0, len(shape) - 1) + tuple(range(1, len(shape) - 1)))


def _scale_graph(gy, reduction, denominator):
    """:func:`_scale` as differentiable ops: the loss's gradient per row (M, 1) or a scalar."""
    if reduction == "mean":
        return gy / float(denominator) if denominator else gy * float("nan")
    if reduction == "sum":
        return gy
    return ops.reshape(gy, (-1, 1))


def _reduce(xp, loss, reduction, denominator, shape):
    if reduction == "sum":
        return xp.asarray(loss.sum())
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):    # nothing counted: NaN, as in torch
            return xp.asarray(loss.sum() / denominator, dtype=loss.dtype)
    return loss.reshape(shape)


def _scale(gy, reduction, denominator, per_row):
    if reduction == "mean":
        return gy / denominator if denominator else gy * np.nan
    if reduction == "sum":
        return gy
    return gy.reshape(-1)[:, None] * per_row


class CrossEntropy(Function):
    """Cross-entropy against class indices, with torch's class weights w, ignore_index and label smoothing
    eps. With p = softmax(x), t the target, v = 0 where t is ignore_index (else 1), C classes:

        loss_i = v_i [ (1 - eps) * -w[t_i] log p_i[t_i]  +  eps / C * -sum_c w_c log p_i[c] ]
        mean:  sum_i loss_i / sum_i v_i w[t_i]        (torch's weighted mean; NaN if every target is ignored)
        dloss_i/dx_i[j] = (1 - eps) v_i w[t_i] (p_ij - [j = t_i])  +  eps / C * v_i (p_ij sum_c w_c - w_j)

    Second order (``backward_graph``): the gradient is p * a - c with a and c constants, so p is recomputed
    from x by differentiable ops (LogSoftmax, exp) and differentiated through them.
    """

    def __init__(self, target, weight, ignore_index, reduction, label_smoothing):
        self.target, self.weight, self.ignore_index = target, weight, ignore_index
        self.reduction, self.eps = reduction, label_smoothing

    def forward(self, x):
        xp = self.xp
        self.x_shape = x.shape
        logits = _classes_last(xp, x)
        M, C = logits.shape
        self.log_p = log_p = _log_softmax(xp, logits, 1)
        target = self.target.reshape(-1)
        valid = target != self.ignore_index
        self.t = t = xp.where(valid, target, 0)
        self.valid = valid = valid.astype(x.dtype)
        w = xp.ones(C, dtype=x.dtype) if self.weight is None else self.weight.astype(x.dtype, copy=False)
        self.w = w
        self.w_row = w_row = w[t] * valid
        loss = -(1 - self.eps) * w_row * log_p[xp.arange(M), t]
        if self.eps:
            loss = loss - (self.eps / C) * valid * (log_p * w).sum(axis=1)
        self.denominator = float(w_row.sum())
        return _reduce(xp, loss, self.reduction, self.denominator, self.target.shape)

    def backward(self, gy):
        xp = self.xp
        M, C = self.log_p.shape
        p = xp.exp(self.log_p)
        gx = p * ((1 - self.eps) * self.w_row)[:, None]
        gx[xp.arange(M), self.t] -= (1 - self.eps) * self.w_row
        if self.eps:
            gx += (self.eps / C) * self.valid[:, None] * (p * self.w.sum() - self.w)
        gx = gx * _scale(gy, self.reduction, self.denominator, 1)
        return _classes_back(xp, gx.astype(self.log_p.dtype, copy=False), self.x_shape)

    def backward_graph(self, gy):
        # The gradient above is p * a - c with a (per row) and c constants: p is recomputed from x as ops.
        xp = self.xp
        M, C = self.log_p.shape
        a = (1 - self.eps) * self.w_row + (self.eps / C) * self.valid * self.w.sum()
        c = xp.zeros((M, C), dtype=self.log_p.dtype)
        c[xp.arange(M), self.t] = (1 - self.eps) * self.w_row
        if self.eps:
            c += (self.eps / C) * self.valid[:, None] * self.w
        p = ops.exp(LogSoftmax(1)(_classes_last_graph(self.inputs[0])))
        gx = (p * ops.constant_like(a[:, None], gy) - ops.constant_like(c, gy)) * \
            _scale_graph(gy, self.reduction, self.denominator)
        return _classes_back_graph(gx, self.x_shape)


class SoftCrossEntropy(Function):
    """Cross-entropy against class probabilities q (same shape as x), as torch:

        loss_i = -sum_c w_c q'_ic log p_ic,  q' = (1 - eps) q + eps / C;   mean: divided by the number of rows
        dloss_i/dx_ij = p_ij sum_c w_c q'_ic - w_j q'_ij;   dloss_i/dq_ic = -(1 - eps) w_c log p_ic

    Second order: log p recomputed from x by differentiable ops (LogSoftmax), the formulas above as ops.
    """

    def __init__(self, weight, reduction, label_smoothing):
        self.weight, self.reduction, self.eps = weight, reduction, label_smoothing

    def forward(self, x, q):
        xp = self.xp
        self.x_shape = x.shape
        logits, q = _classes_last(xp, x), _classes_last(xp, q)
        M, C = logits.shape
        self.log_p = log_p = _log_softmax(xp, logits, 1)
        self.w = w = xp.ones(C, dtype=x.dtype) if self.weight is None else self.weight.astype(x.dtype, copy=False)
        self.q = q = (1 - self.eps) * q + self.eps / C
        loss = -(w * q * log_p).sum(axis=1)
        shape = (x.shape[0],) + x.shape[2:] if x.ndim > 1 else ()
        return _reduce(xp, loss, self.reduction, M, shape)

    def backward(self, gy):
        xp = self.xp
        M, C = self.log_p.shape
        p = xp.exp(self.log_p)
        wq = self.w * self.q
        scale = _scale(gy, self.reduction, M, 1)
        gx = (p * wq.sum(axis=1, keepdims=True) - wq) * scale
        gq = -(1 - self.eps) * self.w * self.log_p * scale
        dtype = self.log_p.dtype
        return (_classes_back(xp, gx.astype(dtype, copy=False), self.x_shape),
                _classes_back(xp, gq.astype(dtype, copy=False), self.x_shape))

    def backward_graph(self, gy):
        x, q = self.inputs
        C = self.log_p.shape[1]
        w = ops.constant_like(self.w, gy)
        log_p = LogSoftmax(1)(_classes_last_graph(x))
        wq = (_classes_last_graph(q) * (1 - self.eps) + self.eps / C) * w
        scale = _scale_graph(gy, self.reduction, self.log_p.shape[0])
        gx = (ops.exp(log_p) * ops.sum(wq, 1, keepdim=True) - wq) * scale
        gq = log_p * w * (-(1 - self.eps)) * scale
        return _classes_back_graph(gx, self.x_shape), _classes_back_graph(gq, self.x_shape)


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",  # noqa: A002 - torch's names
                  label_smoothing=0.0):
    """Cross-entropy of logits against class indices or class probabilities, as
    ``torch.nn.functional.cross_entropy``.

    input: (C,), (N, C) or (N, C, d1, ..., dk) logits; target: class indices of shape (), (N,) or
    (N, d1, ..., dk), or probabilities of the input's shape; weight: (C,) per-class weights;
    ignore_index: a target value that contributes nothing (index targets only); reduction 'mean', 'sum' or
    'none'; label_smoothing eps mixes the target with the uniform distribution (Szegedy et al. 2016).
    Fused log-softmax + negative log-likelihood: stable for any logits. Arguments after ``weight`` are
    keyword-only (torch's positional slots there are its deprecated size_average and reduce).
    """
    op = "cross_entropy"
    logits = as_input(input, op)
    _check_reduction(reduction, op)
    if logits.ndim == 0:
        raise ValueError(f"{op}: input must have a class dim ((C,), (N, C) or (N, C, d1, ...)), got a 0-d tensor")
    C = logits.shape[0 if logits.ndim == 1 else 1]
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    w = None
    if weight is not None:
        w = backend.as_device_array(weight.data if isinstance(weight, Tensor) else np.asarray(weight), logits.device)
        if w.shape != (C,) or w.dtype.kind != "f":
            raise ValueError(f"{op}: weight must be a floating-point tensor of shape ({C},) for {C} classes, "
                             f"got shape {tuple(w.shape)} and dtype {w.dtype}")
    if isinstance(target, Tensor) and target.dtype.kind == "f" or \
            not isinstance(target, Tensor) and np.asarray(target).dtype.kind == "f":
        probs = as_input(target, op)
        if probs.shape != logits.shape:
            raise ValueError(f"{op}: probability targets must have the input's shape {tuple(logits.shape)}, "
                             f"got {tuple(probs.shape)}")
        if ignore_index != -100:
            raise ValueError(f"{op}: ignore_index is only for class-index targets, not probabilities")
        return SoftCrossEntropy(w, reduction, float(label_smoothing))(logits, probs)
    labels = backend.as_device_array(target.data if isinstance(target, Tensor) else np.asarray(target), logits.device)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices or float probabilities, got dtype {labels.dtype}")
    expected = () if logits.ndim == 1 else (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(f"{op}: target must have shape {expected} for input of shape {tuple(logits.shape)}, "
                         f"got {tuple(labels.shape)}")
    # Two reductions in the common case; the ignore_index rule only when some label is out of [0, C).
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= C):
        out_of_range = ((labels < 0) | (labels >= C)) & (labels != ignore_index)
        if bool(out_of_range.any()):
            bad = labels[out_of_range]
            raise ValueError(f"{op}: class indices must be in [0, {C - 1}] for {C} classes (or ignore_index "
                             f"{ignore_index}), got values in [{int(bad.min())}, {int(bad.max())}]")
    return CrossEntropy(labels.astype("int64", copy=False), w, ignore_index, reduction, float(label_smoothing))(logits)


class MSELoss(Function):
    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, y):
        self.diff = x - y
        sq = self.diff * self.diff
        if self.reduction == "mean":
            return self.xp.asarray(sq.mean())
        if self.reduction == "sum":
            return self.xp.asarray(sq.sum())
        return sq

    def backward(self, gy):
        gx = self.diff * (gy * self._scale())
        return gx, -gx

    def _scale(self):
        return 2.0 / self.diff.size if self.reduction == "mean" else 2.0

    def backward_graph(self, gy):
        x, y = self.inputs
        gx = (x - y) * (gy * self._scale())
        return gx, -gx


def mse_loss(input, target, *, reduction="mean"):  # noqa: A002 - torch's names (its third slot is size_average)
    """Mean (or summed) squared error between two tensors of the same shape."""
    x, y = as_input(input, "mse_loss"), as_input(target, "mse_loss")
    _check_reduction(reduction, "mse_loss")
    if x.shape != y.shape:
        raise ValueError(f"mse_loss: input shape {tuple(x.shape)} and target shape {tuple(y.shape)} differ")
    return MSELoss(reduction)(x, y)
