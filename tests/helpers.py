"""Test helpers shared across the suite: float64 tensors, gradient checks, the optional torch oracle."""
import numpy as np
import pytest

import minidl
from minidl.gradcheck import gradcheck


def t64(array, requires_grad=True):
    """A float64 tensor that requires grad, from an array or a shape."""
    if isinstance(array, tuple):
        array = np.random.default_rng(len(array)).uniform(-1, 1, array)
    return minidl.Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def check_grad(fn, *inputs, **kwargs):
    """Gradient-check ``fn`` on float64 copies of ``inputs`` (arrays or tensors)."""
    tensors = [x if isinstance(x, minidl.Tensor) else t64(x) for x in inputs]
    assert gradcheck(fn, tensors, **kwargs)


def tie_free(shape, rng=None, scale=0.1):
    """Distinct values (a shuffled arange), so max pooling has no ties and finite differences stay valid."""
    rng = rng or np.random.default_rng(0)
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * scale


def torch_or_skip():
    return pytest.importorskip("torch")


def to_torch(torch, array, requires_grad=False):
    return torch.tensor(np.asarray(array), requires_grad=requires_grad)


def randomise_torch_batchnorm(model, seed):
    """Give a torch model's BatchNorm2d layers non-trivial statistics and affine parameters, so that
    eval-mode BN is far from the identity when its weights are compared with ours."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def outputs_on_one_input(ours, reference, size):
    """(minidl's, PyTorch's) eval-mode outputs of two models on the same random 2 x 3 x size x size batch."""
    import torch
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    ours.eval()
    with minidl.no_grad():
        got = ours(minidl.tensor(x)).numpy()
    return got, expected


def torchvision_reference(name):
    """torchvision's ``name`` (no weights, seeded, eval mode, BatchNorm statistics randomised), or a skip."""
    torch = pytest.importorskip("torch")
    tv_models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    reference = getattr(tv_models, name)(weights=None).eval()
    randomise_torch_batchnorm(reference, 0)
    return reference
