"""DenseNet: Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017.

Inside a dense block every layer sees the concatenation of all earlier feature maps of the block,
``x_l = H_l([x_0, x_1, ..., x_{l-1}])``, and adds k new channels ("growth rate") to it: concatenation
instead of ResNet's sum. A block of L layers that starts with c channels ends with c + L k.

* Dense layer (DenseNet-B, "bottleneck"): BN - ReLU - 1x1 conv (4k) - BN - ReLU - 3x3 conv (k).
* Transition between blocks (with compression theta = 0.5, "DenseNet-BC"): BN - ReLU - 1x1 conv
  halving the channels - 2x2 average pool. The lecture notes (and the paper's text) say "BN, 1x1 conv,
  2x2 average pooling"; the authors' code and torchvision put a ReLU after the BN, as here.

ImageNet stage table (paper Table 1), k = 32, shapes for 224 x 224, DenseNet-121 channels:

    layers          | output  | DenseNet-121               | channels after
    convolution     | 112x112 | 7x7 conv, stride 2         | 64
    pooling         | 56x56   | 3x3 max pool, stride 2     | 64
    dense block (1) | 56x56   | [1x1, 3x3] x 6             | 64 + 6 x 32 = 256
    transition (1)  | 28x28   | 1x1 conv, 2x2 avg pool     | 128
    dense block (2) | 28x28   | [1x1, 3x3] x 12            | 128 + 12 x 32 = 512
    transition (2)  | 14x14   | 1x1 conv, 2x2 avg pool     | 256
    dense block (3) | 14x14   | [1x1, 3x3] x 24 (32, 48)   | 256 + 24 x 32 = 1024
    transition (3)  | 7x7     | 1x1 conv, 2x2 avg pool     | 512
    dense block (4) | 7x7     | [1x1, 3x3] x 16 (32, 32)   | 512 + 16 x 32 = 1024
    classification  | 1x1     | BN-ReLU, global avg pool, fc

(DenseNet-169 / -201 differ in blocks 3 and 4, in brackets.) Names follow torchvision
(``features.denseblock1.denselayer1.norm1``, ``features.transition1.conv``, ``classifier``), so its state
dicts load directly.

DenseNet-BC-100 (k = 12) for CIFAR (paper Section 3, "Implementation Details"): a 3x3 conv with 2k
channels, three dense blocks of (100 - 4) / 6 = 16 bottleneck layers at 32, 16 and 8 pixels, transitions
with compression 0.5, then BN-ReLU, global average pooling and a fully connected layer: 0.8M parameters.
"""
from collections import OrderedDict

import minidl.functions as F
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_DENSENET, IMAGENET_RESNET

PAPER = "Huang, Liu, van der Maaten, Weinberger: Densely Connected Convolutional Networks, CVPR 2017"


class DenseLayer(nn.Module):
    """[x_0, ..., x_{l-1}] -> BN-ReLU-conv1x1 (bn_size k) - BN-ReLU-conv3x3 (k) [- dropout] -> x_l."""

    def __init__(self, num_input_features, growth_rate, bn_size=4, drop_rate=0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, features):
        x = F.cat(features, dim=1) if len(features) > 1 else features[0]
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate > 0 else x


class DenseBlock(nn.Module):
    """``num_layers`` dense layers (``denselayer1``, ...); returns the concatenation of input and all outputs."""

    def __init__(self, num_layers, num_input_features, growth_rate, bn_size=4, drop_rate=0.0):
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x):
        features = [x]
        for layer in self.children():
            features.append(layer(features))
        return F.cat(features, dim=1)


class Transition(nn.Sequential):
    """BN - ReLU - 1x1 conv (compression) - 2x2 average pool, stride 2."""

    def __init__(self, num_input_features, num_output_features):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(num_input_features)),
            ("relu", nn.ReLU()),
            ("conv", nn.Conv2d(num_input_features, num_output_features, 1, bias=False)),
            ("pool", nn.AvgPool2d(2, stride=2)),
        ]))


class DenseNet(nn.Module):
    """DenseNet-BC: ``block_config`` layers per dense block, ``growth_rate`` k, compression 0.5.

    ``small_inputs=True`` gives the CIFAR stem (one 3x3 conv, no pooling) instead of ImageNet's
    7x7/2 conv - BN - ReLU - 3x3/2 max pool. See the module docstring for the stage shapes.
    """

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 drop_rate=0.0, num_classes=1000, compression=0.5, small_inputs=False):
        super().__init__()
        if small_inputs:
            stem = [("conv0", nn.Conv2d(3, num_init_features, 3, padding=1, bias=False))]
        else:
            stem = [("conv0", nn.Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU()),
                    ("pool0", nn.MaxPool2d(3, stride=2, padding=1))]
        self.features = nn.Sequential(OrderedDict(stem))  # ImageNet: N x 64 x 56 x 56; CIFAR: N x 2k x 32 x 32
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, num_features, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate  # N x (c + L k) x H x W: the block keeps the resolution
            if i != len(block_config) - 1:
                out_features = int(num_features * compression)
                self.features.add_module(f"transition{i + 1}", Transition(num_features, out_features))
                num_features = out_features  # N x theta (c + L k) x H/2 x W/2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.features(x))                 # DenseNet-121: N x 1024 x 7 x 7
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)   # N x 1024
        return self.classifier(x)                    # N x num_classes


@register_model("DenseNet-121 (k=32, blocks 6-12-24-16), 8.0M parameters", PAPER, recipe=IMAGENET_RESNET)
def densenet121(num_classes=1000, **kwargs):
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, **kwargs)


@register_model("DenseNet-161 (k=48, blocks 6-12-36-24, 96 initial channels), 28.7M parameters", PAPER,
                recipe=IMAGENET_RESNET)
def densenet161(num_classes=1000, **kwargs):
    return DenseNet(48, (6, 12, 36, 24), 96, num_classes=num_classes, **kwargs)


@register_model("DenseNet-169 (k=32, blocks 6-12-32-32), 14.1M parameters", PAPER, recipe=IMAGENET_RESNET)
def densenet169(num_classes=1000, **kwargs):
    return DenseNet(32, (6, 12, 32, 32), 64, num_classes=num_classes, **kwargs)


@register_model("DenseNet-201 (k=32, blocks 6-12-48-32), 20.0M parameters", PAPER, recipe=IMAGENET_RESNET)
def densenet201(num_classes=1000, **kwargs):
    return DenseNet(32, (6, 12, 48, 32), 64, num_classes=num_classes, **kwargs)


@register_model("DenseNet-BC-100 (k=12) for CIFAR: 3 blocks of 16 bottleneck layers, 0.8M parameters", PAPER,
                recipe=CIFAR_DENSENET)
def densenet_bc_100_12(num_classes=10, drop_rate=0.0):
    return DenseNet(12, (16, 16, 16), 2 * 12, num_classes=num_classes, drop_rate=drop_rate, small_inputs=True)
