"""Checks shared by the residual-era model tests (ResNet and descendants, DenseNet, FractalNet, SENet, Xception)."""
import numpy as np

import minidl
from minidl.models import get_model
from tests.models.fast_init import fast_init


def count(model):
    return sum(p.numel() for p in model.parameters())


def in_millions(n, digits=1):
    """How a paper quotes a parameter count: 1,727,962 -> 1.7 (digits=1)."""
    return round(n / 1e6, digits)


def forward_backward(model, x, num_classes):
    """Train-mode forward and backward of ``sum(logits)``; every parameter must get a finite gradient."""
    model.train()
    model.zero_grad()
    y = model(x)
    assert y.shape == (x.shape[0], num_classes)
    assert np.isfinite(y.numpy()).all()
    y.sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]} ({len(missing)} parameters)"
    bad = [name for name, p in model.named_parameters() if not np.isfinite(p.grad.numpy()).all()]
    assert not bad, f"non-finite gradients in {bad[:5]}"
    return y


def stage_shapes(model, names, x):
    """Output shapes of the submodules ``names`` for input ``x`` (one eval-mode forward, no graph)."""
    shapes = {}
    handles = [model.get_submodule(name).register_forward_hook(
        lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape))) for name in names]
    model.eval()
    with minidl.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return shapes


def build(name, **kwargs):
    """``get_model`` with cheap random weights (see fast_init.py): counts and gradient flow do not depend on
    the values, and drawing ~10^8 normal samples for the big nets would dominate these tests. Tests of the
    initialisation itself call ``get_model``."""
    with fast_init():
        return get_model(name, **kwargs)
