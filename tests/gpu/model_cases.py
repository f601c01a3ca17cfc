"""Input sizes and batches for running every zoo model on both devices at small cost (float32).

Models with global average pooling (or adaptive pooling before their classifier) run at 32 x 32; the ones
whose classifier fixes the input size run at it, with a batch of 1. Batches of 2 elsewhere, so BatchNorm
in training mode has two values per channel even where the feature maps are 1 x 1.
"""
import numpy as np

import minidl
from minidl.models import get_model
from tests.models.fast_init import fast_init

NATIVE = {"alexnet": (227, 1), "zfnet": (224, 1), "zfnet_wide": (224, 1), "googlenet": (64, 2), "nin": (64, 2),
          "lenet1": (28, 2), "alphago_policy": (19, 2), "alphago_value": (19, 2)}
BOARD_PLANES = {"alphago_policy": 48, "alphago_value": 49}   # AlphaGo's feature planes of a 19 x 19 board


def input_for(name, seed=0):
    """The float32 input batch (N, C, H, W) that ``name`` is compared on."""
    size, batch = NATIVE.get(name, (32, 2))
    channels = BOARD_PLANES.get(name, 1 if name.startswith("lenet") else 3)
    return np.random.default_rng(seed).standard_normal((batch, channels, size, size)).astype(np.float32)


def builder(name):
    """Builds ``name`` with cheap deterministic weights (fast_init), the same on every call."""
    def build():
        minidl.manual_seed(0)
        with fast_init():
            return get_model(name)
    return build
