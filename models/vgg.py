"""VGG (Simonyan & Zisserman, "Very deep convolutional networks for large-scale image recognition",
ICLR 2015), configurations A to E of the paper's Table 1.

Every convolution is 3x3 (C also has 1x1), stride 1, padding 1, so it keeps the spatial size; every
max pooling is 2x2, stride 2, so it halves it. On a 224 x 224 input the five stages work at 224, 112,
56, 28 and 14, and the classifier sees 7 x 7 x 512 = 25,088 features. Why 3x3: a stack of two 3x3
convolutions sees a 5x5 window and three see 7x7 (one more ReLU each, and 3 * 9C^2 = 27C^2 weights
instead of 49C^2 for one 7x7; ``minidl.receptive_field`` shows it).

    config  weight layers  registry name   parameters (ours = torchvision where it has one)
    A       11             vgg11           132,863,336
    A-LRN   11             vgg11_lrn       132,863,336   (LRN has no parameters)
    B       13             vgg13           133,047,848
    C       16             vgg16_c         133,638,952   (1x1 convolutions in the last three stages)
    D       16             vgg16           138,357,544   (the notes' "138M")
    E       19             vgg19           143,667,240

Module names and order are torchvision's (``features.N``, ``avgpool``, ``classifier.N``; batch norm
between each convolution and its ReLU in the ``_bn`` variants), so torchvision's state dicts load
directly. Deviations from the paper, named: the ``AdaptiveAvgPool2d((7, 7))`` before the classifier is
torchvision's (an identity at 224 x 224; the paper instead turns the FC layers into convolutions for
"dense" evaluation on larger images); batch norm did not exist yet (the ``_bn`` variants are
torchvision's); initialisation is torchvision's He-normal, where the paper trained A from N(0, 0.01)
and initialised deeper nets from it.

``vgg11_bn_cifar`` and ``vgg16_bn_cifar`` are the usual CIFAR adaptation (32 x 32 input): the same
convolution stages with batch norm, which leave 1 x 1 x 512, and a single Linear(512, num_classes).
"""
from minidl import nn
from minidl.models.alexnet import alexnet_lrn
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_VGG, IMAGENET_VGG

SIMONYAN_2015 = "Simonyan & Zisserman, Very deep convolutional networks for large-scale image recognition, ICLR 2015"

# Table 1 of the paper, one column per configuration. "conv3-64": 3x3 convolution with 64 filters.
VGG_CONFIGS = {
    "A": ["conv3-64", "maxpool",
          "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "A-LRN": ["conv3-64", "LRN", "maxpool",
              "conv3-128", "maxpool",
              "conv3-256", "conv3-256", "maxpool",
              "conv3-512", "conv3-512", "maxpool",
              "conv3-512", "conv3-512", "maxpool"],
    "B": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "maxpool"],
    "C": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv1-256", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool"],
    "D": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool"],
    "E": ["conv3-64", "conv3-64", "maxpool",
          "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool"],
}


