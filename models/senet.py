"""Squeeze-and-Excitation networks: Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.

An SE block recalibrates the channels of a feature map U (C x H x W) with weights computed from U itself:

    squeeze:    z = global average pool of U                      (C)
    excitation: s = sigmoid(W2 ReLU(W1 z)), W1: C/r x C, W2: C x C/r (r = 16, the "reduction ratio")
    scale:      out = s[:, None, None] * U                        (C x H x W)

In a ResNet it goes on the residual branch, after the last BN and before the addition (paper Fig. 3).
It adds 2 C^2 / r weights per block: about 10% to ResNet-50.

* ``se_resnet50``: torchvision's ResNet-50 with an SE block in every bottleneck, 28,088,024 parameters,
  equal to timm's ``seresnet50`` (the paper: 28.1M) and named like it (``layer1.0.se.fc1``), so
  its state dict loads directly. As everywhere in minidl (resnet.Bottleneck) the stride is on the 3x3
  conv; the paper's Caffe models put it on the first 1x1 (``stride_in_1x1=True``).
* ``senet154``: the ILSVRC 2017 winner, SE-ResNeXt-152 (64x4d) with the changes of the paper's
  Appendix: the first 1x1 conv of every bottleneck has half the channels; the 7x7 stem is three 3x3 convs;
  the strided 1x1 projection shortcuts are 3x3 stride-2 convs (except in the first stage, which does not
  downsample); dropout 0.2 before the classifier. 115,088,984 parameters, matching Cadene's
  ``pretrainedmodels`` definition and timm's ``legacy_senet154`` (the paper: 115.1M); named like them
  (``layer0.conv1``, ``layer1.0.se_module.fc1``, ``last_linear``). Deviation from those: global average
  pooling instead of a fixed 7x7 average pool, so that inputs smaller than 224 x 224 work (the same at 224).

The two FC layers of the excitation are 1x1 convolutions with bias, as in both references (the same
parameters as ``nn.Linear``, without reshaping).
"""
from collections import OrderedDict

import minidl.functions as F
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import IMAGENET_RESNET
from minidl.models.resnet import Bottleneck, ResNet, init_resnet

PAPER = "Hu, Shen, Sun: Squeeze-and-Excitation Networks, CVPR 2018"


class SEModule(nn.Module):
    """U (N, C, H, W) -> U * sigmoid(fc2(ReLU(fc1(mean_hw(U))))), fc1: C -> C // r, fc2: C // r -> C."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        s = x.mean(axis=(2, 3), keepdims=True)  # squeeze:    N x C x 1 x 1
        s = self.fc2(self.relu(self.fc1(s)))    # excitation: N x C x 1 x 1
        return x * F.sigmoid(s)                 # scale:      N x C x H x W


class SEBottleneck(Bottleneck):
    """resnet.Bottleneck with an SE block on the residual branch, after bn3 and before the addition."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, reduction=16,
                 stride_in_1x1=False):
        super().__init__(inplanes, planes, stride, None, groups, base_width, stride_in_1x1)
        self.se = SEModule(planes * self.expansion, reduction)
        self.downsample = downsample  # registered after `se`, the order of timm's state dict

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


class SENet154Bottleneck(nn.Module):
    """SENet-154's block: 1x1 (2 planes) - 3x3 (4 planes, 64 groups, stride) - 1x1 (4 planes) - SE, + shortcut.

    A ResNeXt-152 64x4d bottleneck would have 4 planes channels after the first 1x1; SENet-154 halves them.
    """
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=64, reduction=16):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes * 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes * 2)
        self.conv2 = nn.Conv2d(planes * 2, planes * 4, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(planes * 4)
        self.conv3 = nn.Conv2d(planes * 4, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.se_module = SEModule(planes * 4, reduction)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se_module(self.bn3(self.conv3(out)))
        return self.relu(out + identity)

    def last_bn(self):
        return self.bn3


def _senet154_layer(inplanes, planes, blocks, stride, shortcut_kernel):
    outplanes = planes * SENet154Bottleneck.expansion
    downsample = nn.Sequential(
        nn.Conv2d(inplanes, outplanes, shortcut_kernel, stride=stride, padding=shortcut_kernel // 2, bias=False),
        nn.BatchNorm2d(outplanes))
    layers = [SENet154Bottleneck(inplanes, planes, stride, downsample)]
    layers += [SENet154Bottleneck(outplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), outplanes


class SENet154(nn.Module):
    """SENet-154, blocks [3, 8, 36, 3] (ResNet-152's table). Shapes for 224 x 224."""

    def __init__(self, num_classes=1000, dropout=0.2):
        super().__init__()
        self.layer0 = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)),
            ("bn1", nn.BatchNorm2d(64)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(64, 64, 3, padding=1, bias=False)),
            ("bn2", nn.BatchNorm2d(64)),
            ("relu2", nn.ReLU()),
            ("conv3", nn.Conv2d(64, 128, 3, padding=1, bias=False)),
            ("bn3", nn.BatchNorm2d(128)),
            ("relu3", nn.ReLU()),
        ]))
        self.pool0 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # ceil_mode as in the Caffe original
        self.layer1, inplanes = _senet154_layer(128, 64, 3, 1, shortcut_kernel=1)
        self.layer2, inplanes = _senet154_layer(inplanes, 128, 8, 2, shortcut_kernel=3)
        self.layer3, inplanes = _senet154_layer(inplanes, 256, 36, 2, shortcut_kernel=3)
        self.layer4, inplanes = _senet154_layer(inplanes, 512, 3, 2, shortcut_kernel=3)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(inplanes, num_classes)
        init_resnet(self)

    def forward(self, x):
        x = self.layer0(x)                      # N x 128 x 112 x 112      (three 3x3 convs, the first stride 2)
        x = self.pool0(x)                       # N x 128 x 56 x 56
        x = self.layer1(x)                      # N x 256 x 56 x 56
        x = self.layer2(x)                      # N x 512 x 28 x 28
        x = self.layer3(x)                      # N x 1024 x 14 x 14
        x = self.layer4(x)                      # N x 2048 x 7 x 7
        x = self.dropout(self.avgpool(x).flatten(1))  # N x 2048
        return self.last_linear(x)              # N x num_classes


@register_model("SE-ResNet-50: ResNet-50 with squeeze-and-excitation (r=16), 28.1M parameters", PAPER,
                recipe=IMAGENET_RESNET)
def se_resnet50(num_classes=1000, **kwargs):
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes=num_classes, **kwargs)


@register_model("SENet-154: SE-ResNeXt-152 (64x4d) with a 3x3 stem and 3x3 projection shortcuts, 115.1M parameters",
                PAPER, recipe=IMAGENET_RESNET)
def senet154(num_classes=1000, dropout=0.2):
    return SENet154(num_classes, dropout)
