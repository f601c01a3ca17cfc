"""minidl: a from-scratch deep learning framework for learning convolutional networks by building them.

    import minidl
    import minidl.functions as F
    from minidl import nn, optim

NCHW float32 tensors, a define-by-run autograd engine, im2col convolutions and Numba CPU kernels
(CuPy on the GPU), and hand-written definitions of the classic CNNs in ``minidl.models``.
"""
__version__ = "0.1.0"

# How minidl shares the cores with NumPy's BLAS (and PyTorch) in any import order: minidl.performance (a
# run-time thread policy; this import sets nothing process-wide but Numba's cache folder, in Numba's config).
# Process tuning is minidl.set_performance_defaults(), not an import.
from minidl import performance
from minidl.performance import get_num_threads, set_num_threads, set_performance_defaults

from minidl import backend, cuda  # noqa: E402
from minidl.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from minidl.creation import (arange, full, ones, ones_like, rand, randint, randn, tensor, zeros,
                             zeros_like)
from minidl.random import default_rng, get_rng_state, manual_seed, set_rng_state
from minidl.tensor import Function, Parameter, Tensor, grad

from minidl import functions, nn, optim  # noqa: E402  (they build on the core above)
from minidl.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: E402
from minidl.serialization import SerializationError, load, save  # noqa: E402
from minidl.summary import receptive_field, summary  # noqa: E402
from minidl.weights import load_weights, save_weights  # noqa: E402

float32 = "float32"
float64 = "float64"
int64 = "int64"

__all__ = [
    "Function", "Parameter", "Tensor", "arange", "backend", "cuda", "default_rng", "enable_grad", "full", "functions",
    "GradcheckError", "grad", "gradcheck", "gradgradcheck", "nn", "optim", "receptive_field", "summary", "save",
    "load", "SerializationError",
    "get_rng_state", "is_grad_enabled", "manual_seed", "no_grad", "ones", "ones_like", "rand", "randint",
    "randn", "set_grad_enabled", "set_rng_state", "tensor", "zeros", "zeros_like", "load_weights", "save_weights",
    "performance", "set_performance_defaults", "set_num_threads", "get_num_threads",
]
