"""GoogLeNet, Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015; arXiv 2014).

Table 1 of the paper, on a 224 x 224 x 3 input; each Inception row lists its six widths
(#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), as :class:`Inception` takes them:

    stage             output        what
    conv1             112x112x64    7x7/2
    maxpool1          56x56x64      3x3/2, then LRN
    conv2, conv3      56x56x192     1x1 64 ("3x3 reduce"), 3x3 192, then LRN
    maxpool2          28x28x192     3x3/2
    inception 3a, 3b  28x28x480     (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)
    maxpool3          14x14x480
    inception 4a-4e   14x14x832     aux1 reads 4a (512 maps), aux2 reads 4d (528 maps)
    maxpool4          7x7x832
    inception 5a, 5b  7x7x1024
    avgpool           1x1x1024      global average pooling instead of AlexNet/VGG's big FC layers
    dropout 40%, linear num_classes

22 layers with parameters (27 counting pooling). Without the auxiliary heads the model has 6,998,552
parameters for 1,000 classes (the paper's Table 1 column adds up to "6.8M" in units of 1024, without
biases; the notes' "5M" is CS231n's rounding, after "12x fewer than AlexNet": 61M / 12 = 5.1M). Each
auxiliary head adds about 3.2M, present only while training.

Differences from torchvision's ``googlenet``, which this model does not try to load weights from:
torchvision's 5x5 branch is a 3x3 convolution, a bug kept to stay compatible with the weights it
ported (its source says so), and it puts batch norm after every convolution (which Inception v1
predates) and has no LRN. Here the 5x5 branch is 5x5, as in the paper, and there is no batch norm.
torchvision's maxpool4 is 2x2/2 where the paper's Table 1 (and bvlc_googlenet) has 3x3/2: both give
14 -> 7, but on the 1x1 maps of 15 to 30 px inputs only the 2x2 window fits (with ceil_mode a window may
overhang by less than the stride), so torchvision runs from 15 px and this model from 31 px.

Deviations from the paper, named: the final 7x7 average pool is an adaptive (global) average pool,
identical at 224 x 224 and usable on other sizes; LRN is the one in the reference Caffe model
(bvlc_googlenet: n=5, alpha=1e-4 divided by n, beta=0.75, k=1), since the paper gives no values.
Pooling uses ``ceil_mode=True``, as that Caffe model does, which is what gives 112 -> 56 -> 28 -> 14 -> 7.
"""
import minidl.functions as F
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import IMAGENET_GOOGLENET

SZEGEDY_2015 = ("Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich, Going deeper with "
                "convolutions, CVPR 2015")


class BasicConv2d(nn.Module):
    """Convolution + ReLU: "all the convolutions, including those inside the Inception modules, use
    rectified linear activation" (torchvision's BasicConv2d adds batch norm, which v1 did not have)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class Inception(nn.Module):
    """The Inception module with dimension reductions (Figure 2b): four branches, concatenated.

        branch1: 1x1 conv (ch1x1)
        branch2: 1x1 conv (ch3x3red) -> 3x3 conv (ch3x3)
        branch3: 1x1 conv (ch5x5red) -> 5x5 conv (ch5x5)
        branch4: 3x3 max pool, stride 1 -> 1x1 conv (pool_proj)

    Every branch keeps H x W, so the output has ch1x1 + ch3x3 + ch5x5 + pool_proj channels. The 1x1
    "reduce" convolutions shrink the depth before the expensive 3x3 and 5x5 convolutions.
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return F.cat(branches, dim=1)


class NaiveInception(nn.Module):
    """The naive Inception module (Figure 2a): 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool applied
    side by side to the same input and concatenated. The pooling branch passes all input channels
    through, so the depth can only grow: on 28x28x256 with (128, 192, 96) filters the output is
    28x28x(128 + 192 + 96 + 256) = 28x28x672, and the convolutions cost 854M multiply-adds (notes 000).
    """

    def __init__(self, in_channels, ch1x1, ch3x3, ch5x5):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = BasicConv2d(in_channels, ch3x3, 3, padding=1)
        self.branch3 = BasicConv2d(in_channels, ch5x5, 5, padding=2)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x):
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return F.cat(branches, dim=1)


