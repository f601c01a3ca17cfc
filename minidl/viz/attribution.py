"""Which pixels a class score depends on: saliency maps and Grad-CAM.

Saliency (Simonyan, Vedaldi & Zisserman, "Deep inside convolutional networks", ICLR 2014 workshop,
Section 3.1): the gradient of the class score S_c (the logit, before softmax) with respect to the image,
reduced over colour channels by the maximum magnitude:

    M[n, i, j] = max_c | dS_target[n] / dx[n, c, i, j] |                       (N x H x W)

Grad-CAM (Selvaraju et al., "Grad-CAM: visual explanations from deep networks via gradient-based
localization", ICCV 2017, Eq. 1-2), for a layer with activations A (N x K x h x w):

    alpha[n, k] = mean_ij dS_target[n] / dA[n, k, i, j]
    L[n, i, j]  = ReLU( sum_k alpha[n, k] A[n, k, i, j] )                      (N x h x w)

drawn stretched over the image (bilinear), as the paper does. Both run the model in eval mode with its
parameters frozen, so a picture never changes the model's ``.grad``s.
"""
import numpy as np

from minidl import autograd
from minidl.tensor import Tensor
from minidl.viz._figure import new_figure, show_image, to_unit_range
from minidl.viz._hooks import as_input, capture, inspecting, last_spatial_layer


def _targets(target, N, num_classes, what):
    targets = np.broadcast_to(np.asarray(target, dtype=np.int64), (N,))
    if np.any(targets < 0) or np.any(targets >= num_classes):
        raise ValueError(f"{what}: target must be a class 0..{num_classes - 1}, got {np.asarray(target).tolist()}")
    return targets


def _class_score(scores, target, what):
    """sum_n scores[n, target[n]] as a tensor, and the per-image scores."""
    if scores.ndim != 2:
        raise ValueError(f"{what}: the model must return N x classes scores, got shape {tuple(scores.shape)}")
    N, classes = scores.shape
    targets = _targets(target, N, classes, what)
    onehot = np.zeros(scores.shape, dtype=scores.dtype)
    onehot[np.arange(N), targets] = 1
    return (scores * Tensor(onehot)).sum(), scores.numpy()[np.arange(N), targets]


def saliency_map(model, x, target):
    """Simonyan et al.'s map (module docstring) as an N x H x W float array; ``target``: one class for
    every image or one per image."""
    image = as_input(x, "viz.saliency").requires_grad_()
    with inspecting(model), autograd.enable_grad():
        total, _ = _class_score(model(image), target, "viz.saliency")
        total.backward()
    return np.abs(image.grad.numpy()).max(axis=1)


def grad_cam_map(model, x, target, layer=None):
    """Selvaraju et al.'s map (module docstring) at ``layer``'s resolution, N x h x w; ``layer``: a name
    (``"layer4"``) or a submodule; default the last layer with a spatial output (ResNet ``layer4``)."""
    image = as_input(x, "viz.grad_cam").requires_grad_()   # so the graph reaches the frozen model's layers
    with inspecting(model):
        layer = layer if layer is not None else last_spatial_layer(model, image, "viz.grad_cam")
        scores, caught = capture(model, image, [layer], "viz.grad_cam", grad=True)
        with autograd.enable_grad():
            total, _ = _class_score(scores, target, "viz.grad_cam")
            total.backward()
    (name, A), = caught.items()
    if A.ndim != 4:
        raise ValueError(f"viz.grad_cam: layer {name!r} gives shape {tuple(A.shape)}, not N x K x h x w maps")
    a, g = A.numpy().astype(np.float64), A.grad.numpy().astype(np.float64)
    alpha = g.mean(axis=(2, 3))
    return np.maximum((alpha[:, :, None, None] * a).sum(axis=1), 0.0)


def _pictures(images, maps, titles, overlay):
    n = min(len(images), 4)
    figure, axes = new_figure(n, 2, size=(5, 2.6 * n))
    for i in range(n):
        show_image(axes[i, 0], to_unit_range(images[i]), "input")
        H, W = images[i].shape[1:]
        if overlay:
            show_image(axes[i, 1], to_unit_range(images[i]).mean(axis=0), titles[i])
            axes[i, 1].imshow(maps[i], cmap="jet", alpha=0.5, interpolation="bilinear",
                              extent=(-0.5, W - 0.5, H - 0.5, -0.5))
        else:
            show_image(axes[i, 1], maps[i], titles[i], cmap="hot")
    figure.maps = maps
    return figure


def saliency(model, x, target):
    """A Figure: each image (up to 4) beside its saliency map; the arrays drawn are ``figure.maps``."""
    maps = saliency_map(model, x, target)
    images = as_input(x, "viz.saliency").numpy()
    targets = _targets(target, len(images), np.iinfo(np.int64).max, "viz.saliency")
    return _pictures(images, maps, [f"saliency, class {t}" for t in targets], overlay=False)


def grad_cam(model, x, target, layer=None):
    """A Figure: each image (up to 4) beside its Grad-CAM map stretched over it; ``figure.maps`` holds the
    N x h x w maps at the layer's resolution."""
    maps = grad_cam_map(model, x, target, layer)
    images = as_input(x, "viz.grad_cam").numpy()
    targets = _targets(target, len(images), np.iinfo(np.int64).max, "viz.grad_cam")
    return _pictures(images, maps, [f"Grad-CAM, class {t}" for t in targets], overlay=True)
