"""2-D convolution layers: ``Conv2d`` and ``ConvTranspose2d``.

Notation: N batch, C input channels, H x W input size, K output channels (filters), KH x KW kernel,
SH x SW stride, PH x PW padding, DH x DW dilation, OH x OW output size.

Conv2d:            x (N, C, H, W), weight (K, C/groups, KH, KW) -> y (N, K, OH, OW),
                   OH = (H + 2 PH - DH (KH - 1) - 1) // SH + 1
ConvTranspose2d:   x (N, C, H, W), weight (C, K/groups, KH, KW) -> y (N, K, OH, OW),
                   OH = (H - 1) SH - 2 PH + DH (KH - 1) + output_padding + 1
"""
import math

import numpy as np

import minidl.functions as F
from minidl.functions._checks import pair
from minidl.nn import init
from minidl.nn.module import Module
from minidl.tensor import Parameter


def _check_channels(layer, in_channels, out_channels, groups):
    for name, n in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"{layer}: {name} must be a positive int, got {n!r}")
    if in_channels % groups:
        raise ValueError(f"{layer}: in_channels ({in_channels}) must be divisible by groups ({groups})")
    if out_channels % groups:
        raise ValueError(f"{layer}: out_channels ({out_channels}) must be divisible by groups ({groups})")


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: arguments, parameters, PyTorch's init, the repr."""

    def __init__(self, layer, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, weight_shape):
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = pair(kernel_size, layer, "kernel_size", minimum=1)
        self.stride = pair(stride, layer, "stride", minimum=1)
        self.dilation = pair(dilation, layer, "dilation", minimum=1)
        if layer == "Conv2d" and isinstance(padding, str):   # "same" or "valid", kept as the string (PyTorch)
            F.conv.string_padding(padding, self.kernel_size, self.stride, self.dilation, op=layer)
            self.padding = padding
        else:
            self.padding = pair(padding, layer, "padding", minimum=0)
        self.groups = int(groups)
        self.weight = Parameter(np.empty(weight_shape + self.kernel_size, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's default: weight U(-1/sqrt(fan_in), 1/sqrt(fan_in)) via kaiming_uniform_(a=sqrt(5)), bias alike."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input (N, {self.in_channels}, H, W), "
                             f"got shape {tuple(x.shape)}")

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """2-D cross-correlation over (N, C, H, W) inputs; see the module docstring for shapes. ``padding``
    may also be "valid" (none) or "same" (stride 1 only; OH = H, OW = W), as in PyTorch, and stays that
    string in ``self.padding``; F.conv2d says what it means (an even kernel pads one more row at the bottom).

    >>> conv1 = nn.Conv2d(3, 96, kernel_size=11, stride=4)      # AlexNet's first layer
    >>> conv1(minidl.randn(1, 3, 227, 227)).shape
    (1, 96, 55, 55)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        _check_channels("Conv2d", in_channels, out_channels, groups)
        super().__init__("Conv2d", in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, (out_channels, in_channels // groups))

    def forward(self, x):
        self._check_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """The transpose (adjoint) of Conv2d: upsamples by ``stride``; see the module docstring for shapes.

    ``output_padding`` adds rows/columns on one side of the output, to pick among the input sizes a
    strided Conv2d maps to the same output size; ``forward(x, output_size=(OH, OW))`` works it out.

    >>> up = nn.ConvTranspose2d(64, 32, kernel_size=2, stride=2)
    >>> up(minidl.randn(1, 64, 14, 14)).shape
    (1, 32, 28, 28)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1):
        _check_channels("ConvTranspose2d", in_channels, out_channels, groups)
        super().__init__("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, (in_channels, out_channels // groups))
        self.output_padding = pair(output_padding, "ConvTranspose2d", "output_padding", minimum=0)
        self._check_output_padding(self.output_padding)

    def _check_output_padding(self, output_padding):
        for op, s, d in zip(output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(f"ConvTranspose2d: output_padding {output_padding} must be smaller than "
                                 f"either stride {self.stride} or dilation {self.dilation}")

    def _output_padding_for(self, x, output_size):
        """The output_padding that makes the output (OH, OW) == output_size.

        As in PyTorch, output_size may exceed the smallest output by at most stride - 1, even where
        the dilation would allow a larger output_padding when it is given directly: an output_size asks
        for the input size of the strided Conv2d that this layer inverts, and the stride alone decides those.
        """
        output_size = tuple(int(n) for n in tuple(output_size)[-2:])
        smallest = tuple((x.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                         + self.dilation[i] * (self.kernel_size[i] - 1) + 1 for i in range(2))
        largest = tuple(n + s - 1 for n, s in zip(smallest, self.stride))
        if not all(lo <= n <= hi for n, lo, hi in zip(output_size, smallest, largest)):
            raise ValueError(f"ConvTranspose2d: requested an output size of {output_size}, but valid sizes range "
                             f"from {smallest} to {largest} for an input of {tuple(x.shape[2:])} (stride "
                             f"{self.stride}, padding {self.padding}, dilation {self.dilation})")
        return tuple(n - lo for n, lo in zip(output_size, smallest))

    def forward(self, x, output_size=None):
        self._check_input(x)
        output_padding = self.output_padding if output_size is None else self._output_padding_for(x, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)
