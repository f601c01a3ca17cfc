"""Running a model for a picture: eval mode and frozen parameters for the duration, and forward hooks
that catch chosen layers' outputs."""
import contextlib

import numpy as np

from minidl import autograd
from minidl.tensor import Tensor


@contextlib.contextmanager
def inspecting(model):
    """Eval mode (BN running statistics, no dropout) and parameters that do not require grad, so that a
    backward for a picture leaves every ``.grad`` of the model untouched; both restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad = False
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad = flag


def resolve_layer(model, layer, what):
    """``layer`` as (dotted name, module): a name (``"features.3"``) or a submodule of ``model``."""
    if isinstance(layer, str):
        try:
            return layer, model.get_submodule(layer)
        except (AttributeError, KeyError, IndexError, ValueError):
            names = [name for name, _ in model.named_modules() if name]
            raise ValueError(f"{what}: {type(model).__name__} has no layer {layer!r}; "
                             f"its layers include {', '.join(names[:12])}, ...") from None
    for name, module in model.named_modules():
        if module is layer:
            return name, module
    raise ValueError(f"{what}: {type(layer).__name__} is not a layer of {type(model).__name__}")


def as_input(x, what):
    """A 4-D N x C x H x W tensor detached from any graph."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4:
        raise ValueError(f"{what}: expected an image batch N x C x H x W (or one C x H x W image), "
                         f"got shape {tuple(data.shape)}")
    return Tensor(data)


def capture(model, x, layers, what="viz.activations", grad=False):
    """Run ``model(x)`` with forward hooks on ``layers`` (names or modules); returns (output, {name:
    tensor}). With ``grad``, each caught tensor keeps its ``.grad`` after a backward (``retain_grad``)."""
    caught, handles = {}, []

    def hook_for(name):
        def hook(module, inputs, output):
            if not isinstance(output, Tensor):
                raise ValueError(f"{what}: layer {name!r} ({type(module).__name__}) returns "
                                 f"{type(output).__name__}, not a tensor")
            if grad and output.requires_grad:
                output.retain_grad()
            caught[name] = output
        return hook

    for layer in layers:
        name, module = resolve_layer(model, layer, what)
        handles.append(module.register_forward_hook(hook_for(name)))
    try:
        with autograd.enable_grad() if grad else autograd.no_grad():
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return output, caught


def last_spatial_layer(model, x, what):
    """The name of the module, in call order, that last produces an N x K x h x w output with h or w > 1
    (ResNet: ``layer4``, VGG: ``features``): Grad-CAM's default layer, as in Selvaraju et al."""
    order, handles = [], []

    def hook_for(name):
        def hook(module, inputs, output):
            if isinstance(output, Tensor) and output.ndim == 4 and max(output.shape[2:]) > 1:
                order.append(name)
        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook_for(name)))
    try:
        with autograd.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not order:
        raise ValueError(f"{what}: {type(model).__name__} has no layer with a spatial output; pass layer=")
    return order[-1]
