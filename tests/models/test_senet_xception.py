"""SE-ResNet-50, SENet-154 and Xception: parameter counts, a train step, the SE formula, Xception's shapes."""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl.models.senet import SEModule
from minidl.models.xception import SeparableConv2d
from tests.models.residual_checks import build, count, forward_backward, stage_shapes

# name: (expected count, source, input size)
COUNTS = {
    "se_resnet50": (28_088_024, "timm 1.0.31 seresnet50 (the paper: 28.1M)", 64),
    "senet154": (115_088_984, "timm 1.0.31 legacy_senet154 = Cadene's pretrainedmodels (the paper: 115.1M)", 64),
    "xception": (22_855_952, "Chollet 2017, Table 3; timm 1.0.31 legacy_xception", 71),
}


@pytest.fixture(scope="module")
def models():
    """Each model built once for this file (SENet-154 takes seconds to initialise)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = build(name)
        return cache[name]
    return get


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_count_and_train_step(name, models):
    expected, source, size = COUNTS[name]
    model = models(name)
    assert count(model) == expected, source
    forward_backward(model, minidl.randn(1, 3, size, size), 1000)


def test_se_module_is_squeeze_excite_scale():
    se = SEModule(32, reduction=16)
    assert (se.fc1.out_channels, se.fc2.out_channels) == (2, 32)
    x = minidl.randn(2, 32, 5, 5)
    with minidl.no_grad():
        got = se(x).numpy()
    xn = x.numpy()
    z = xn.mean(axis=(2, 3))                                                    # squeeze: N x C
    w1, b1 = se.fc1.weight.numpy()[:, :, 0, 0], se.fc1.bias.numpy()
    w2, b2 = se.fc2.weight.numpy()[:, :, 0, 0], se.fc2.bias.numpy()
    s = 1 / (1 + np.exp(-(np.maximum(z @ w1.T + b1, 0) @ w2.T + b2)))          # excitation: N x C
    np.testing.assert_allclose(got, xn * s[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_senet154_blocks(models):
    """Halved first 1x1 (ResNeXt-152 64x4d would have 256), 64 groups, 3x3 stride-2 projection shortcuts."""
    model = models("senet154")
    block = model.layer2[0]
    assert (block.conv1.out_channels, block.conv2.groups, block.conv2.out_channels) == (256, 64, 512)
    assert model.layer1[0].downsample[0].kernel_size == (1, 1)
    assert model.layer2[0].downsample[0].kernel_size == (3, 3) and model.layer2[0].downsample[0].stride == (2, 2)
    assert (block.se_module.fc1.in_channels, block.se_module.fc1.out_channels) == (512, 32)  # r = 16


def test_xception_shapes_at_299(models):
    model = models("xception")
    names = ["conv1", "conv2", "block1", "block2", "block3", "block11", "block12", "conv4", "fc"]
    shapes = stage_shapes(model, names, minidl.randn(1, 3, 299, 299))
    assert shapes == {"conv1": (1, 32, 149, 149), "conv2": (1, 64, 147, 147), "block1": (1, 128, 74, 74),
                      "block2": (1, 256, 37, 37), "block3": (1, 728, 19, 19), "block11": (1, 728, 19, 19),
                      "block12": (1, 1024, 10, 10), "conv4": (1, 2048, 10, 10), "fc": (1, 1000)}


def test_separable_conv_is_depthwise_then_pointwise():
    conv = SeparableConv2d(6, 10)
    assert conv.conv1.groups == 6 and conv.conv1.weight.shape == (6, 1, 3, 3)
    assert conv.pointwise.weight.shape == (10, 6, 1, 1)
    assert sum(p.numel() for p in conv.parameters()) == 9 * 6 + 6 * 10  # vs 9 * 6 * 10 for a full 3x3 conv
    x = minidl.randn(1, 6, 5, 5)
    with minidl.no_grad():
        depthwise = conv.conv1(x).numpy()
        for c in range(6):  # channel c is filtered by its own 3x3 filter only
            alone = F.conv2d(x[:, c:c + 1], conv.conv1.weight[c:c + 1], padding=1).numpy()
            np.testing.assert_allclose(depthwise[:, c:c + 1], alone, rtol=1e-5, atol=1e-6)
        with_relu = conv.pointwise(F.relu(conv.conv1(x))).numpy()
        assert not np.allclose(conv(x).numpy(), with_relu)  # no ReLU between the two halves


STAGES_AT_64 = {  # 224 x 224 would give 56, 28, 14, 7 for layer1 .. layer4
    "se_resnet50": {"maxpool": (1, 64, 16, 16)},
    "senet154": {"layer0": (1, 128, 32, 32), "pool0": (1, 128, 16, 16)},  # three 3x3 convs, the first stride 2
}


@pytest.mark.parametrize("name", sorted(STAGES_AT_64))
def test_se_stage_shapes(name, models):
    expected = dict(STAGES_AT_64[name], layer1=(1, 256, 16, 16), layer2=(1, 512, 8, 8), layer3=(1, 1024, 4, 4),
                    layer4=(1, 2048, 2, 2))
    assert stage_shapes(models(name), list(expected), minidl.randn(1, 3, 64, 64)) == expected
