"""Wide ResNet: Zagoruyko and Komodakis, "Wide Residual Networks", BMVC 2016.

Depth is not all that matters: a pre-activation ResNet made k times wider (k x the channels in every
3x3 conv) and much shallower trains faster (wide layers parallelise better on a GPU) and is more
accurate. WRN-d-k on CIFAR (paper Table 1), N = (d - 4) / 6 blocks per group:

    group   | output size | block type = B(3,3)
    conv1   | 32 x 32     | [3x3, 16]
    conv2   | 32 x 32     | [3x3, 16k; 3x3, 16k] x N
    conv3   | 16 x 16     | [3x3, 32k; 3x3, 32k] x N
    conv4   | 8 x 8       | [3x3, 64k; 3x3, 64k] x N
    avg-pool| 1 x 1       | [8 x 8]

The blocks are pre-activation basic blocks (BN-ReLU-conv), with optional dropout between the two convs
(the paper's "B(3,3) with dropout"; 0.3 in its best CIFAR runs); a 1x1 conv projects the shortcut where
the width changes. The depth is d = 6N + 4, as in the authors' code (WRN-28-10: N = 4); by the
usual reading the "+4" is the first conv and the three 1x1 projections that start the groups.

torchvision's ``wide_resnet50_2`` / ``wide_resnet101_2`` are a different thing under the same name: the
ImageNet bottleneck ResNet-50/101 with the 3x3 layer of every bottleneck twice as wide (base width 128,
so 128-256-512-1024 inner channels); the outer 1x1 widths are unchanged.
"""
from minidl import nn
from minidl.models.preact_resnet import PreActBasicBlock, make_preact_layer
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_WIDE, IMAGENET_RESNET
from minidl.models.resnet import Bottleneck, ResNet, conv3x3, init_resnet

PAPER = "Zagoruyko, Komodakis: Wide Residual Networks, BMVC 2016"


class WideResNet(nn.Module):
    """WRN-depth-k for 32 x 32 inputs (see the table above); shapes for a 32 x 32 input."""

    def __init__(self, depth, widen_factor, num_classes=10, dropout=0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet: depth must be 6N+4 (16, 22, 28, 40, ...), got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = conv3x3(3, 16)
        self.layer1, inplanes = make_preact_layer(PreActBasicBlock, 16, widths[0], n, 1, dropout=dropout)
        self.layer2, inplanes = make_preact_layer(PreActBasicBlock, inplanes, widths[1], n, 2, dropout=dropout)
        self.layer3, inplanes = make_preact_layer(PreActBasicBlock, inplanes, widths[2], n, 2, dropout=dropout)
        self.bn_final = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        init_resnet(self)

    def forward(self, x):
        x = self.conv1(x)                       # N x 16 x 32 x 32      (conv1)
        x = self.layer1(x)                      # N x 16k x 32 x 32     (conv2)
        x = self.layer2(x)                      # N x 32k x 16 x 16     (conv3)
        x = self.layer3(x)                      # N x 64k x 8 x 8       (conv4)
        x = self.relu(self.bn_final(x))         # N x 64k x 8 x 8
        x = self.avgpool(x).flatten(1)          # N x 64k
        return self.fc(x)                       # N x num_classes


def wide_resnet_cifar(depth, k, num_classes=10, dropout=0.0):
    """WRN-depth-k: ``wide_resnet_cifar(28, 10)`` is WRN-28-10 (36.5M parameters)."""
    return WideResNet(depth, k, num_classes=num_classes, dropout=dropout)


@register_model("WRN-16-8 for CIFAR: 2 blocks per group, widths 128-256-512, 11.0M parameters", PAPER,
                recipe=CIFAR_WIDE)
def wrn16_8(num_classes=10, dropout=0.0):
    return wide_resnet_cifar(16, 8, num_classes, dropout)


@register_model("WRN-28-10 for CIFAR: 4 blocks per group, widths 160-320-640, 36.5M parameters", PAPER,
                recipe=CIFAR_WIDE)
def wrn28_10(num_classes=10, dropout=0.0):
    return wide_resnet_cifar(28, 10, num_classes, dropout)


@register_model("WRN-40-4 for CIFAR: 6 blocks per group, widths 64-128-256, 8.9M parameters", PAPER, recipe=CIFAR_WIDE)
def wrn40_4(num_classes=10, dropout=0.0):
    return wide_resnet_cifar(40, 4, num_classes, dropout)


@register_model("Wide ResNet-50-2 (torchvision): ResNet-50 with bottlenecks twice as wide, 68.9M parameters", PAPER,
                recipe=IMAGENET_RESNET)
def wide_resnet50_2(num_classes=1000, **kwargs):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, width_per_group=64 * 2, **kwargs)


@register_model("Wide ResNet-101-2 (torchvision): ResNet-101 with bottlenecks twice as wide, 126.9M parameters",
                PAPER, recipe=IMAGENET_RESNET)
def wide_resnet101_2(num_classes=1000, **kwargs):
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, width_per_group=64 * 2, **kwargs)