def make_layers(config, batch_norm=False, in_channels=3):
    """The ``features`` Sequential for one column of Table 1 (torchvision's layer order and indices).

    The paper's LRN is AlexNet's (Section 2.1: "the parameters are those of Krizhevsky et al.").
    """
    layers = []
    for entry in config:
        if entry == "maxpool":
            layers.append(nn.MaxPool2d(2, stride=2))
        elif entry == "LRN":
            layers.append(alexnet_lrn())
        else:
            kernel, width = (int(v) for v in entry[len("conv"):].split("-"))
            layers.append(nn.Conv2d(in_channels, width, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            in_channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG on 224 x 224 inputs (any size of at least 32 passes, through the adaptive pool).

    ``small_input=True``: the CIFAR adaptation, 32 x 32 input, no adaptive pool, classifier
    ``Linear(512, num_classes)`` (the five poolings leave 1 x 1 x 512).

    >>> VGG("D")(minidl.zeros(1, 3, 224, 224)).shape
    (1, 1000)
    """

    def __init__(self, config, batch_norm=False, num_classes=1000, dropout=0.5, small_input=False):
        super().__init__()
        self.features = make_layers(VGG_CONFIGS[config], batch_norm)
        if small_input:
            self.avgpool = nn.Identity()
            self.classifier = nn.Sequential(nn.Linear(512, num_classes))
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),   # FC-4096
                nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),          # FC-4096
                nn.Linear(4096, num_classes),                                   # FC-1000
            )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):                      # N x 3 x 224 x 224  (small_input: N x 3 x 32 x 32)
        x = self.features(x)                   # N x 512 x 7 x 7    (small_input: N x 512 x 1 x 1)
        x = self.avgpool(x)                    # N x 512 x 7 x 7
        return self.classifier(x.flatten(1))   # N x num_classes


@register_model("VGG configuration A: 11 weight layers; 132,863,336 parameters", SIMONYAN_2015, recipe=IMAGENET_VGG)
def vgg11(num_classes=1000, dropout=0.5):
    return VGG("A", batch_norm=False, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration A-LRN: A with AlexNet's LRN after the first convolution", SIMONYAN_2015,
                recipe=IMAGENET_VGG)
def vgg11_lrn(num_classes=1000, dropout=0.5):
    return VGG("A-LRN", batch_norm=False, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration B: 13 weight layers; 133,047,848 parameters", SIMONYAN_2015, recipe=IMAGENET_VGG)
def vgg13(num_classes=1000, dropout=0.5):
    return VGG("B", batch_norm=False, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration C: 16 weight layers, a 1x1 convolution ending each of the last three stages;"
                " 133,638,952 parameters", SIMONYAN_2015, recipe=IMAGENET_VGG)
def vgg16_c(num_classes=1000, dropout=0.5):
    return VGG("C", batch_norm=False, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration D (VGG16): 16 weight layers; 138,357,544 parameters", SIMONYAN_2015,
                recipe=IMAGENET_VGG)
def vgg16(num_classes=1000, dropout=0.5):
    return VGG("D", batch_norm=False, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration E (VGG19): 19 weight layers; 143,667,240 parameters", SIMONYAN_2015,
                recipe=IMAGENET_VGG)
def vgg19(num_classes=1000, dropout=0.5):
    return VGG("E", batch_norm=False, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration A with batch norm after every convolution (torchvision's vgg11_bn)", SIMONYAN_2015,
                recipe=IMAGENET_VGG)
def vgg11_bn(num_classes=1000, dropout=0.5):
    return VGG("A", batch_norm=True, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration B with batch norm after every convolution (torchvision's vgg13_bn)", SIMONYAN_2015,
                recipe=IMAGENET_VGG)
def vgg13_bn(num_classes=1000, dropout=0.5):
    return VGG("B", batch_norm=True, num_classes=num_classes, dropout=dropout)


@register_model("VGG16 with batch norm after every convolution (torchvision's vgg16_bn)", SIMONYAN_2015,
                recipe=IMAGENET_VGG)
def vgg16_bn(num_classes=1000, dropout=0.5):
    return VGG("D", batch_norm=True, num_classes=num_classes, dropout=dropout)


@register_model("VGG19 with batch norm after every convolution (torchvision's vgg19_bn)", SIMONYAN_2015,
                recipe=IMAGENET_VGG)
def vgg19_bn(num_classes=1000, dropout=0.5):
    return VGG("E", batch_norm=True, num_classes=num_classes, dropout=dropout)


@register_model("VGG configuration A with batch norm for 32x32 CIFAR images: classifier Linear(512, num_classes)",
                SIMONYAN_2015, recipe=CIFAR_VGG)
def vgg11_bn_cifar(num_classes=10):
    return VGG("A", batch_norm=True, num_classes=num_classes, small_input=True)


@register_model("VGG16 (configuration D) with batch norm for 32x32 CIFAR images: classifier Linear(512, num_classes)",
                SIMONYAN_2015, recipe=CIFAR_VGG)
def vgg16_bn_cifar(num_classes=10):
    return VGG("D", batch_norm=True, num_classes=num_classes, small_input=True)
