"""ResNet, pre-activation ResNet, Wide ResNet and ResNeXt: parameter counts against the papers and the
reference libraries, a train step on every model, stage shapes, the shortcut options."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.models import get_model
from minidl.models.preact_resnet import PreActBasicBlock
from minidl.models.resnet import Bottleneck, ZeroPadShortcut
from tests.models.residual_checks import build, count, forward_backward, in_millions, stage_shapes

# name: (expected count, digits the source rounds to (None: exact), source)
COUNTS = {
    "resnet18": (11_689_512, None, "torchvision 0.29.1 resnet18"),
    "resnet34": (21_797_672, None, "torchvision 0.29.1 resnet34"),
    # resnet34 less its three projections (1x1 conv + BN): (64*128 + 2*128) + (128*256 + 2*256) + (256*512 + 2*512)
    "resnet34_a": (21_797_672 - 173_824, None, "arithmetic: option A has no projection parameters"),
    "resnet50": (25_557_032, None, "torchvision 0.29.1 resnet50"),
    "resnet101": (44_549_160, None, "torchvision 0.29.1 resnet101"),
    "resnet152": (60_192_808, None, "torchvision 0.29.1 resnet152"),
    "resnet20": (0.27, 2, "He et al. 2016, Table 6"),
    "resnet32": (0.46, 2, "He et al. 2016, Table 6"),
    "resnet44": (0.66, 2, "He et al. 2016, Table 6"),
    "resnet56": (0.85, 2, "He et al. 2016, Table 6"),
    "resnet110": (1.7, 1, "He et al. 2016, Table 6"),
    # timm's ResNetV2 is the same pre-activation net, except that its stem BN sits after the max pool
    "preact_resnet18": (11_687_720, None, "timm 1.0.31 resnetv2_18"),
    "preact_resnet34": (21_795_880, None, "timm 1.0.31 resnetv2_34"),
    "preact_resnet50": (25_549_352, None, "timm 1.0.31 resnetv2_50"),
    "preact_resnet101": (44_541_480, None, "timm 1.0.31 resnetv2_101"),
    "preact_resnet152": (60_185_128, None, "timm 1.0.31 resnetv2_152"),
    "preact_resnet110": (1.7, 1, "He et al. 2016b (Identity Mappings), CIFAR-10 results"),
    "preact_resnet164": (1.7, 1, "He et al. 2016b (Identity Mappings), CIFAR-10 results"),
    "wrn16_8": (11.0, 1, "Zagoruyko & Komodakis 2016, CIFAR results"),
    "wrn28_10": (36.5, 1, "Zagoruyko & Komodakis 2016, CIFAR results (36,479,194 in the authors' code)"),
    "wrn40_4": (8.9, 1, "Zagoruyko & Komodakis 2016, CIFAR results"),
    "wide_resnet50_2": (68_883_240, None, "torchvision 0.29.1 wide_resnet50_2"),
    "wide_resnet101_2": (126_886_696, None, "torchvision 0.29.1 wide_resnet101_2"),
    "resnext50_32x4d": (25_028_904, None, "torchvision 0.29.1 resnext50_32x4d"),
    "resnext101_32x8d": (88_791_336, None, "torchvision 0.29.1 resnext101_32x8d"),
    "resnext101_64x4d": (83_455_272, None, "torchvision 0.29.1 resnext101_64x4d"),
    "resnext29_8x64d": (34.4, 1, "Xie et al. 2017, Table 7"),
    "resnext29_16x64d": (68.1, 1, "Xie et al. 2017, Table 7"),
}
CIFAR = {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "preact_resnet110", "preact_resnet164",
         "wrn16_8", "wrn28_10", "wrn40_4", "resnext29_8x64d", "resnext29_16x64d"}
TRUNCATED = {"resnext29_16x64d"}  # 68,155,210: the paper truncates (or leaves out BN's 100,480), 68.2M rounded


def _matches(n, expected, digits, truncate=False):
    if digits is None:
        return n == expected
    if truncate:
        return int(n / 10 ** (6 - digits)) / 10 ** digits == expected
    return in_millions(n, digits) == expected


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_count_and_train_step(name):
    expected, digits, source = COUNTS[name]
    num_classes = 10 if name in CIFAR else 1000
    model = build(name, num_classes=num_classes)
    n = count(model)
    assert _matches(n, expected, digits, name in TRUNCATED), f"{name}: {n:,} parameters, {source} says {expected}"

    # Every stage halves the resolution (after ImageNet's stride-4 stem): 32 x 32 -> 32, 16, 8 for CIFAR,
    # 64 x 64 -> 16, 8, 4, 2 for ImageNet nets (224 -> 56, 28, 14, 7: see the test below).
    stages = ["layer1", "layer2", "layer3"] + ([] if name in CIFAR else ["layer4"])
    shapes = {}
    for stage in stages:
        model.get_submodule(stage).register_forward_hook(
            lambda m, i, o, stage=stage: shapes.__setitem__(stage, o.shape[2:]))
    x = minidl.randn(2, 3, 32, 32) if name in CIFAR else minidl.randn(1, 3, 64, 64)
    forward_backward(model, x, num_classes)
    sizes = [32, 16, 8] if name in CIFAR else [16, 8, 4, 2]
    assert [shapes[s] for s in stages] == [(k, k) for k in sizes]


@pytest.mark.parametrize("name, expansion", [("resnet18", 1), ("resnet50", 4)])
def test_stage_shapes_at_224(name, expansion):
    """Paper Table 1: conv1 112x112, conv2_x 56x56, conv3_x 28x28, conv4_x 14x14, conv5_x 7x7."""
    model = build(name)
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"]
    shapes = stage_shapes(model, names, minidl.randn(1, 3, 224, 224))
    e = expansion
    assert shapes == {"conv1": (1, 64, 112, 112), "maxpool": (1, 64, 56, 56), "layer1": (1, 64 * e, 56, 56),
                      "layer2": (1, 128 * e, 28, 28), "layer3": (1, 256 * e, 14, 14),
                      "layer4": (1, 512 * e, 7, 7), "fc": (1, 1000)}


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    x = minidl.randn(2, 16, 7, 7)
    y = ZeroPadShortcut(16, 32, stride=2)(x).numpy()
    assert y.shape == (2, 32, 4, 4)  # the same size as a stride-2 3x3 conv with padding 1
    np.testing.assert_array_equal(y[:, :16], x.numpy()[:, :, ::2, ::2])
    np.testing.assert_array_equal(y[:, 16:], 0.0)


def test_cifar_resnets_have_no_shortcut_parameters():
    """Option A: the residual net has exactly the parameters of its plain counterpart."""
    model = build("resnet20")
    assert not [name for name, _ in model.named_parameters() if "downsample" in name]
    convs = sum(p.numel() for name, p in model.named_parameters() if name.endswith("conv1.weight") or
                name.endswith("conv2.weight"))
    assert convs == 27 * 16 + 3 * 2 * 9 * 16 ** 2 + (9 * 16 * 32 + 5 * 9 * 32 ** 2) + (9 * 32 * 64 + 5 * 9 * 64 ** 2)


def test_shortcut_option_c_projects_every_block():
    b, c = build("resnet18"), build("resnet18", shortcut="C")
    extra = sum(w * w + 2 * w for w in (64, 64, 128, 256, 512))  # 1x1 conv + BN on the 5 blocks B leaves alone
    assert count(c) == count(b) + extra


def test_stride_in_1x1_moves_the_stride_not_the_parameters():
    v15, paper = build("resnet50"), build("resnet50", stride_in_1x1=True)
    assert count(v15) == count(paper)
    assert v15.layer2[0].conv2.stride == (2, 2) and v15.layer2[0].conv1.stride == (1, 1)
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    assert paper(minidl.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_zero_init_residual_makes_every_block_the_identity():
    model = build("resnet18", zero_init_residual=True).eval()
    block = model.layer1[1]
    assert np.all(block.bn2.weight.numpy() == 0)
    x = minidl.rand(2, 64, 8, 8)  # non-negative, like the output of the ReLU before it
    with minidl.no_grad():
        np.testing.assert_allclose(block(x).numpy(), x.numpy(), atol=1e-6)


def test_he_init_fan_out():
    """torchvision's init: conv weights N(0, 2 / (K KH KW)); BN weight 1, bias 0."""
    conv = get_model("resnet50").layer3[0].conv2  # 256 filters of 3x3
    assert conv.weight.numpy().std() == pytest.approx(np.sqrt(2 / (256 * 9)), rel=0.02)


