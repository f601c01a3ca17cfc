"""Pretrained weights for the zoo: ``get_model(name, weights=path)`` and ImageNet preprocessing.

minidl's models use torchvision's and timm's parameter names, so their state dicts load as they are
(``tests/models/test_reference_weights.py``). This module maps the *known* other namings of the same
networks, and refuses, with the reason, the files of networks that only share a name with ours:

=================  =========================================================  ================================
model              file from                                                  mapping
=================  =========================================================  ================================
any                ``nn.DataParallel`` (``module.`` prefix)                   prefix dropped
densenet*          torchvision's original files (``norm.1``, ``conv.2``)      ``norm1``, ``conv2`` (as
                                                                              torchvision's own loader does)
se_resnet50        timm ``seresnet50``                                        none needed
se_resnet50        timm ``legacy_seresnet50`` / Cadene's pretrainedmodels     refused: the Caffe net strides
                   (``layer0.``, ``se_module``, ``last_linear``)              its first 1x1 conv and max-pools
                                                                              unpadded with ceil_mode; the
                                                                              names map, the function not
senet154           timm ``legacy_senet154`` / Cadene's pretrainedmodels       none needed (minidl uses them)
xception           timm ``legacy_xception`` (timm < 0.9: ``xception``)        none needed
xception           Cadene's pretrainedmodels model (``last_linear``)          ``last_linear`` -> ``fc``
alexnet            torchvision's ``alexnet``                                  refused: Krizhevsky's 2014 "one
                                                                              weird trick" net (64-192-384-
                                                                              256-256 filters, no LRN, one
                                                                              tower), not the paper's
googlenet          torchvision's ``googlenet``                                refused: batch norm after every
                                                                              conv and 3x3 "5x5" branches
=================  =========================================================  ================================

Every other mismatch is reported by ``load_state_dict`` (missing, unexpected and wrong-shape keys).
"""
import re
from collections import OrderedDict

import numpy as np

from minidl.data.transforms import CenterCrop, Compose, Normalize, Resize, ToFloat
from minidl.weights import load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_DENSENET_OLD_NAME = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


class PretrainedWeightsError(ValueError):
    """A weights file made for a different network than the one asked for."""


def imagenet_eval_transform(resize=256, crop=224):
    """torchvision's evaluation preprocessing for its ImageNet weights, as minidl transforms:

        uint8 H x W x 3 (as Pillow gives) -> float [0, 1] -> shorter side ``resize`` (bilinear)
        -> central ``crop`` x ``crop`` -> (x - mean) / std per channel, ImageNet's mean and std

    Deviation: minidl's Resize does not antialias (torchvision's does): shrinking a photo by more than 2x
    skips pixels, which shifts logits slightly; resize large photos close to ``resize`` first (e.g.
    ``PIL.Image.thumbnail``) to match torchvision closely.
    """
    return Compose([ToFloat(), Resize(resize), CenterCrop(crop), Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def load_pretrained(model, name, path):
    """Load file ``path`` into ``model`` (built as minidl's ``name``), mapping the known differences.

    Batch-norm layers' ``num_batches_tracked`` counters absent from the file (torchvision's files from
    before PyTorch 0.4.1: DenseNet's, VGG-BN's) are set to 0, as PyTorch's own BatchNorm loading does.
    """
    state = weights_for(name, path)
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = np.zeros_like(value.numpy())
    model.load_state_dict(state)
    return model


def weights_for(name, path):
    """The state dict in file ``path``, renamed for minidl's model ``name`` (see the table above)."""
    state = load_weights(path)
    state = OrderedDict((k.removeprefix("module."), v) for k, v in state.items())
    if name == "alexnet" and _shape(state, "features.0.weight") == (64, 3, 11, 11):
        raise PretrainedWeightsError(
            f"get_model('alexnet', weights={str(path)!r}): these are torchvision's AlexNet weights, a different "
            f"network (Krizhevsky 2014, 'One weird trick': 64-192-384-256-256 filters, no LRN, one tower); "
            f"minidl's alexnet is the 2012 paper's (96-256-384-384-256, LRN). No faithful mapping exists")
    if name == "googlenet" and "conv1.bn.weight" in state:
        raise PretrainedWeightsError(
            f"get_model('googlenet', weights={str(path)!r}): these are torchvision's GoogLeNet weights, which "
            f"add batch norm after every convolution and use 3x3 kernels in the '5x5' branches; minidl's "
            f"googlenet is the paper's. No faithful mapping exists")
    if name.startswith("densenet"):
        state = OrderedDict((_DENSENET_OLD_NAME.sub(lambda m: m.group(1) + m.group(2), k), v)
                            for k, v in state.items())
    if name == "se_resnet50" and "layer0.conv1.weight" in state:
        raise PretrainedWeightsError(
            f"get_model('se_resnet50', weights={str(path)!r}): these are timm's legacy_seresnet50 (Cadene's Caffe "
            f"port) weights; that network strides the first 1x1 conv of each block and max-pools its stem "
            f"without padding (ceil_mode), minidl's se_resnet50 is timm's seresnet50 (stride in the 3x3 conv, "
            f"padded pool). The names could be mapped, the computed function could not: use seresnet50 weights")
    if name == "xception":
        state = OrderedDict((k.replace("last_linear.", "fc.", 1) if k.startswith("last_linear.") else k, v)
                            for k, v in state.items())
    return state


def _shape(state, key):
    value = state.get(key)
    return None if value is None else tuple(value.shape)
