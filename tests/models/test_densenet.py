"""DenseNet: parameter counts (torchvision, the paper), dense connectivity, stage shapes."""
import numpy as np
import pytest

import minidl
from tests.models.residual_checks import build, count, forward_backward, in_millions, stage_shapes

COUNTS = {
    "densenet121": 7_978_856,   # torchvision 0.29.1 densenet121
    "densenet161": 28_681_000,  # torchvision 0.29.1 densenet161
    "densenet169": 14_149_480,  # torchvision 0.29.1 densenet169
    "densenet201": 20_013_928,  # torchvision 0.29.1 densenet201
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_imagenet_densenets(name):
    model = build(name)
    assert count(model) == COUNTS[name]
    forward_backward(model, minidl.randn(1, 3, 64, 64), 1000)


def test_densenet_bc_100_12():
    model = build("densenet_bc_100_12")
    n = count(model)
    assert in_millions(n) == 0.8  # Huang et al. 2017, Table 2
    # By hand: 3x3 stem conv to 2k = 24 channels; 48 bottleneck layers; transitions 216 -> 108, 300 -> 150.
    k, layers = 12, []
    c = 24
    for block in range(3):
        for _ in range(16):
            layers.append(2 * c + c * 4 * k + 2 * 4 * k + 9 * 4 * k * k)  # BN, 1x1 conv, BN, 3x3 conv
            c += k
        if block < 2:
            layers.append(2 * c + c * (c // 2))  # transition: BN, 1x1 conv
            c //= 2
    assert n == 27 * 24 + sum(layers) + 2 * c + c * 10 + 10 == 769_162
    forward_backward(model, minidl.randn(2, 3, 32, 32), 10)


def test_stage_shapes_at_224():
    """Paper Table 1 (DenseNet-121, k = 32)."""
    model = build("densenet121")
    names = [f"features.{n}" for n in ("pool0", "denseblock1", "transition1", "denseblock2", "transition2",
                                       "denseblock3", "transition3", "denseblock4", "norm5")]
    shapes = stage_shapes(model, names, minidl.randn(1, 3, 224, 224))
    assert [shapes[n] for n in names] == [(1, 64, 56, 56), (1, 256, 56, 56), (1, 128, 28, 28), (1, 512, 28, 28),
                                          (1, 256, 14, 14), (1, 1024, 14, 14), (1, 512, 7, 7), (1, 1024, 7, 7),
                                          (1, 1024, 7, 7)]


def test_cifar_stage_shapes():
    model = build("densenet_bc_100_12")
    names = ["features.conv0", "features.denseblock1", "features.transition1", "features.denseblock2",
             "features.transition2", "features.denseblock3"]
    shapes = stage_shapes(model, names, minidl.randn(2, 3, 32, 32))
    assert [shapes[n] for n in names] == [(2, 24, 32, 32), (2, 216, 32, 32), (2, 108, 16, 16), (2, 300, 16, 16),
                                          (2, 150, 8, 8), (2, 342, 8, 8)]


def test_dense_block_concatenates_its_input_and_every_layer_output():
    model = build("densenet_bc_100_12").eval()
    block = model.features.denseblock2
    assert [layer.conv1.in_channels for layer in block.children()] == [108 + 12 * i for i in range(16)]
    x = minidl.randn(2, 108, 8, 8)
    with minidl.no_grad():
        out = block(x).numpy()
        first = block.denselayer1([x]).numpy()
    np.testing.assert_array_equal(out[:, :108], x.numpy())  # the input passes through unchanged
    np.testing.assert_allclose(out[:, 108:120], first, rtol=1e-5, atol=1e-6)


def test_transition_is_bn_relu_conv_pool():
    """The authors' code and torchvision put a ReLU in the transition; the notes say BN, 1x1 conv, 2x2 pool."""
    transition = build("densenet121").features.transition1
    assert [name for name, _ in transition.named_children()] == ["norm", "relu", "conv", "pool"]
    assert (transition.conv.in_channels, transition.conv.out_channels) == (256, 128)  # compression 0.5