def test_preact_block_has_identity_shortcut_and_no_relu_after_the_sum():
    block = PreActBasicBlock(8, 8).eval()
    nn.init.zeros_(block.conv2.weight)  # residual branch silenced: the block must be the identity
    x = minidl.randn(2, 8, 5, 5)  # negative entries survive: no ReLU after the addition
    with minidl.no_grad():
        np.testing.assert_allclose(block(x).numpy(), x.numpy(), atol=1e-6)


def test_wrn_dropout_is_stochastic_in_training_only():
    model = build("wrn16_8", dropout=0.3)
    model.layer1, model.layer2, model.layer3 = model.layer1[:1], model.layer2[:1], model.layer3[:1]
    x = minidl.randn(2, 3, 16, 16)
    model.train()
    a, b = model(x).numpy(), model(x).numpy()
    assert not np.allclose(a, b)
    model.eval()
    with minidl.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


def test_resnext_bottleneck_is_a_grouped_conv():
    """32x4d: the first stage's 3x3 conv has 32 groups of 4 channels (128 in all), stage widths double."""
    model = build("resnext50_32x4d")
    widths = [getattr(model, f"layer{i}")[0].conv2 for i in range(1, 5)]
    assert [(c.groups, c.in_channels, c.weight.shape[1]) for c in widths] == [
        (32, 128, 4), (32, 256, 8), (32, 512, 16), (32, 1024, 32)]
    assert isinstance(model.layer1[0], Bottleneck)
    cifar = build("resnext29_8x64d")
    assert (cifar.layer1[0].conv2.groups, cifar.layer1[0].conv2.in_channels) == (8, 512)
