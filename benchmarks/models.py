"""Model-level benchmarks: one training step (forward + backward + SGD update) and one inference pass.

The models, their inputs and the torch twin of each (``benchmarks.torch_models``):

    name            minidl                                   input            classes  default batch
    lenet5          lenet5_modern (ReLU, max pool, linear)   1 x 32 x 32      10       64 and 256
    lenet5_paper    lenet5 (the paper's: the main job)       1 x 32 x 32      10       64
    resnet20        resnet20 (CIFAR, option A shortcuts)     3 x 32 x 32      10       128
    resnet18_cifar  resnet18_cifar below                     3 x 32 x 32      10       128
    alexnet         alexnet (paper: groups, LRN)             3 x 227 x 227    1000     16
    resnet50        resnet50 (ImageNet layout)               3 x 224 x 224    1000     16

``lenet5`` is the tutorial LeNet-5 (``lenet5_modern``); ``lenet5_paper`` is the zoo's faithful ``lenet5``
(scaled tanh, trainable subsampling, Table I C3 map, RBF output), what ``python -m minidl.train lenet5``
trains, with a hand-written PyTorch twin of the same computation. The zoo has no CIFAR ResNet-18, so it is built here from
the zoo's blocks: the ImageNet ResNet-18 with a 3x3 stride-1 stem, no max pool and 10 classes (the
common "ResNet-18 on CIFAR" of kuangliu/pytorch-cifar), 11.2M parameters.

Each framework runs in its own process (``benchmarks.worker``); this module is imported there only.
"""
import time

import numpy as np

MODELS = {
    # name: (input C x H x W, classes)
    "lenet5": ((1, 32, 32), 10),
    "lenet5_paper": ((1, 32, 32), 10),
    "resnet20": ((3, 32, 32), 10),
    "resnet18_cifar": ((3, 32, 32), 10),
    "alexnet": ((3, 227, 227), 1000),
    "resnet50": ((3, 224, 224), 1000),
}


def resnet18_cifar(num_classes=10):
    """ResNet-18 for 32 x 32 inputs, from the zoo's BasicBlock and make_layer (see the module docstring)."""
    from minidl import nn
    from minidl.models.resnet import BasicBlock, init_resnet, make_layer

    class ResNet18Cifar(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            stages, inplanes = [], 64
            for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                stage, inplanes = make_layer(BasicBlock, inplanes, planes, 2, stride, "B")
                stages.append(stage)
            self.stages = nn.Sequential(*stages)          # N x 512 x 4 x 4
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(inplanes, num_classes)
            init_resnet(self)

        def forward(self, x):
            x = self.stages(self.relu(self.bn1(self.conv1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18Cifar()


def build_minidl(name):
    from minidl.models import get_model
    if name == "lenet5":
        return get_model("lenet5_modern")
    if name == "lenet5_paper":
        return get_model("lenet5")
    if name == "resnet18_cifar":
        return resnet18_cifar()
    return get_model(name)


def batch_data(name, batch, seed=0):
    shape, classes = MODELS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    t = rng.integers(0, classes, batch)
    return x, t


class MinidlRunner:
    """Holds a minidl model, its optimizer and a fixed batch; ``train_step`` and ``infer`` time nothing."""

    def __init__(self, name, batch):
        import minidl
        import minidl.functions as F
        from minidl import optim
        self.minidl, self.F = minidl, F
        self.model = build_minidl(name)
        self.opt = optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        x, t = batch_data(name, batch)
        self.x, self.t = minidl.tensor(x), minidl.tensor(t)

    def train_step(self):
        self.model.train()
        self.opt.zero_grad()
        loss = self.F.cross_entropy(self.model(self.x), self.t)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def infer(self):
        self.model.eval()
        with self.minidl.no_grad():
            self.model(self.x)


class TorchRunner:
    def __init__(self, name, batch):
        import torch
        from benchmarks import torch_models
        self.torch = torch
        torch.manual_seed(0)
        self.model = torch_models.BUILDERS[name](MODELS[name][1])
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        x, t = batch_data(name, batch)
        self.x, self.t = torch.from_numpy(x), torch.from_numpy(t)

    def train_step(self):
        self.model.train()
        self.opt.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.t)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def infer(self):
        self.model.eval()
        with self.torch.no_grad():
            self.model(self.x)


def runner(framework, name, batch):
    return (MinidlRunner if framework == "minidl" else TorchRunner)(name, batch)


def time_calls(fn, steps, min_seconds=0.0):
    """Seconds per call, over ``steps`` calls (more if they take under ``min_seconds`` in all)."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if n >= steps and elapsed >= min_seconds:
            return elapsed / n
