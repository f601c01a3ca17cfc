"""Network in Network (Lin, Chen & Yan, "Network in network", ICLR 2014; arXiv 2013).

Two ideas the notes (002) trace into GoogLeNet and ResNet's bottlenecks:

* **mlpconv**: after each ordinary convolution, a small multilayer perceptron applied at every pixel,
  which is two 1x1 convolutions with ReLUs. A 1x1 convolution mixes channels at one position, so the
  block computes a more expressive local feature than one linear filter + ReLU.
* **global average pooling**: the last mlpconv produces one map per class; each map is averaged to a
  single number, the class score. No fully connected layers, so nothing to overfit there, and the
  maps can be read as class confidence maps.

The paper describes the CIFAR-10 network only in outline ("three stacked mlpconv layers ... followed
by spatial max pooling ... dropout"). The widths here are those of the authors' released Caffe model
for CIFAR-10 (``cifar10_nin``), 966,986 parameters for 10 classes:

    block  conv           mlp (1x1, 1x1)       then                               output (32x32 input)
    1      192 5x5 pad 2  160, 96              3x3/2 max pool, dropout 0.5         16x16x96
    2      192 5x5 pad 2  192, 192             3x3/2 average pool, dropout 0.5     8x8x192
    3      192 3x3 pad 1  192, num_classes     global average pool                 1x1xnum_classes

and for ImageNet those of the Caffe Model Zoo's ``nin_imagenet`` (4 mlpconv blocks, 224x224 input),
7,595,176 parameters for 1,000 classes:

    block  conv              mlp (1x1, 1x1)       then                             output
    1      96 11x11/4        96, 96               3x3/2 max pool                   27x27x96
    2      256 5x5 pad 2     256, 256             3x3/2 max pool                   13x13x256
    3      384 3x3 pad 1     384, 384             3x3/2 max pool, dropout 0.5      6x6x384
    4      1024 3x3 pad 1    1024, num_classes    global average pool              1x1xnum_classes

As in those models every convolution, the last 1x1 included, is followed by a ReLU (so the class
scores are averages of non-negative maps), and pooling uses ``ceil_mode=True`` (Caffe's rounding:
32 -> 16 -> 8 and 54 -> 27 -> 13 -> 6). Initialisation is He-normal (the Caffe models used small
Gaussians with hand-tuned standard deviations).
"""
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_RESNET, IMAGENET_RESNET, borrowed

LIN_2014 = "Lin, Chen & Yan, Network in network, ICLR 2014"


class MLPConv(nn.Module):
    """An mlpconv layer: a KxK convolution, then a per-pixel MLP as two 1x1 convolutions; ReLU after each.

    x (N, C, H, W) -> (N, widths[2], OH, OW), OH = (H + 2 pad - K) / stride + 1.
    """

    def __init__(self, in_channels, widths, kernel_size, stride=1, padding=0):
        super().__init__()
        conv, mlp1, mlp2 = widths
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, conv, kernel_size, stride=stride, padding=padding), nn.ReLU(),
            nn.Conv2d(conv, mlp1, 1), nn.ReLU(),   # the "cccp" layers of the Caffe models
            nn.Conv2d(mlp1, mlp2, 1), nn.ReLU(),
        )
        self.out_channels = mlp2

    def forward(self, x):
        return self.layers(x)


def _layer_after(kind):
    return {"maxpool": lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True),
            "avgpool": lambda: nn.AvgPool2d(3, stride=2, ceil_mode=True),
            "dropout": lambda: nn.Dropout(0.5),
            "gap": lambda: nn.AdaptiveAvgPool2d(1)}[kind]()


def nin_cifar_table(num_classes):
    """The CIFAR-10 network: one row per mlpconv block."""
    return [
        # widths (conv, mlp, mlp)      kernel  stride  pad  then
        ((192, 160, 96),               5,      1,      2,   ("maxpool", "dropout")),   # 32 -> 16
        ((192, 192, 192),              5,      1,      2,   ("avgpool", "dropout")),   # 16 -> 8
        ((192, 192, num_classes),      3,      1,      1,   ("gap",)),                 # 8 -> 1
    ]


def nin_imagenet_table(num_classes):
    """The ImageNet network (Caffe Model Zoo ``nin_imagenet``): one row per mlpconv block."""
    return [
        # widths (conv, mlp, mlp)      kernel  stride  pad  then
        ((96, 96, 96),                 11,     4,      0,   ("maxpool",)),              # 224 -> 54 -> 27
        ((256, 256, 256),              5,      1,      2,   ("maxpool",)),              # 27 -> 13
        ((384, 384, 384),              3,      1,      1,   ("maxpool", "dropout")),    # 13 -> 6
        ((1024, 1024, num_classes),    3,      1,      1,   ("gap",)),                  # 6 -> 1
    ]


class NiN(nn.Module):
    """Network in Network from a table of mlpconv blocks; ``forward`` returns N x num_classes.

    >>> NiN(nin_cifar_table(10))(minidl.zeros(2, 3, 32, 32)).shape
    (2, 10)
    """

    def __init__(self, table, in_channels=3):
        super().__init__()
        layers = []
        for widths, kernel, stride, pad, then in table:
            layers.append(MLPConv(in_channels, widths, kernel, stride, pad))
            layers.extend(_layer_after(kind) for kind in then)
            in_channels = widths[2]
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):                      # N x 3 x 32 x 32 (CIFAR) or N x 3 x 224 x 224 (ImageNet)
        x = self.features(x)                   # N x num_classes x 1 x 1
        return x.flatten(1)                    # N x num_classes


@register_model("Network in Network for CIFAR-10: three mlpconv blocks, global average pooling; 966,986 parameters",
                LIN_2014, recipe=CIFAR_RESNET)
def nin_cifar(num_classes=10):
    return NiN(nin_cifar_table(num_classes))


@register_model("Network in Network for ImageNet (the authors' Caffe model): four mlpconv blocks, global average "
                "pooling, 224x224 input; 7,595,176 parameters", LIN_2014, recipe=borrowed(IMAGENET_RESNET))
def nin(num_classes=1000):
    return NiN(nin_imagenet_table(num_classes))
