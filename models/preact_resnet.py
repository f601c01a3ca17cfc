"""Pre-activation ResNet: He, Zhang, Ren and Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.

The original block computes ``x_{l+1} = ReLU(x_l + F(x_l))``: the ReLU after the addition sits on the
path from every block to every later one. Moving BN and ReLU in front of each conv ("pre-activation")
makes the shortcut a pure identity, ``x_{l+1} = x_l + F(x_l)``, so ``x_L = x_l + sum_i F(x_i)`` and the
gradient reaches every block unchanged through the sum (paper Eqs. 4-5). The lecture notes mention a
debate about where BN and the activation belong; for ResNets this paper's ablation of the placements
(its Fig. 4) is the reference.

Where a block changes the shape, the activation is applied "before splitting into two paths" (paper
Appendix), so the projection shortcut (a bare 1x1 conv, no BN, as in the authors' code
KaimingHe/resnet-1k-layers) sees the pre-activated input; the last block is followed by an extra BN-ReLU.
The ImageNet nets follow fb.resnet.torch's ``preresnet.lua``: the stem is conv-BN-ReLU-maxpool, so the very
first block skips its own BN-ReLU.

>>> preact_resnet164(num_classes=10)(minidl.randn(2, 3, 32, 32)).shape
(2, 10)
"""
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_RESNET, IMAGENET_RESNET
from minidl.models.resnet import conv1x1, conv3x3, init_resnet

PAPER = "He, Zhang, Ren, Sun: Identity Mappings in Deep Residual Networks, ECCV 2016"


