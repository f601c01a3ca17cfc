"""matplotlib, imported only when a picture is asked for: minidl runs without it.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, not pyplot figures: they leave
pyplot's global state alone, save with ``fig.savefig(path)``, and Jupyter shows a returned Figure once
(a pyplot figure would be shown twice, once as the cell's value and once by the inline backend).
Jupyter knows how to show a Figure only once pyplot's inline backend has registered it, so the first
picture made in a notebook registers the same PNG display itself (:func:`show_in_jupyter`).
"""
import io
import sys

import numpy as np


def new_figure(nrows=1, ncols=1, size=(4.0, 4.0), squeeze=False):
    """A Figure with an ``nrows x ncols`` grid of axes (a 2-D array unless ``squeeze``)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("minidl.viz: pictures need matplotlib (pip install matplotlib, or minidl[plot]); "
                          "the numbers behind each picture (saliency_map, grad_cam_map, ...) do not") from None
    show_in_jupyter()
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=squeeze)
    return figure, axes


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def show_in_jupyter():
    """In IPython/Jupyter, display a returned matplotlib Figure as a PNG, unless something (pyplot's inline
    backend) already does; elsewhere nothing."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    from matplotlib.figure import Figure
    png = shell.display_formatter.formatters["image/png"]
    try:
        png.lookup_by_type(Figure)
    except KeyError:
        png.for_type(Figure, _png)


def show_image(axes, image, title=None, **kwargs):
    """``imshow`` without ticks; a C x H x W array with C = 3 is shown as RGB, C = 1 as gray."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    if image.ndim == 2:
        kwargs.setdefault("cmap", "gray")
        if np.isnan(image).any():                  # the gaps between tiles: grey, not a value's colour
            from matplotlib import colormaps
            kwargs["cmap"] = colormaps[kwargs["cmap"]].with_extremes(bad="0.8")
    shown = axes.imshow(image, **kwargs)
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize=9)
    return shown


def to_unit_range(array):
    """Scale to [0, 1] by its own min and max (a constant array becomes 0.5)."""
    array = np.asarray(array, dtype=np.float64)
    low, high = array.min(), array.max()
    if high == low:
        return np.full_like(array, 0.5)
    return (array - low) / (high - low)
