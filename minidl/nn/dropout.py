"""``Dropout`` and ``DropPath``: random zeroing in training, identity in eval mode (``model.eval()``)."""
import minidl.functions as F
from minidl.nn.module import Module


def _check_p(layer, p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{layer}: drop probability p must be in [0, 1], got {p}")
    return p


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (inverted dropout,
    so that eval mode needs no rescaling). Draws from minidl's global generator."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = _check_p("Dropout", p)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class DropPath(Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch for a whole sample with probability
    ``p``, scaling kept samples by ``1 / (1 - p)``. Used on the residual branch: ``x + drop_path(f(x))``."""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = _check_p("DropPath", p)

    def forward(self, x):
        return F.drop_path(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
