"""ResNet: He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

A residual block learns F(x) = H(x) - x and outputs ReLU(F(x) + shortcut(x)). Two blocks:

* ``BasicBlock`` (ResNet-18/34 and the CIFAR nets): 3x3 conv - BN - ReLU - 3x3 conv - BN, add, ReLU.
* ``Bottleneck`` (ResNet-50/101/152): 1x1 conv reduces to ``width``, 3x3 conv, 1x1 conv expands to 4x.

Shortcuts, the paper's options (Section 3.3, Table 3), chosen with ``shortcut=``:

* ``"A"``: identity; where the shape changes, subsample by the stride and zero-pad the new channels
  (``ZeroPadShortcut``, parameter-free). The paper's CIFAR ResNets use it.
* ``"B"``: identity, and a projection (1x1 conv + BN) only where the shape changes. torchvision's default.
* ``"C"``: a projection on every block.

Training recipe (Section 3.4, as the lecture notes list it): batch normalisation after every conv and
before the activation; He initialisation ("Xavier/2"; torchvision draws conv weights from
``kaiming_normal_(mode='fan_out')``, as here); SGD with momentum 0.9; learning rate 0.1, divided by 10 when
the validation error plateaus; mini-batch 256; weight decay 1e-5 per the notes, but the paper uses 1e-4
(Section 3.4: "a weight decay of 0.0001"); no dropout.

>>> model = resnet50(num_classes=1000)
>>> model(minidl.randn(1, 3, 224, 224)).shape
(1, 1000)

torchvision's parameter names and order (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``,
``fc``), so ``model.load_state_dict(torchvision_model.state_dict())`` works as it is.
"""
import minidl.functions as F
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_RESNET, IMAGENET_RESNET

PAPER = "He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition, CVPR 2016"


def conv3x3(in_planes, out_planes, stride=1, groups=1):
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::s, ::s]`` followed by ``out - in`` zero channels; no parameters.

    The subsampling keeps the same positions a stride-s 3x3 conv with padding 1 centres on, so the
    shapes agree for odd sizes too. The paper pads with "extra zero entries"; where they go among the
    channels does not matter (the next layer's weights can be permuted to match): we append them.
    """

    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"ZeroPadShortcut: cannot shrink {in_planes} channels to {out_planes} by padding")
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_planes - self.in_planes))   # zero channels appended

    def extra_repr(self):
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


def make_shortcut(option, in_planes, out_planes, stride):
    """The shortcut module of a block, or None for the identity (see the module docstring)."""
    if option not in ("A", "B", "C"):
        raise ValueError(f"shortcut must be 'A', 'B' or 'C' (He et al. 2016, Section 3.3), got {option!r}")
    changes_shape = stride != 1 or in_planes != out_planes
    if option == "A":
        return ZeroPadShortcut(in_planes, out_planes, stride) if changes_shape else None
    if option == "B" and not changes_shape:
        return None
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """x -> conv3x3(stride) - BN - ReLU - conv3x3 - BN -> + shortcut(x) -> ReLU. Two convs, 3x3 each."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock: only groups=1 and base_width=64 (use Bottleneck for ResNeXt / WRN-50)")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def last_bn(self):
        return self.bn2


class Bottleneck(nn.Module):
    """x -> 1x1 (width) - BN - ReLU - 3x3 (width, groups) - BN - ReLU - 1x1 (4 planes) - BN -> + shortcut -> ReLU.

    ``width = planes * base_width / 64 * groups``: ``planes`` for ResNet, twice that for Wide ResNet-50-2
    (base_width 128), ``groups * d`` for ResNeXt (groups=32, base_width=4 gives 32x4d).

    Deviation from the paper: the stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5"; about
    0.5% better top-1 on ImageNet by NVIDIA's measurements). The paper and its Caffe models put it on the
    first 1x1 conv, which then skips 3 of every 4 input positions. ``stride_in_1x1=True`` gives the
    paper's placement; the parameter count is the same either way.
    """
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, stride_in_1x1=False):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)

    def last_bn(self):
        return self.bn3


