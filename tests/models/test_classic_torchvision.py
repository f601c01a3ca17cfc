"""VGG and SqueezeNet load torchvision's state dicts as they are and compute the same outputs; GoogLeNet's
parameter count differs from torchvision's by exactly its documented differences.

Needs torch and torchvision; skipped where they are not installed.
"""
import numpy as np
import pytest

import minidl
from minidl.models import get_model
from tests.models.fast_init import fast_init
from tests.helpers import outputs_on_one_input, randomise_torch_batchnorm as _randomise_batchnorm

torch = pytest.importorskip("torch")
tv_models = pytest.importorskip("torchvision.models")


@pytest.mark.parametrize("name, size", [
    ("vgg11", 32),          # 32 x 32: the five poolings leave 1 x 1, the adaptive pool repeats it to 7 x 7
    ("vgg16_bn", 48),       # 48 -> 1 x 1 as well (floor), with batch norm in the features
    ("squeezenet1_0", 64),
    ("squeezenet1_1", 64),
])
def test_torchvision_weights_give_the_same_outputs(name, size):
    torch.manual_seed(0)
    reference = getattr(tv_models, name)(weights=None).eval()
    _randomise_batchnorm(reference, 0)
    with fast_init():
        ours = get_model(name)
    result = ours.load_state_dict(reference.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in reference.named_parameters()]
    got, expected = outputs_on_one_input(ours, reference, size)
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


def test_googlenet_differs_from_torchvision_by_its_5x5_bug_and_batch_norm():
    reference = tv_models.googlenet(weights=None, aux_logits=False, init_weights=False)
    ours = get_model("googlenet", aux_logits=False)
    theirs = sum(p.numel() for p in reference.parameters())
    assert theirs == 6_624_904
    # torchvision's "5x5" branch convolutions are 3x3: 25 - 9 = 16 weights fewer per (in, out) pair
    fives = [m for name, m in ours.named_modules() if name.endswith("branch3.1.conv")]
    missing_taps = sum(m.in_channels * m.out_channels * 16 for m in fives)
    assert missing_taps == 380_928
    # every torchvision convolution has BN (2 parameters per channel) and no bias; ours a bias (1)
    our_conv_channels = sum(m.out_channels for m in ours.modules() if type(m).__name__ == "Conv2d")
    assert our_conv_channels == 7_280
    assert ours.num_parameters() == theirs + missing_taps - our_conv_channels == 6_998_552
