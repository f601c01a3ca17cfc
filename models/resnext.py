"""ResNeXt: Xie, Girshick, Dollar, Tu and He, "Aggregated Residual Transformations for Deep Neural
Networks", CVPR 2017.

GoogLeNet's split-transform-merge inside a ResNet block: the block is the sum of C identical branches
(C = "cardinality"), each 1x1 (d channels) - 3x3 (d) - 1x1. The paper shows (its Fig. 3) that this equals
one bottleneck whose 3x3 conv is a *grouped* conv with C groups of d channels, so ResNeXt is
``resnet.Bottleneck`` with ``groups=C, base_width=d``: inner width ``C * d * planes / 64``. Name
"32x4d": C = 32 paths of width d = 4 in the first stage (128 inner channels, as wide as ResNet-50's 64 x 2).

ImageNet stage table: ResNet's (Table 1 of the ResNeXt paper), with the inner widths of the 32x4d net

    stage  | output  | ResNeXt-50 (32x4d)
    conv1  | 112x112 | 7x7, 64, stride 2
    conv2  | 56x56   | [1x1, 128; 3x3, 128, C=32; 1x1, 256] x 3
    conv3  | 28x28   | [1x1, 256; 3x3, 256, C=32; 1x1, 512] x 4
    conv4  | 14x14   | [1x1, 512; 3x3, 512, C=32; 1x1, 1024] x 6
    conv5  | 7x7     | [1x1, 1024; 3x3, 1024, C=32; 1x1, 2048] x 3

ResNeXt-29 for CIFAR (paper Section 5.3): a 3x3 conv with 64 filters, then 3 stages of 3 bottleneck
blocks with outputs 256, 512 and 1024 at 32, 16 and 8 pixels, projection shortcuts where the shape
changes, global average pooling and a fully connected layer: 1 + 9 x 3 + 1 = 29 layers. Inner width of
the first stage is C x d (8 x 64 = 512), doubling at each stage. Like ResNeXt's own code and
torchvision, the stride sits on the 3x3 conv.
"""
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_RESNET, IMAGENET_RESNET
from minidl.models.resnet import Bottleneck, CifarResNet, ResNet

PAPER = "Xie, Girshick, Dollar, Tu, He: Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017"


def resnext_cifar(cardinality, bottleneck_width, num_classes=10, depth=29):
    """ResNeXt-depth (C x d) for CIFAR; ``depth = 9n + 2`` (29: three blocks per stage)."""
    if (depth - 2) % 9:
        raise ValueError(f"resnext_cifar: depth must be 9n+2 (29 in the paper), got {depth}")
    n = (depth - 2) // 9
    return CifarResNet(Bottleneck, [n, n, n], num_classes=num_classes, widths=(64, 128, 256), stem_width=64,
                       shortcut="B", groups=cardinality, base_width=bottleneck_width)


@register_model("ResNeXt-50 (32x4d): ResNet-50 with 32-group 3x3 convs, 25.0M parameters", PAPER,
                recipe=IMAGENET_RESNET)
def resnext50_32x4d(num_classes=1000, **kwargs):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, groups=32, width_per_group=4, **kwargs)


@register_model("ResNeXt-101 (32x8d), 88.8M parameters", PAPER, recipe=IMAGENET_RESNET)
def resnext101_32x8d(num_classes=1000, **kwargs):
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, groups=32, width_per_group=8, **kwargs)


@register_model("ResNeXt-101 (64x4d), 83.5M parameters", PAPER, recipe=IMAGENET_RESNET)
def resnext101_64x4d(num_classes=1000, **kwargs):
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, groups=64, width_per_group=4, **kwargs)


@register_model("ResNeXt-29 (8x64d) for CIFAR, 34.4M parameters", PAPER, recipe=CIFAR_RESNET)
def resnext29_8x64d(num_classes=10):
    return resnext_cifar(8, 64, num_classes)


@register_model("ResNeXt-29 (16x64d) for CIFAR, 68.1M parameters", PAPER, recipe=CIFAR_RESNET)
def resnext29_16x64d(num_classes=10):
    return resnext_cifar(16, 64, num_classes)