class InceptionAux(nn.Module):
    """An auxiliary classifier (Section 5): 5x5 average pool stride 3 (14x14 -> 4x4), 1x1 conv 128 + ReLU,
    FC 1024 + ReLU, dropout 70%, FC num_classes. Its loss is added with weight 0.3 during training."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.avgpool = nn.AvgPool2d(5, stride=3)
        self.conv = BasicConv2d(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):                          # N x 512 x 14 x 14 (4a) or N x 528 x 14 x 14 (4d)
        x = self.conv(self.avgpool(x))             # N x 128 x 4 x 4
        x = self.relu(self.fc1(x.flatten(1)))      # N x 1024
        return self.fc2(self.dropout(x))           # N x num_classes


def googlenet_lrn():
    """bvlc_googlenet's LRN (Caffe divides alpha by n; k = 1)."""
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0, alpha_over_size=True)


class GoogLeNet(nn.Module):
    """GoogLeNet on 224 x 224 inputs (the auxiliary heads need 4a's 14 x 14 maps; without them any
    size from 31 up works, CIFAR's 32 x 32 included). In training mode with ``aux_logits=True``,
    ``forward`` returns ``(logits, aux1, aux2)``; in eval mode (or ``aux_logits=False``) only ``logits``:
    the auxiliary classifiers are "discarded at inference time". Train with :func:`googlenet_loss`.

    >>> model = GoogLeNet().eval()
    >>> model(minidl.zeros(1, 3, 224, 224)).shape
    (1, 1000)
    """

    def __init__(self, num_classes=1000, aux_logits=True, dropout=0.4):
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = googlenet_lrn()
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.lrn2 = googlenet_lrn()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        #                              in   1x1  3x3red 3x3  5x5red 5x5  pool proj
        self.inception3a = Inception(192,   64,  96,   128,  16,   32,   32)
        self.inception3b = Inception(256,  128, 128,   192,  32,   96,   64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480,  192,  96,   208,  16,   48,   64)
        self.inception4b = Inception(512,  160, 112,   224,  24,   64,   64)
        self.inception4c = Inception(512,  128, 128,   256,  24,   64,   64)
        self.inception4d = Inception(512,  112, 144,   288,  32,   64,   64)
        self.inception4e = Inception(528,  256, 160,   320,  32,  128,  128)
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = Inception(832,  256, 160,   320,  32,  128,  128)
        self.inception5b = Inception(832,  384, 192,   384,  48,  128,  128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes)
            self.aux2 = InceptionAux(528, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):                          # N x 3 x 224 x 224
        x = self.maxpool1(self.conv1(x))           # N x 64 x 56 x 56   (conv1: N x 64 x 112 x 112)
        x = self.lrn1(x)                           # N x 64 x 56 x 56
        x = self.lrn2(self.conv3(self.conv2(x)))   # N x 192 x 56 x 56
        x = self.maxpool2(x)                       # N x 192 x 28 x 28
        x = self.inception3a(x)                    # N x 256 x 28 x 28
        x = self.inception3b(x)                    # N x 480 x 28 x 28
        x = self.maxpool3(x)                       # N x 480 x 14 x 14
        x = self.inception4a(x)                    # N x 512 x 14 x 14
        aux1 = self.aux1(x) if self.aux_logits and self.training else None
        x = self.inception4b(x)                    # N x 512 x 14 x 14
        x = self.inception4c(x)                    # N x 512 x 14 x 14
        x = self.inception4d(x)                    # N x 528 x 14 x 14
        aux2 = self.aux2(x) if self.aux_logits and self.training else None
        x = self.inception4e(x)                    # N x 832 x 14 x 14
        x = self.maxpool4(x)                       # N x 832 x 7 x 7
        x = self.inception5a(x)                    # N x 832 x 7 x 7
        x = self.inception5b(x)                    # N x 1024 x 7 x 7
        x = self.avgpool(x).flatten(1)             # N x 1024
        logits = self.fc(self.dropout(x))          # N x num_classes
        if aux1 is not None:
            return logits, aux1, aux2
        return logits


def googlenet_loss(outputs, target, aux_weight=0.3):
    """Cross-entropy of the main classifier plus ``aux_weight`` (the paper's 0.3) times each auxiliary
    classifier's; ``outputs`` is what GoogLeNet returns, a tuple in training or the logits alone."""
    if not isinstance(outputs, tuple):
        return F.cross_entropy(outputs, target)
    logits, *aux = outputs
    loss = F.cross_entropy(logits, target)
    for a in aux:
        loss = loss + aux_weight * F.cross_entropy(a, target)
    return loss


@register_model("GoogLeNet (Inception v1) as in Table 1 of the paper: true 5x5 branches, LRN in the stem, "
                "global average pooling, dropout 0.4, two auxiliary classifiers in training", SZEGEDY_2015,
                recipe=IMAGENET_GOOGLENET)
def googlenet(num_classes=1000, aux_logits=True, dropout=0.4):
    return GoogLeNet(num_classes, aux_logits, dropout)
