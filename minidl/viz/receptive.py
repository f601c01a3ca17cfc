"""The receptive-field picture for the "three 3x3 convolutions see what one 7x7 sees" lesson (VGG,
Simonyan & Zisserman 2015, Section 2.3).

For a chain of layers with a ``kernel_size`` (convolutions, poolings; other layers change nothing),
``path_count_map`` counts, for every input pixel, the paths through the chain from that pixel to the
centre output unit: the chain run on one channel with every weight 1 (a pooling window summed), and
the gradient of the centre unit with respect to the input taken by autograd. Its non-zero support is the
receptive field (``minidl.receptive_field``'s rf); its shape shows that the field is not uniform: three
3x3 layers give the pyramid [1, 3, 6, 7, 6, 3, 1] x [1, 3, 6, 7, 6, 3, 1], a 7x7 layer a flat square.
"""
import numpy as np

import minidl.functions as F
from minidl import autograd, nn
from minidl.tensor import Tensor
from minidl.viz._figure import new_figure, show_image


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _spatial_layers(layers):
    if isinstance(layers, nn.Module):
        layers = [m for m in layers.modules() if hasattr(m, "kernel_size")]
    return [m for m in layers if hasattr(m, "kernel_size")]


def path_count_map(layers, input_size=15):
    """H x W float64 array: the number of paths from each input pixel to the centre output unit of
    ``layers`` (a list of modules, or a Module whose layers with a ``kernel_size`` form a chain)."""
    H, W = _pair(input_size)
    x = Tensor(np.zeros((1, 1, H, W)), requires_grad=True)
    y = x
    with autograd.enable_grad():
        for layer in _spatial_layers(layers):
            (KH, KW), (PH, PW), (DH, DW) = (_pair(layer.kernel_size), _pair(getattr(layer, "padding", 0)),
                                            _pair(getattr(layer, "dilation", 1)))
            if y.shape[2] + 2 * PH < DH * (KH - 1) + 1 or y.shape[3] + 2 * PW < DW * (KW - 1) + 1:
                raise ValueError(f"viz.receptive_field: a {H}x{W} input leaves no output unit after "
                                 f"{type(layer).__name__} {KH}x{KW}; pass a larger input_size")
            stride = _pair(getattr(layer, "stride", None) or (KH, KW))
            y = F.conv2d(y, Tensor(np.ones((1, 1, KH, KW))), None, stride, (PH, PW), (DH, DW))
        if y is x:
            raise ValueError("viz.receptive_field: no layer with a kernel_size (convolution or pooling) in the chain")
        onehot = np.zeros(y.shape)
        onehot[0, 0, y.shape[2] // 2, y.shape[3] // 2] = 1.0
        (y * Tensor(onehot)).sum().backward()
    return x.grad.numpy()[0, 0]


def _default_stacks():
    conv3 = nn.Conv2d(1, 1, 3, padding=1)
    return {"one 3x3": [conv3], "two 3x3": [conv3] * 2, "three 3x3": [conv3] * 3,
            "one 7x7": [nn.Conv2d(1, 1, 7, padding=3)]}


def receptive_field(stacks=None, input_size=15):
    """A Figure with one panel per stack ({title: layers}): the path counts of :func:`path_count_map`,
    the receptive field's extent and the weights per input/output channel pair (sum of KH * KW over the
    convolutions). Default: one, two and three 3x3 convolutions beside one 7x7 (27 weights vs 49 for
    the same 7x7 field). ``figure.maps`` holds the arrays drawn."""
    stacks = stacks or _default_stacks()
    maps = {title: path_count_map(layers, input_size) for title, layers in stacks.items()}
    figure, axes = new_figure(1, len(maps), size=(2.8 * len(maps), 3.2))
    for i, (title, counts) in enumerate(maps.items()):
        rows, cols = np.nonzero(counts)
        weights = sum(int(np.prod(_pair(m.kernel_size))) for m in _spatial_layers(stacks[title])
                      if isinstance(m, nn.Conv2d))
        show_image(axes[0, i], np.where(counts > 0, counts, np.nan),
                   f"{title}\nfield {np.ptp(rows) + 1}x{np.ptp(cols) + 1}, {weights} weights", cmap="viridis")
    figure.maps = maps
    return figure