class PreActBasicBlock(nn.Module):
    """BN - ReLU - conv3x3(stride) - BN - ReLU - [dropout] - conv3x3, + shortcut. No ReLU after the sum.

    ``preact``: ``"branch"`` (BN-ReLU on the residual branch only, identity shortcut on x), ``"both"``
    (BN-ReLU before the split; the shortcut sees the activated input) or ``"none"`` (the input is already
    activated: the first block after an ImageNet stem). ``dropout`` between the convs is Wide ResNet's.
    """
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, preact="branch", dropout=0.0):
        super().__init__()
        self.preact = preact
        if preact != "none":
            self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = x if self.preact == "none" else self.relu(self.bn1(x))
        shortcut_in = x if self.preact == "branch" else out
        shortcut = shortcut_in if self.downsample is None else self.downsample(shortcut_in)
        out = self.relu(self.bn2(self.conv1(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv2(out) + shortcut


class PreActBottleneck(nn.Module):
    """BN-ReLU-1x1 (planes) - BN-ReLU-3x3 (planes, stride) - BN-ReLU-1x1 (4 planes), + shortcut.

    Deviation from the authors' code: the stride sits on the 3x3 conv (torchvision's "v1.5" placement, as
    in resnet.Bottleneck); resnet-1k-layers puts it on the first 1x1. Same parameter count.
    """
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, preact="branch"):
        super().__init__()
        self.preact = preact
        if preact != "none":
            self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = x if self.preact == "none" else self.relu(self.bn1(x))
        shortcut_in = x if self.preact == "branch" else out
        shortcut = shortcut_in if self.downsample is None else self.downsample(shortcut_in)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + shortcut


def make_preact_layer(block, inplanes, planes, blocks, stride=1, first_preact="both", **block_kwargs):
    """One stage of pre-activation blocks; a bare 1x1 conv projects where the shape changes (option B).
    Returns ``(nn.Sequential, output channels)``."""
    outplanes = planes * block.expansion
    layers = []
    for i in range(blocks):
        in_i, stride_i = (inplanes, stride) if i == 0 else (outplanes, 1)
        downsample = conv1x1(in_i, outplanes, stride_i) if stride_i != 1 or in_i != outplanes else None
        preact = first_preact if i == 0 else "branch"
        layers.append(block(in_i, planes, stride_i, downsample, preact=preact, **block_kwargs))
    return nn.Sequential(*layers), outplanes


class PreActResNet(nn.Module):
    """ImageNet pre-activation ResNet (same stage table as resnet.IMAGENET_CONFIGS). Shapes for 224 x 224,
    e = block.expansion."""

    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1, inplanes = make_preact_layer(block, 64, 64, layers[0], 1, first_preact="none")
        self.layer2, inplanes = make_preact_layer(block, inplanes, 128, layers[1], 2)
        self.layer3, inplanes = make_preact_layer(block, inplanes, 256, layers[2], 2)
        self.layer4, inplanes = make_preact_layer(block, inplanes, 512, layers[3], 2)
        self.bn_final = nn.BatchNorm2d(inplanes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        init_resnet(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))  # N x 64 x 112 x 112
        x = self.maxpool(x)                     # N x 64 x 56 x 56
        x = self.layer1(x)                      # N x 64e x 56 x 56
        x = self.layer2(x)                      # N x 128e x 28 x 28
        x = self.layer3(x)                      # N x 256e x 14 x 14
        x = self.layer4(x)                      # N x 512e x 7 x 7
        x = self.relu(self.bn_final(x))         # N x 512e x 7 x 7      (the extra activation after the last block)
        x = self.avgpool(x).flatten(1)          # N x 512e
        return self.fc(x)                       # N x num_classes


class PreActCifarResNet(nn.Module):
    """CIFAR pre-activation ResNet: conv3x3(16), three stages at 32, 16 and 8 pixels, BN-ReLU, pool, fc.

    ResNet-110 uses basic blocks with widths 16-32-64 (depth 6n+2); ResNet-164 and -1001 bottleneck blocks
    with outputs 64-128-256 (depth 9n+2), as in the authors' resnet-pre-act.lua. Shapes for 32 x 32,
    w = widths, e = block.expansion.
    """

    def __init__(self, block, layers, num_classes=10, widths=(16, 32, 64), **block_kwargs):
        super().__init__()
        self.conv1 = conv3x3(3, 16)
        self.layer1, inplanes = make_preact_layer(block, 16, widths[0], layers[0], 1, **block_kwargs)
        self.layer2, inplanes = make_preact_layer(block, inplanes, widths[1], layers[1], 2, **block_kwargs)
        self.layer3, inplanes = make_preact_layer(block, inplanes, widths[2], layers[2], 2, **block_kwargs)
        self.bn_final = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        init_resnet(self)

    def forward(self, x):
        x = self.conv1(x)                       # N x 16 x 32 x 32
        x = self.layer1(x)                      # N x w[0]e x 32 x 32
        x = self.layer2(x)                      # N x w[1]e x 16 x 16
        x = self.layer3(x)                      # N x w[2]e x 8 x 8
        x = self.relu(self.bn_final(x))         # N x w[2]e x 8 x 8
        x = self.avgpool(x).flatten(1)          # N x w[2]e
        return self.fc(x)                       # N x num_classes


# Same stage table as the original ResNet (He et al. 2016a, Table 1).
IMAGENET_CONFIGS = {
    18: (PreActBasicBlock, [2, 2, 2, 2]),
    34: (PreActBasicBlock, [3, 4, 6, 3]),
    50: (PreActBottleneck, [3, 4, 6, 3]),
    101: (PreActBottleneck, [3, 4, 23, 3]),
    152: (PreActBottleneck, [3, 8, 36, 3]),
}


def _preact(depth, num_classes):
    block, layers = IMAGENET_CONFIGS[depth]
    return PreActResNet(block, layers, num_classes)


def preact_cifar_resnet(depth, num_classes=10, bottleneck=None):
    """CIFAR pre-activation ResNet: basic blocks for depth 6n+2, bottlenecks for 9n+2 (``bottleneck=True``)."""
    bottleneck = depth >= 164 if bottleneck is None else bottleneck
    per_block = 9 if bottleneck else 6
    if (depth - 2) % per_block:
        raise ValueError(f"preact_cifar_resnet: depth must be {per_block}n+2 with "
                         f"{'bottleneck' if bottleneck else 'basic'} blocks, got {depth}")
    n = (depth - 2) // per_block
    block = PreActBottleneck if bottleneck else PreActBasicBlock
    return PreActCifarResNet(block, [n, n, n], num_classes=num_classes)


@register_model("Pre-activation ResNet-18 (BN-ReLU-conv blocks, identity shortcuts)", PAPER, recipe=IMAGENET_RESNET)
def preact_resnet18(num_classes=1000):
    return _preact(18, num_classes)


@register_model("Pre-activation ResNet-34", PAPER, recipe=IMAGENET_RESNET)
def preact_resnet34(num_classes=1000):
    return _preact(34, num_classes)


@register_model("Pre-activation ResNet-50 (bottleneck)", PAPER, recipe=IMAGENET_RESNET)
def preact_resnet50(num_classes=1000):
    return _preact(50, num_classes)


@register_model("Pre-activation ResNet-101 (bottleneck)", PAPER, recipe=IMAGENET_RESNET)
def preact_resnet101(num_classes=1000):
    return _preact(101, num_classes)


@register_model("Pre-activation ResNet-152 (bottleneck)", PAPER, recipe=IMAGENET_RESNET)
def preact_resnet152(num_classes=1000):
    return _preact(152, num_classes)


@register_model("CIFAR pre-activation ResNet-110 (basic blocks), 1.7M parameters", PAPER, recipe=CIFAR_RESNET)
def preact_resnet110(num_classes=10):
    return preact_cifar_resnet(110, num_classes, bottleneck=False)


@register_model("CIFAR pre-activation ResNet-164 (bottleneck blocks), 1.7M parameters", PAPER, recipe=CIFAR_RESNET)
def preact_resnet164(num_classes=10):
    return preact_cifar_resnet(164, num_classes, bottleneck=True)
