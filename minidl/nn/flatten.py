"""``Flatten``: collapse dims ``start_dim..end_dim`` into one (by default everything but the batch dim)."""
import minidl.functions as F
from minidl.nn.module import Module


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W) with the defaults, as in front of a classifier's first Linear."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
