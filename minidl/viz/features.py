"""What a layer has learned and what it computes: its filters and its feature maps.

``filter_grid`` and the maps that ``activations`` draws are plain arrays, so the numbers behind each
picture can be checked without matplotlib.
"""
import math

import numpy as np

from minidl import nn
from minidl.tensor import Tensor
from minidl.viz._figure import new_figure, show_image, to_unit_range
from minidl.viz._hooks import as_input, capture, inspecting


def mosaic(tiles, ncols, pad_value):
    """T tiles (T x h x w, or T x h x w x 3) laid out row-major on a grid ``ncols`` wide, one pixel of
    ``pad_value`` between them."""
    T, h, w = tiles.shape[:3]
    nrows = math.ceil(T / ncols)
    out = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1) + tiles.shape[3:], pad_value, dtype=np.float64)
    for t in range(T):
        r, c = divmod(t, ncols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = tiles[t]
    return out


def _weight_array(layer_or_weight):
    weight = getattr(layer_or_weight, "weight", layer_or_weight)
    weight = weight.numpy() if isinstance(weight, Tensor) else np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"viz.filters: expected a Conv2d or a weight K x C x KH x KW, got shape {weight.shape}")
    return weight.astype(np.float64)


def filter_grid(layer_or_weight, max_filters=64, max_channels=8):
    """The picture of ``viz.filters`` as an array.

    C = 3 (a first layer on RGB images): each of the first ``max_filters`` filters as one RGB tile,
    scaled to [0, 1] by its own min and max (CS231n's convention: only the pattern is compared, not the
    size); a square-ish grid, white between tiles. Returns (H', W', 3).

    C = 1 (a first layer on grey images): one tile per filter on the same square-ish grid, raw weights on
    one shared scale (NaN between tiles). Returns (H', W').

    Any other C: one tile per (filter, input channel), filters down, channels across (at most
    ``max_filters`` x ``max_channels``), raw weights on one shared scale (NaN between tiles). Returns
    (H', W').
    """
    weight = _weight_array(layer_or_weight)[:max_filters]
    K, C = weight.shape[:2]
    if C == 3:
        tiles = np.stack([to_unit_range(f).transpose(1, 2, 0) for f in weight])
        return mosaic(tiles, math.ceil(math.sqrt(K)), 1.0)
    if C == 1:
        return mosaic(weight[:, 0], math.ceil(math.sqrt(K)), np.nan)
    C = min(C, max_channels)
    return mosaic(weight[:, :C].reshape(K * C, *weight.shape[2:]), C, np.nan)


def filters(layer_or_weight, max_filters=64, max_channels=8):
    """A Figure of a convolution's filters (see :func:`filter_grid`): RGB tiles for a first layer on colour
    images, one tile per filter on grey ones, filter x channel grids for deeper layers (blue negative, red
    positive, one scale).

    >>> viz.filters(model.features[0])          # AlexNet conv1: 96 RGB 11x11 filters, 10 x 10 grid
    """
    grid = filter_grid(layer_or_weight, max_filters, max_channels)
    weight = _weight_array(layer_or_weight)
    K, C, KH, KW = weight.shape
    shown = min(K, max_filters)
    if C in (1, 3):
        figure, axes = new_figure(size=(5, 5))
        title = f"{shown} of {K} filters, {KH}x{KW}" + (", each scaled to its own range" if C == 3 else "")
    else:
        figure, axes = new_figure(size=(min(12, 1.5 + 0.6 * min(C, max_channels) * KW / 3),
                                        min(12, 1 + 0.6 * shown * KH / 3)))
        title = f"filters (rows, {shown} of {K}) x input channels (columns, {min(C, max_channels)} of {C})"
    axes = axes[0, 0]
    if C == 3:
        show_image(axes, grid, title)
    else:
        limit = np.nanmax(np.abs(grid)) or 1.0
        image = show_image(axes, grid, title, cmap="bwr", vmin=-limit, vmax=limit)
        figure.colorbar(image, ax=axes, shrink=0.6)
    return figure


def activations(model, x, layers, max_maps=16, ncols=8):
    """A Figure of the feature maps of ``layers`` (names such as ``"features.0"`` or submodules) for
    the first image of ``x``, caught with forward hooks during one forward pass in eval mode. One row per
    layer: its first ``max_maps`` channels, each on the layer's shared colour scale.

    The arrays drawn are ``figure.maps`` ({name: K x h x w}, the caught outputs of image 0).
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    with inspecting(model):
        _, caught = capture(model, as_input(x, "viz.activations")[:1], layers)
    maps = {name: tensor.numpy()[0] for name, tensor in caught.items()}
    for name, fmap in maps.items():
        if fmap.ndim != 3:
            raise ValueError(f"viz.activations: layer {name!r} gives shape {fmap.shape} per image, "
                             "not feature maps K x h x w")
    grids = [mosaic(fmap[:max_maps], min(ncols, len(fmap[:max_maps])), np.nan) for fmap in maps.values()]
    width = 1.4 * ncols
    figure, axes = new_figure(len(maps), 1, size=(width, sum(0.5 + width * g.shape[0] / g.shape[1] for g in grids)))
    for row, ((name, fmap), grid) in enumerate(zip(maps.items(), grids)):
        show_image(axes[row, 0], grid, f"{name}: {min(max_maps, len(fmap))} of {len(fmap)} maps, "
                                       f"{fmap.shape[1]}x{fmap.shape[2]}", cmap="viridis")
    figure.maps = maps
    return figure
