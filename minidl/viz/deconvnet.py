"""Zeiler & Fergus's deconvnet pictures, for every CNN whose feature layers are a chain of Conv2d, ReLU,
MaxPool2d and LocalResponseNorm (ZFNet, AlexNet, VGG); the projection itself is
``minidl.models.zfnet.deconv`` (the paper's method lives with the paper's model)."""
import numpy as np

from minidl import autograd
from minidl.models.zfnet import deconv as deconv_projection
from minidl.viz._figure import new_figure, show_image, to_unit_range
from minidl.viz._hooks import as_input, inspecting


def deconv(model, x, layers=(1, 2), channel=None, crop=True):
    """A Figure: the image, then for each conv layer in ``layers`` (1-based) the projection of its
    strongest activation (in ``channel``, default the layer's strongest channel) back to pixels, scaled
    to [0, 1] and cropped to the patch it covers (``crop=False``: the whole image), as in the paper's
    Figure 2. ``figure.maps`` holds the uncropped 1 x C x H x W projections.

    ValueError naming the first layer that is not Conv2d / ReLU / MaxPool2d / LRN (ResNet-18: ``bn1``).
    """
    image = as_input(x, "viz.deconv")[:1]
    layers = [layers] if isinstance(layers, int) else list(layers)
    with inspecting(model), autograd.no_grad():
        maps = {layer: deconv_projection(model, image, layer, channel).numpy() for layer in layers}
    figure, axes = new_figure(1, 1 + len(layers), size=(2.6 * (1 + len(layers)), 2.9))
    show_image(axes[0, 0], to_unit_range(image.numpy()[0]), "input")
    for i, (layer, projection) in enumerate(maps.items()):
        rows, cols = np.nonzero(np.abs(projection[0]).sum(axis=0))
        if len(rows) and crop:            # the paper's Figure 2 shows the patch, not the whole image
            patch = projection[0][:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            title = f"conv {layer}: {np.ptp(rows) + 1}x{np.ptp(cols) + 1} px patch"
        else:
            patch, title = projection[0], f"conv {layer}" + ("" if len(rows) else " (empty)")
        show_image(axes[0, i + 1], to_unit_range(patch), title)
    figure.maps = maps
    return figure
