"""SqueezeNet (Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer, "SqueezeNet: AlexNet-level accuracy
with 50x fewer parameters and <0.5MB model size", arXiv 2016).

The building block is the **Fire module**: a 1x1 "squeeze" convolution down to few channels, then an
"expand" layer of 1x1 and 3x3 convolutions side by side, concatenated. Squeezing before the 3x3
filters is the same trick as GoogLeNet's 1x1 reductions; using many 1x1 filters in the expand layer
(9x fewer weights than 3x3) is the paper's other strategy. No fully connected layer: the last
convolution gives one map per class, globally averaged (NiN's idea).

SqueezeNet 1.0, Table 1 of the paper (each Fire row: squeeze s1x1, expand e1x1, expand e3x3):

    layer     output (224x224 input)  what
    conv1     109x109x96              7x7/2
    maxpool1  54x54x96                3x3/2
    fire2-4   54x54x256               (16, 64, 64), (16, 64, 64), (32, 128, 128)
    maxpool4  27x27x256
    fire5-8   27x27x512               (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256)
    maxpool8  13x13x512
    fire9     13x13x512               (64, 256, 256), then dropout 50%
    conv10    13x13xnum_classes       1x1, ReLU, global average pool

SqueezeNet 1.1 (the authors' repository): conv1 64 3x3/2 and the poolings moved earlier, for 2.4x
less computation at the same accuracy. 1,248,424 and 1,235,496 parameters for 1,000 classes (the
paper's "1.2M"; its 0.5MB needs their Deep Compression on top).

Names and layer order are torchvision's (``features.N.squeeze``, ``.expand1x1``, ``.expand3x3``,
``classifier.1``), so its weights load directly. Pooling uses ``ceil_mode=True`` as in the Caffe
release (which makes 109 -> 54 -> 27 -> 13).
"""
import minidl.functions as F
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import IMAGENET_RESNET, borrowed

IANDOLA_2016 = ("Iandola, Han, Moskewicz, Ashraf, Dally & Keutzer, SqueezeNet: AlexNet-level accuracy with 50x "
                "fewer parameters and <0.5MB model size, arXiv 2016")


class Fire(nn.Module):
    """squeeze (1x1, s1x1 filters) + ReLU, then [expand 1x1 (e1x1) + ReLU, expand 3x3 (e3x3) + ReLU],
    concatenated: (N, C, H, W) -> (N, e1x1 + e3x3, H, W)."""

    def __init__(self, in_channels, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return F.cat([self.expand1x1_activation(self.expand1x1(x)),
                      self.expand3x3_activation(self.expand3x3(x))], dim=1)


def ceil_max_pool():
    """3x3 max pooling, stride 2, rounding up as Caffe does."""
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    """SqueezeNet ``version`` "1_0" or "1_1"; any input from about 32 x 32 up (global pooling at the end).

    >>> SqueezeNet("1_1", num_classes=10)(minidl.zeros(1, 3, 64, 64)).shape
    (1, 10)
    """

    def __init__(self, version="1_0", num_classes=1000, dropout=0.5):
        super().__init__()
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, 7, stride=2), nn.ReLU(),   # N x 96 x 109 x 109
                ceil_max_pool(),                            # N x 96 x 54 x 54
                Fire(96, 16, 64, 64),                       # N x 128 x 54 x 54
                Fire(128, 16, 64, 64),                      # N x 128 x 54 x 54
                Fire(128, 32, 128, 128),                    # N x 256 x 54 x 54
                ceil_max_pool(),                            # N x 256 x 27 x 27
                Fire(256, 32, 128, 128),                    # N x 256 x 27 x 27
                Fire(256, 48, 192, 192),                    # N x 384 x 27 x 27
                Fire(384, 48, 192, 192),                    # N x 384 x 27 x 27
                Fire(384, 64, 256, 256),                    # N x 512 x 27 x 27
                ceil_max_pool(),                            # N x 512 x 13 x 13
                Fire(512, 64, 256, 256),                    # N x 512 x 13 x 13
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(),   # N x 64 x 111 x 111
                ceil_max_pool(),                            # N x 64 x 55 x 55
                Fire(64, 16, 64, 64),                       # N x 128 x 55 x 55
                Fire(128, 16, 64, 64),                      # N x 128 x 55 x 55
                ceil_max_pool(),                            # N x 128 x 27 x 27
                Fire(128, 32, 128, 128),                    # N x 256 x 27 x 27
                Fire(256, 32, 128, 128),                    # N x 256 x 27 x 27
                ceil_max_pool(),                            # N x 256 x 13 x 13
                Fire(256, 48, 192, 192),                    # N x 384 x 13 x 13
                Fire(384, 48, 192, 192),                    # N x 384 x 13 x 13
                Fire(384, 64, 256, 256),                    # N x 512 x 13 x 13
                Fire(512, 64, 256, 256),                    # N x 512 x 13 x 13
            )
        else:
            raise ValueError(f"SqueezeNet: version must be '1_0' or '1_1', got {version!r}")
        final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        for m in self.modules():  # as the Caffe release and torchvision
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):                      # N x 3 x 224 x 224
        x = self.features(x)                   # N x 512 x 13 x 13
        x = self.classifier(x)                 # N x num_classes x 1 x 1
        return x.flatten(1)                    # N x num_classes


@register_model("SqueezeNet 1.0 (Table 1 of the paper): Fire modules, no FC layer; 1,248,424 parameters",
                IANDOLA_2016, recipe=borrowed(IMAGENET_RESNET))
def squeezenet1_0(num_classes=1000, dropout=0.5):
    return SqueezeNet("1_0", num_classes, dropout)


@register_model("SqueezeNet 1.1: conv1 3x3 with 64 filters and earlier pooling, 2.4x less computation; "
                "1,235,496 parameters", IANDOLA_2016, recipe=borrowed(IMAGENET_RESNET))
def squeezenet1_1(num_classes=1000, dropout=0.5):
    return SqueezeNet("1_1", num_classes, dropout)