def make_layer(block, inplanes, planes, blocks, stride=1, shortcut="B", **block_kwargs):
    """One stage (torchvision's ``_make_layer``): ``blocks`` blocks, the first one changing the resolution
    (``stride``) and the width. Returns ``(nn.Sequential of blocks, output channels)``."""
    outplanes = planes * block.expansion
    layers = []
    for i in range(blocks):
        in_i, stride_i = (inplanes, stride) if i == 0 else (outplanes, 1)
        layers.append(block(in_i, planes, stride_i, make_shortcut(shortcut, in_i, outplanes, stride_i), **block_kwargs))
    return nn.Sequential(*layers), outplanes


def init_resnet(model, zero_init_residual=False):
    """He init for convs (``kaiming_normal_``, fan_out, like torchvision), BN weight 1 and bias 0.

    ``zero_init_residual``: zero the last BN weight of every residual branch, so each block starts as the
    identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD"); torchvision's option of the same name.
    Linear layers keep PyTorch's default init, as in torchvision.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "last_bn"):
                nn.init.zeros_(m.last_bn().weight)


class ResNet(nn.Module):
    """The ImageNet ResNets (paper Table 1). Shapes for a 224 x 224 input; e = block.expansion (1 or 4).

    ``groups`` and ``width_per_group`` give ResNeXt and Wide ResNet-50-2 (see resnext.py, wide_resnet.py);
    ``shortcut`` picks option A, B or C; ``stride_in_1x1`` the paper's stride placement in Bottleneck.
    """

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1, width_per_group=64,
                 shortcut="B", stride_in_1x1=False):
        super().__init__()
        block_kwargs = dict(groups=groups, base_width=width_per_group)
        if stride_in_1x1 and block.expansion == 1:
            raise ValueError("ResNet: stride_in_1x1 applies to bottleneck blocks; BasicBlock has no 1x1 conv")
        if stride_in_1x1:
            block_kwargs["stride_in_1x1"] = True
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1, inplanes = make_layer(block, 64, 64, layers[0], 1, shortcut, **block_kwargs)
        self.layer2, inplanes = make_layer(block, inplanes, 128, layers[1], 2, shortcut, **block_kwargs)
        self.layer3, inplanes = make_layer(block, inplanes, 256, layers[2], 2, shortcut, **block_kwargs)
        self.layer4, inplanes = make_layer(block, inplanes, 512, layers[3], 2, shortcut, **block_kwargs)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        init_resnet(self, zero_init_residual)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))  # N x 64 x 112 x 112       (conv1: 7x7, 64, stride 2)
        x = self.maxpool(x)                     # N x 64 x 56 x 56         (3x3 max pool, stride 2)
        x = self.layer1(x)                      # N x 64e x 56 x 56        (conv2_x)
        x = self.layer2(x)                      # N x 128e x 28 x 28       (conv3_x)
        x = self.layer3(x)                      # N x 256e x 14 x 14       (conv4_x)
        x = self.layer4(x)                      # N x 512e x 7 x 7         (conv5_x)
        x = self.avgpool(x).flatten(1)          # N x 512e
        return self.fc(x)                       # N x num_classes


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNets of the paper's Section 4.2, 6n+2 layers, on 32 x 32 inputs:

        output map size | 32 x 32 | 16 x 16 | 8 x 8
        # layers        | 1 + 2n  | 2n      | 2n
        # filters       | 16      | 32      | 64

    then global average pooling and a 10-way fully connected layer; shortcuts are option A ("so all
    residual models have exactly the same number of parameters as plain counterparts"). ``widths``,
    ``stem_width``, ``groups`` and ``width_per_group`` also give ResNeXt-29 (resnext.py). Shapes below are
    for a 32 x 32 input, with w = widths and e = block.expansion.
    """

    def __init__(self, block, layers, num_classes=10, widths=(16, 32, 64), stem_width=None, shortcut="A",
                 zero_init_residual=False, **block_kwargs):
        super().__init__()
        stem_width = widths[0] if stem_width is None else stem_width
        self.conv1 = conv3x3(3, stem_width)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU()
        self.layer1, inplanes = make_layer(block, stem_width, widths[0], layers[0], 1, shortcut, **block_kwargs)
        self.layer2, inplanes = make_layer(block, inplanes, widths[1], layers[1], 2, shortcut, **block_kwargs)
        self.layer3, inplanes = make_layer(block, inplanes, widths[2], layers[2], 2, shortcut, **block_kwargs)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        init_resnet(self, zero_init_residual)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))  # N x stem_width x 32 x 32
        x = self.layer1(x)                      # N x w[0]e x 32 x 32
        x = self.layer2(x)                      # N x w[1]e x 16 x 16
        x = self.layer3(x)                      # N x w[2]e x 8 x 8
        x = self.avgpool(x).flatten(1)          # N x w[2]e
        return self.fc(x)                       # N x num_classes


