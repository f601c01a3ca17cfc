"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural
networks", NIPS 2012), as the notes (001, 003) walk through it.

Input 227 x 227 x 3 (the paper says 224, a known typo: (224 - 11)/4 + 1 is not an integer; 227 gives 55).
Five convolutions, three fully connected layers:

    layer  filters         stride pad  groups  then                output
    conv1  96 x 11x11x3    4      0    1       ReLU, LRN, pool     55x55x96  -> 27x27x96
    conv2  256 x 5x5x48    1      2    2       ReLU, LRN, pool     27x27x256 -> 13x13x256
    conv3  384 x 3x3x256   1      1    1       ReLU                13x13x384
    conv4  384 x 3x3x192   1      1    2       ReLU                13x13x384
    conv5  256 x 3x3x192   1      1    2       ReLU, pool          13x13x256 -> 6x6x256
    fc6    4096 (dropout 0.5 before), ReLU;  fc7  4096 (dropout 0.5 before), ReLU;  fc8  1000

The paper's two GPU towers are grouped convolutions: with ``groups=2``, conv2, conv4 and conv5 give
each half of their filters only the half of the input maps that lives on the same GPU (hence the 48
and 192 in the filter depths); conv3 and the FC layers read both towers. The model has 60,965,224
parameters (the notes' "60M"); conv1 holds 11*11*3*96 = 34,848 weights + 96 biases.

LRN is the paper's formula, b = a / (k + alpha * sum of a^2 over n=5 neighbouring maps)^beta with
k=2, alpha=1e-4, beta=0.75, alpha *not* divided by n (``alpha_over_size=False``; Caffe and PyTorch
divide it). Pooling is overlapping: 3x3 windows, stride 2.

The order of LRN and pooling follows the paper ("response-normalization layers follow the first and
second convolutional layers; max-pooling layers follow both response-normalization layers"). The notes
(003) and the CS231n slide put the pooling first (conv - pool - norm), as Caffe's CaffeNet does; the
two orders give the same shapes, and LRN after pooling costs 4x less.

torchvision's ``alexnet`` is a different network, from Krizhevsky's later "One weird trick" paper
(2014): 64-192-384-256-256 filters, conv1 11x11/4 with padding 2 on 224 input, no LRN, no groups, and
an adaptive average pool to 6x6 before the classifier; 61,100,840 parameters. Its weights do not
fit this model.
"""
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import IMAGENET_ALEXNET

KRIZHEVSKY_2012 = ("Krizhevsky, Sutskever & Hinton, ImageNet classification with deep convolutional neural networks, "
                   "NIPS 2012")

# Section 3.5 and Figure 2 of the paper. "then" lists what follows the convolution, in order.
ALEXNET_CONVS = [
    # out  kernel  stride  pad  groups  then
    (96,   11,     4,      0,   1,      ("relu", "lrn", "pool")),   # 227 -> 55 -> 27
    (256,  5,      1,      2,   2,      ("relu", "lrn", "pool")),   # 27 -> 13
    (384,  3,      1,      1,   1,      ("relu",)),                 # 13
    (384,  3,      1,      1,   2,      ("relu",)),                 # 13
    (256,  3,      1,      1,   2,      ("relu", "pool")),          # 13 -> 6
]


def alexnet_lrn():
    """The paper's response normalisation: n=5, k=2, alpha=1e-4 (not divided by n), beta=0.75."""
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, alpha_over_size=False)


def make_conv_layers(table, in_channels=3, pool=lambda: nn.MaxPool2d(3, stride=2), lrn=alexnet_lrn):
    """A flat ``nn.Sequential`` from a table of (out, kernel, stride, pad, groups, then) rows.

    Shared by AlexNet and ZFNet; ``pool`` and ``lrn`` build the layers named in ``then``.
    """
    layers = []
    for out, kernel, stride, pad, groups, then in table:
        layers.append(nn.Conv2d(in_channels, out, kernel, stride=stride, padding=pad, groups=groups))
        for op in then:
            layers.append({"relu": nn.ReLU, "lrn": lrn, "pool": pool}[op]())
        in_channels = out
    return nn.Sequential(*layers)


def make_classifier(in_features, num_classes, hidden=4096, dropout=0.5):
    """fc6 and fc7 with dropout before each (the paper: "dropout in the first two fully-connected layers"),
    then fc8. torchvision's order and indices: classifier.1, .4, .6 are the Linear layers."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(in_features, hidden), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


class AlexNet(nn.Module):
    """AlexNet on 227 x 227 inputs (the classifier expects exactly 6 x 6 x 256 features).

    Initialisation as in Section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
    FC layers ("provides the ReLUs with positive inputs"), 0 elsewhere.

    >>> AlexNet()(minidl.zeros(1, 3, 227, 227)).shape
    (1, 1000)
    """

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = make_conv_layers(ALEXNET_CONVS)
        self.classifier = make_classifier(256 * 6 * 6, num_classes, dropout=dropout)
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        for layer in convs + linears:
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)
        for layer in (convs[1], convs[3], convs[4], linears[0], linears[1]):
            nn.init.ones_(layer.bias)

    def forward(self, x):                      # N x 3 x 227 x 227
        x = self.features(x)                   # N x 256 x 6 x 6
        return self.classifier(x.flatten(1))   # N x num_classes


@register_model("AlexNet as in the paper: 227x227 input, 96-256-384-384-256 filters, two towers as groups=2, "
                "LRN (k=2, alpha=1e-4 undivided), overlapping pooling, dropout; 60,965,224 parameters",
                KRIZHEVSKY_2012, recipe=IMAGENET_ALEXNET)
def alexnet(num_classes=1000, dropout=0.5):
    return AlexNet(num_classes, dropout)
