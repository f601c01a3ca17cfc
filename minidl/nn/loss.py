"""Loss layers: ``CrossEntropyLoss`` and ``MSELoss``; ``reduction`` is 'mean', 'sum' or 'none'."""
import minidl.functions as F
from minidl.nn.module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(layer, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{layer}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits (N, classes) against integer class targets (N,).

    ``loss_n = -log softmax(logits_n)[target_n]``; with ``label_smoothing`` = s the target distribution
    is ``(1 - s) * one_hot + s / classes``.

    >>> criterion = nn.CrossEntropyLoss()
    >>> loss = criterion(model(images), labels)
    """

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, self.reduction, self.label_smoothing)

    def extra_repr(self):
        text = f"reduction={self.reduction!r}"
        return text + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class MSELoss(Module):
    """Mean squared error ``mean((x - y)^2)``."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, x, y):
        return F.mse_loss(x, y, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
