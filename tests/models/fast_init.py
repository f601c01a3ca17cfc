"""Build the big classic models without drawing ~10^8 random numbers (test-only).

VGG16's initialisation draws 138M float64 samples twice (the layers' defaults, then the model's own
scheme): seconds on a shared 2-core machine, times ten VGG variants. Parameter counts and gradient
flow do not depend on the values, so inside ``fast_init()`` every random initialiser of ``nn.init``
fills weights with a tiled block of He-uniform noise instead, and biases with zeros. The models' own
initialisation code still runs (and is tested separately on the cheap models).
"""
import contextlib
import math

import numpy as np

from minidl.nn import init

_RANDOM_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                        "kaiming_uniform_", "kaiming_normal_")
_NOISE = np.random.default_rng(0).uniform(-1.0, 1.0, 100_003).astype(np.float32)  # prime length


def _tiled_noise(tensor, *args, **kwargs):
    flat = tensor.data.reshape(-1)
    if tensor.ndim < 2:
        flat[...] = 0.0
        return tensor
    block = _NOISE * np.float32(math.sqrt(6.0 / math.prod(tensor.shape[1:])))   # He-uniform scale
    for start in range(0, flat.size, block.size):                                # plain copies, no temporaries
        chunk = flat[start:start + block.size]
        chunk[...] = block[:chunk.size]
    return tensor


@contextlib.contextmanager
def fast_init():
    saved = {name: getattr(init, name) for name in _RANDOM_INITIALISERS}
    try:
        for name in _RANDOM_INITIALISERS:
            setattr(init, name, _tiled_noise)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)