# Paper Table 1: blocks per stage conv2_x .. conv5_x.
IMAGENET_CONFIGS = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def _resnet(depth, **kwargs):
    block, layers = IMAGENET_CONFIGS[depth]
    return ResNet(block, layers, **kwargs)


def cifar_resnet(depth, num_classes=10, **kwargs):
    """The paper's CIFAR ResNet with ``depth = 6n + 2`` layers (n basic blocks per stage)."""
    if (depth - 2) % 6:
        raise ValueError(f"cifar_resnet: depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    return CifarResNet(BasicBlock, [n, n, n], num_classes=num_classes, **kwargs)


@register_model("ResNet-18: basic blocks [2, 2, 2, 2], 11.7M parameters", PAPER, recipe=IMAGENET_RESNET)
def resnet18(num_classes=1000, **kwargs):
    return _resnet(18, num_classes=num_classes, **kwargs)


@register_model("ResNet-34: basic blocks [3, 4, 6, 3], 21.8M parameters", PAPER, recipe=IMAGENET_RESNET)
def resnet34(num_classes=1000, **kwargs):
    return _resnet(34, num_classes=num_classes, **kwargs)


@register_model("ResNet-34 with option A shortcuts (zero-padding, parameter-free), paper Table 3", PAPER,
                recipe=IMAGENET_RESNET)
def resnet34_a(num_classes=1000, **kwargs):
    return _resnet(34, num_classes=num_classes, shortcut="A", **kwargs)


@register_model("ResNet-50: bottleneck blocks [3, 4, 6, 3], 25.6M parameters", PAPER, recipe=IMAGENET_RESNET)
def resnet50(num_classes=1000, **kwargs):
    return _resnet(50, num_classes=num_classes, **kwargs)


@register_model("ResNet-101: bottleneck blocks [3, 4, 23, 3], 44.5M parameters", PAPER, recipe=IMAGENET_RESNET)
def resnet101(num_classes=1000, **kwargs):
    return _resnet(101, num_classes=num_classes, **kwargs)


@register_model("ResNet-152: bottleneck blocks [3, 8, 36, 3], 60.2M parameters", PAPER, recipe=IMAGENET_RESNET)
def resnet152(num_classes=1000, **kwargs):
    return _resnet(152, num_classes=num_classes, **kwargs)


@register_model("CIFAR ResNet-20 (n=3, option A shortcuts), 0.27M parameters", PAPER, recipe=CIFAR_RESNET)
def resnet20(num_classes=10, **kwargs):
    return cifar_resnet(20, num_classes, **kwargs)


@register_model("CIFAR ResNet-32 (n=5, option A shortcuts), 0.46M parameters", PAPER, recipe=CIFAR_RESNET)
def resnet32(num_classes=10, **kwargs):
    return cifar_resnet(32, num_classes, **kwargs)


@register_model("CIFAR ResNet-44 (n=7, option A shortcuts), 0.66M parameters", PAPER, recipe=CIFAR_RESNET)
def resnet44(num_classes=10, **kwargs):
    return cifar_resnet(44, num_classes, **kwargs)


@register_model("CIFAR ResNet-56 (n=9, option A shortcuts), 0.85M parameters", PAPER, recipe=CIFAR_RESNET)
def resnet56(num_classes=10, **kwargs):
    return cifar_resnet(56, num_classes, **kwargs)


@register_model("CIFAR ResNet-110 (n=18, option A shortcuts), 1.7M parameters", PAPER, recipe=CIFAR_RESNET)
def resnet110(num_classes=10, **kwargs):
    return cifar_resnet(110, num_classes, **kwargs)
