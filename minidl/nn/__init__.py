"""Layers and models as objects: ``minidl.nn``, with PyTorch's names.

    from minidl import nn
    model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(864, 10))

A :class:`Module` holds parameters, buffers and submodules and calls ``minidl.functions`` in its
``forward``; ``nn.init`` holds the weight initialisers.
"""
from minidl.nn import init
from minidl.nn.activation import LeakyReLU, LogSigmoid, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from minidl.nn.container import ModuleDict, ModuleList, Sequential
from minidl.nn.conv import Conv2d, ConvTranspose2d
from minidl.nn.dropout import Dropout, DropPath
from minidl.nn.flatten import Flatten
from minidl.nn.linear import Identity, Linear
from minidl.nn.loss import CrossEntropyLoss, MSELoss
from minidl.nn.module import IncompatibleKeys, Module, RemovableHandle
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from minidl.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d
from minidl.tensor import Parameter

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d",
    "CrossEntropyLoss", "DropPath", "Dropout", "Flatten", "Identity", "IncompatibleKeys", "LeakyReLU",
    "Linear", "LocalResponseNorm", "LogSigmoid", "LogSoftmax", "MSELoss", "MaxPool2d", "MaxUnpool2d", "Module",
    "ModuleDict", "ModuleList", "Parameter", "ReLU", "RemovableHandle", "Sequential", "Sigmoid", "Softmax",
    "Softplus", "Tanh", "init",
]


def __getattr__(name):
    # nn.SyncBatchNorm, PyTorch's name for it: the layer needs a communicator, so it lives in
    # minidl.distributed (a layer above nn) and is looked up only when asked for.
    if name == "SyncBatchNorm":
        from minidl.distributed import SyncBatchNorm
        return SyncBatchNorm
    raise AttributeError(f"module 'minidl.nn' has no attribute {name!r}")
