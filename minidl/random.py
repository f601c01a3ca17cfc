"""minidl's random number state: one NumPy Generator, seeded by :func:`manual_seed`.

Everything random in minidl (``randn``, initialisers, dropout, drop-path, data shuffling defaults) draws
from this generator, so one call to ``manual_seed`` makes a run reproducible.
"""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed minidl's global generator (like ``torch.manual_seed``). Returns the generator."""
    global _rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: expected an int seed, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed))
    return _rng


def default_rng():
    """The generator minidl draws from."""
    return _rng


def get_rng_state():
    """A picklable snapshot of the generator's state (for checkpoints)."""
    return _rng.bit_generator.state


def set_rng_state(state):
    _rng.bit_generator.state = state
