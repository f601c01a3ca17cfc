"""Pooling layers: ``MaxPool2d``, ``MaxUnpool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``.

x (N, C, H, W) -> y (N, C, OH, OW) with, for kernel KH, stride SH and padding PH,
``OH = floor((H + 2 PH - KH) / SH) + 1`` (``ceil`` with ``ceil_mode=True``, dropping a last window
that would start inside the right padding). ``stride`` defaults to ``kernel_size``.
"""
import minidl.functions as F
from minidl.functions._checks import pair
from minidl.nn.module import Module


def _check_pool_args(layer, kernel_size, stride, padding):
    kernel = pair(kernel_size, layer, "kernel_size", minimum=1)
    if stride is not None:
        pair(stride, layer, "stride", minimum=1)
    pad = pair(padding, layer, "padding", minimum=0)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{layer}: padding {padding} must be at most half the kernel size {kernel_size}")


class MaxPool2d(Module):
    """Max over each KH x KW window. ``return_indices=True`` also returns the argmax positions
    (flat indices into each H x W plane), for :class:`MaxUnpool2d`.

    >>> nn.MaxPool2d(3, stride=2)(minidl.randn(1, 96, 55, 55)).shape        # AlexNet's overlapping pool
    (1, 96, 27, 27)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        _check_pool_args("MaxPool2d", kernel_size, stride, padding)
        if dilation not in (1, (1, 1)):
            raise NotImplementedError(f"MaxPool2d: dilation {dilation} is not implemented, only 1")
        self.dilation = 1
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                            return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxUnpool2d(Module):
    """The partial inverse of MaxPool2d: puts each value back where its max came from, zeros elsewhere.

    ``forward(x, indices, output_size=None)`` with the indices from ``MaxPool2d(return_indices=True)``;
    pass ``output_size`` when the pooled input's size is ambiguous (odd sizes, ``ceil_mode``).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        _check_pool_args("MaxUnpool2d", kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x, indices, output_size=None):
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Mean over each KH x KW window. With ``count_include_pad=True`` (the default) zero padding counts
    towards the divisor KH * KW; with False only the real elements do."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        _check_pool_args("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average-pool to a fixed ``output_size`` (an int or (OH, OW)) whatever the input size; window i
    spans rows ``floor(i H / OH)`` to ``ceil((i + 1) H / OH)``. ``AdaptiveAvgPool2d(1)`` is global
    average pooling (ResNet, GoogLeNet)."""

    def __init__(self, output_size):
        super().__init__()
        pair(output_size, "AdaptiveAvgPool2d", "output_size", minimum=1)
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
