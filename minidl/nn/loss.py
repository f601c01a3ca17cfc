"""Loss layers: ``CrossEntropyLoss`` and ``MSELoss``; ``reduction`` is 'mean', 'sum' or 'none'."""
import minidl.functions as F
from minidl.nn.module import Module
from minidl.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(layer, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{layer}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits against class indices or probabilities, as
    ``torch.nn.CrossEntropyLoss`` (see ``F.cross_entropy`` for shapes and the formula).

    ``loss_n = -w[target_n] log softmax(logits_n)[target_n]``; with ``label_smoothing`` = s the target
    distribution is ``(1 - s) * one_hot + s / classes``; targets equal to ``ignore_index`` count for nothing.

    >>> criterion = nn.CrossEntropyLoss()
    >>> loss = criterion(model(images), labels)
    """

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index
        if weight is not None and not isinstance(weight, Tensor):
            weight = Tensor(weight)
        self.register_buffer("weight", weight)

    def forward(self, input, target):  # noqa: A002 - torch's name
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        text = f"reduction={self.reduction!r}"
        if self.ignore_index != -100:
            text += f", ignore_index={self.ignore_index}"
        return text + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class MSELoss(Module):
    """Mean squared error ``mean((x - y)^2)``."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, x, y):
        return F.mse_loss(x, y, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
