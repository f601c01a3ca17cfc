"""Losses: a fused, numerically stable cross-entropy and the mean squared error."""
from minidl import backend
from minidl.functions._checks import as_input
from minidl.functions.activation import _log_softmax
from minidl.tensor import Function, Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


class CrossEntropy(Function):
    """-log softmax(x)[target], with label smoothing: the target distribution is
    (1 - eps) * one_hot(target) + eps / C, as in PyTorch and Szegedy et al. 2016."""

    def __init__(self, target, reduction, label_smoothing):
        self.target, self.reduction, self.eps = target, reduction, label_smoothing

    def forward(self, x):
        xp = self.xp
        N, C = x.shape
        self.log_p = log_p = _log_softmax(xp, x, 1)
        picked = log_p[xp.arange(N), self.target]
        loss = -(1 - self.eps) * picked - self.eps * log_p.mean(axis=1)
        if self.reduction == "mean":
            return xp.asarray(loss.mean())
        if self.reduction == "sum":
            return xp.asarray(loss.sum())
        return loss

    def backward(self, gy):
        xp = self.xp
        N, C = self.log_p.shape
        q = xp.full((N, C), self.eps / C, dtype=self.log_p.dtype)
        q[xp.arange(N), self.target] += 1 - self.eps
        gx = xp.exp(self.log_p) - q
        if self.reduction == "mean":
            return gx * (gy / N)
        if self.reduction == "sum":
            return gx * gy
        return gx * gy[:, None]


def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of N x C ``logits`` against integer class labels ``target`` (N,).

    Fused log-softmax + negative log-likelihood: stable for any logits, and its gradient is simply
    softmax(x) - target distribution.
    """
    logits = as_input(logits, "cross_entropy")
    _check_reduction(reduction, "cross_entropy")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D (N x C), got shape {tuple(logits.shape)}; "
                         "flatten spatial outputs first")
    labels = backend.as_device_array(target.data if isinstance(target, Tensor) else target, logits.device)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class labels, got dtype {labels.dtype}")
    N, C = logits.shape
    if labels.shape != (N,):
        raise ValueError(f"cross_entropy: target must have shape ({N},) for logits {tuple(logits.shape)}, "
                         f"got {tuple(labels.shape)}")
    if N and bool(((labels < 0) | (labels >= C)).any()):
        raise ValueError(f"cross_entropy: labels must be in [0, {C - 1}] for {C} classes, "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    return CrossEntropy(labels.astype("int64", copy=False), reduction, float(label_smoothing))(logits)


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
        scale = 2.0 / self.diff.size if self.reduction == "mean" else 2.0
        gx = self.diff * (gy * scale)
        return gx, -gx


def mse_loss(x, y, reduction="mean"):
    """Mean (or summed) squared error between two tensors of the same shape."""
    x, y = as_input(x, "mse_loss"), as_input(y, "mse_loss")
    _check_reduction(reduction, "mse_loss")
    if x.shape != y.shape:
        raise ValueError(f"mse_loss: input shape {tuple(x.shape)} and target shape {tuple(y.shape)} differ")
    return MSELoss(reduction)(x, y)
