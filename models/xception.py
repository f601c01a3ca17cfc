"""Xception: Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017.

Inception taken to the limit: a 3x3 convolution over C channels is replaced by a *depthwise* 3x3 conv
(one filter per channel: ``Conv2d(C, C, 3, groups=C)``, 9 C weights) followed by a *pointwise* 1x1 conv
(C x C' weights), "mapping cross-channel correlations and spatial correlations completely separately".
Its 36 conv layers (a separable conv counts as one) form 14 modules, all but the first and last with
residual connections around them (paper Figure 5); inputs are 299 x 299:

    flow   | modules                                                              | output (299 input)
    entry  | conv 3x3/2 32, conv 3x3 64 (both unpadded)                           | 64 x 147 x 147
           | 3 modules: [sep 128, sep 128, maxpool 3x3/2] + 1x1/2 conv shortcut   | 128 x 74 x 74
           |            [ReLU, sep 256, ReLU, sep 256, maxpool] + 1x1/2 shortcut  | 256 x 37 x 37
           |            [ReLU, sep 728, ReLU, sep 728, maxpool] + 1x1/2 shortcut  | 728 x 19 x 19
    middle | 8 x [ReLU, sep 728] x 3 + identity shortcut                          | 728 x 19 x 19
    exit   | [ReLU, sep 728, ReLU, sep 1024, maxpool] + 1x1/2 shortcut            | 1024 x 10 x 10
           | sep 1536, ReLU, sep 2048, ReLU, global average pool, fc              | 2048 -> classes

Every conv and separable conv is followed by batch normalisation; there is no ReLU between the
depthwise and pointwise halves of a separable conv (the paper found it hurts). 22,855,952 parameters
(paper Table 3), the same as Keras' ``Xception`` (trainable) and timm's ``legacy_xception``.

Names follow timm's ``legacy_xception`` (Cadene's port of the Keras weights: ``block1.skip``,
``block1.rep.0.conv1`` for the depthwise and ``.pointwise`` for the 1x1, ``fc``), so its state dict
loads directly. Deviation from Keras, as in that port: the max pools use symmetric padding 1, where
TensorFlow's "same" pads 0 before and 1 after on even sizes; the shapes are the same.
"""
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import IMAGENET_XCEPTION

PAPER = "Chollet: Xception: Deep Learning with Depthwise Separable Convolutions, CVPR 2017"


class SeparableConv2d(nn.Module):
    """Depthwise KxK conv (groups = in_channels) then pointwise 1x1 conv; no bias, no activation between."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    """``reps`` x [ReLU, SeparableConv2d, BN] (+ a 3x3/2 max pool) plus a shortcut: identity, or a strided
    1x1 conv + BN where the shape changes. ``grow_first``: widen at the first separable conv (entry,
    middle) or the last (the exit flow's 728 -> 728 -> 1024)."""

    def __init__(self, in_channels, out_channels, reps, stride=1, start_with_relu=True, grow_first=True):
        super().__init__()
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        else:
            self.skip = None
        rep = []
        for i in range(reps):
            if grow_first:
                cin, cout = (in_channels if i == 0 else out_channels), out_channels
            else:
                cin, cout = in_channels, (in_channels if i < reps - 1 else out_channels)
            rep += [nn.ReLU(), SeparableConv2d(cin, cout), nn.BatchNorm2d(cout)]
        if not start_with_relu:
            rep = rep[1:]  # block1 follows the stem's ReLU
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride, padding=1))
        self.rep = nn.Sequential(*rep)

    def forward(self, x):
        shortcut = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + shortcut


class Xception(nn.Module):
    """Entry, middle and exit flows (see the module docstring); shapes for a 299 x 299 input."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)
        self.block2 = Block(128, 256, 2, 2)
        self.block3 = Block(256, 728, 2, 2)
        for i in range(4, 12):  # the middle flow, repeated eight times
            setattr(self, f"block{i}", Block(728, 728, 3, 1))
        self.block12 = Block(728, 1024, 2, 2, grow_first=False)
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))  # N x 32 x 149 x 149       entry flow
        x = self.relu(self.bn2(self.conv2(x)))  # N x 64 x 147 x 147
        x = self.block1(x)                      # N x 128 x 74 x 74
        x = self.block2(x)                      # N x 256 x 37 x 37
        x = self.block3(x)                      # N x 728 x 19 x 19
        for i in range(4, 12):
            x = getattr(self, f"block{i}")(x)   # N x 728 x 19 x 19        middle flow
        x = self.block12(x)                     # N x 1024 x 10 x 10       exit flow
        x = self.relu(self.bn3(self.conv3(x)))  # N x 1536 x 10 x 10
        x = self.relu(self.bn4(self.conv4(x)))  # N x 2048 x 10 x 10
        x = self.avgpool(x).flatten(1)          # N x 2048
        return self.fc(x)                       # N x num_classes


@register_model("Xception: depthwise separable convs, entry/middle/exit flows, 299x299 input, 22.9M parameters",
                PAPER, recipe=IMAGENET_XCEPTION)
def xception(num_classes=1000):
    return Xception(num_classes)
