"""PyTorch twins of the minidl models the suite trains, written by hand (torchvision is optional).

Each builder makes the same layers, shapes and parameter counts as its minidl counterpart, so that
images/s compare like with like:

    name             minidl model                                 torch twin here
    lenet5           models.lenet.lenet5_modern (ReLU, max pool)  lenet5_modern()
    lenet5_paper     models.lenet.lenet5 (the paper's; the main job)  LeNet5Paper
    resnet20         models.resnet.resnet20 (option A shortcuts)  resnet20()
    resnet18_cifar   benchmarks.models.resnet18_cifar             resnet18_cifar()
    alexnet          models.alexnet.alexnet (paper, groups, LRN)  alexnet()
    resnet50         models.resnet.resnet50 (torchvision layout)  resnet50()

PyTorch's LocalResponseNorm divides alpha by the window size n; the paper (and minidl's AlexNet) does
not, so the twin passes alpha * n.
"""
import torch
from torch import nn
import torch.nn.functional as F


def lenet5_modern(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),      # 6 x 14 x 14
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),     # 16 x 5 x 5
        nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),      # 120
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))


def _scaled_tanh(x):
    return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class _Subsampling(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.avg_pool2d(x, 2) * 4.0 * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class LeNet5Paper(nn.Module):
    """The paper's LeNet-5 as minidl builds it (models/lenet.py): scaled tanh, trainable subsampling, C3 on
    Table I's 60 kernels (packed parameters gathered into a dense zero-filled weight, as minidl does), a C5
    convolution, F6 and the fixed +-1 RBF prototypes, logits -penalties / 8. 60,000 parameters."""

    def __init__(self, num_classes=10, temperature=8.0):
        super().__init__()
        from minidl.models.lenet import C3_TABLE, PartialConv2d, digit_prototypes
        self.temperature = float(temperature)
        c3 = PartialConv2d(6, C3_TABLE, kernel_size=5)       # only for its gather index and parameter sizes
        self.c1, self.s2 = nn.Conv2d(1, 6, 5), _Subsampling(6)
        self.c3_weight = nn.Parameter(torch.randn(sum(c.weight.data.size for c in c3.convs)) * 0.1)
        self.c3_bias = nn.Parameter(torch.zeros(16))
        self.register_buffer("c3_index", torch.from_numpy(c3.dense_index))
        self.register_buffer("c3_bias_index", torch.from_numpy(c3.bias_index))
        self.s4, self.c5, self.f6 = _Subsampling(16), nn.Conv2d(16, 120, 5), nn.Linear(120, 84)
        self.register_buffer("prototypes", torch.from_numpy(digit_prototypes(num_classes)))

    def forward(self, x):
        x = _scaled_tanh(self.s2(_scaled_tanh(self.c1(x))))
        weight = F.pad(self.c3_weight, (0, 1))[self.c3_index]
        x = _scaled_tanh(F.conv2d(x, weight, self.c3_bias[self.c3_bias_index]))
        x = _scaled_tanh(self.c5(_scaled_tanh(self.s4(x))))
        x = _scaled_tanh(self.f6(x.flatten(1)))
        penalties = ((x[:, None, :] - self.prototypes[None]) ** 2).sum(2)
        return penalties * (-1.0 / self.temperature)


def lenet5_paper_from_minidl(model):
    """A LeNet5Paper holding the weights of ``model`` (a ``minidl.models.lenet5``), to start both alike."""
    import numpy as np
    twin = LeNet5Paper(model.output.num_classes, getattr(model, "temperature", 8.0))
    values = {name: p.data for name, p in model.named_parameters() if not name.startswith("c3.")}
    values["c3_weight"] = np.concatenate([c.weight.data.reshape(-1) for c in model.c3.convs])
    values["c3_bias"] = np.concatenate([c.bias.data for c in model.c3.convs])
    values["prototypes"] = model.output.prototypes.data
    state = {name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in values.items()}
    state.update(c3_index=twin.c3_index, c3_bias_index=twin.c3_bias_index)
    twin.load_state_dict(state)      # strict: every parameter and buffer of the twin is set
    return twin


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.pad = stride, planes - inplanes
        self.downsample = None
        if shortcut == "B" and (stride != 1 or inplanes != planes):
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def shortcut(self, x):
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x   # option A: zero channels appended

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + identity)


def _stage(make_block, inplanes, planes, blocks, stride, expansion=1):
    layers = []
    for i in range(blocks):
        layers.append(make_block(inplanes, planes, stride if i == 0 else 1))
        inplanes = planes * expansion
    return nn.Sequential(*layers), inplanes


class CifarResNet(nn.Module):
    """3x3 stem, no max pool, basic-block stages of the given widths, global average pool, fc."""

    def __init__(self, widths, blocks, shortcut, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, inplanes = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stage, inplanes = _stage(lambda a, b, s: BasicBlock(a, b, s, shortcut), inplanes, w, n, 1 if i == 0 else 2)
            stages.append(stage)
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.stages(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet20(num_classes=10):
    return CifarResNet((16, 32, 64), (3, 3, 3), "A", num_classes)


def resnet18_cifar(num_classes=10):
    return CifarResNet((64, 128, 256, 512), (2, 2, 2, 2), "B", num_classes)


class ResNet50(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, inplanes = [], 64
        for planes, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage, inplanes = _stage(Bottleneck, inplanes, planes, n, stride, expansion=4)
            stages.append(stage)
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.stages(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet50(num_classes=1000):
    return ResNet50(num_classes)


def alexnet(num_classes=1000):
    def lrn():
        return nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, 4), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),              # 96 x 27 x 27
        nn.Conv2d(96, 256, 5, 1, 2, groups=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),  # 256 x 13 x 13
        nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, 1, 1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, 1, 1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),      # 256 x 6 x 6
        nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes))


BUILDERS = {"lenet5": lenet5_modern, "lenet5_paper": LeNet5Paper, "resnet20": resnet20, "resnet18_cifar": resnet18_cifar,
            "alexnet": alexnet, "resnet50": resnet50}
