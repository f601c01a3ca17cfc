"""Our residual-era models load torchvision's and timm's state dicts as they are and compute the same outputs.

Needs torchvision (and timm for SE-ResNet-50 / Xception); skipped where they are not installed.
"""
import numpy as np
import pytest

import minidl
from tests.models.residual_checks import build
from tests.helpers import outputs_on_one_input, randomise_torch_batchnorm as _randomise_batchnorm

torch = pytest.importorskip("torch")


def _compare(reference, ours, size, rtol=1e-4):
    reference.eval()
    _randomise_batchnorm(reference, 0)
    result = ours.load_state_dict(reference.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert list(dict(ours.named_parameters())) == [n for n, _ in reference.named_parameters()]  # same order
    got, expected = outputs_on_one_input(ours, reference, size)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "wide_resnet50_2", "resnext50_32x4d", "densenet121"])
def test_torchvision_weights_give_the_same_outputs(name):
    tv_models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    reference = getattr(tv_models, name)(weights=None)
    _compare(reference, build(name), size=64)


@pytest.mark.parametrize("ours, theirs, size", [("se_resnet50", "seresnet50", 64),
                                                ("xception", "legacy_xception", 71)])
def test_timm_weights_give_the_same_outputs(ours, theirs, size):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    _compare(timm.create_model(theirs, pretrained=False), build(ours), size=size)


def test_senet154_state_dict_matches_timm_legacy_senet154():
    """Names and shapes only (the model is large): built on torch's meta device, no memory allocated."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        reference = timm.create_model("legacy_senet154", pretrained=False)
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in build("senet154").state_dict().items()}
    assert ours == theirs
