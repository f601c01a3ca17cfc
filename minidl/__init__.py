"""minidl: a from-scratch deep learning framework for learning convolutional networks by building them.

    import minidl
    import minidl.functions as F
    from minidl import nn, optim

NCHW float32 tensors, a define-by-run autograd engine, im2col convolutions and Numba CPU kernels
(CuPy on the GPU), and hand-written definitions of the classic CNNs in ``minidl.models``.
"""
__version__ = "0.1.0"

import os

# NumPy's OpenBLAS keeps its idle threads spinning for a long time after each GEMM, taking the core that
# minidl's Numba kernels run on next: a LeNet-5 training step measured 454 ms with the default and 5.5 ms
# with a short timeout on the 2-core machine (benchmarks/README.md). OpenBLAS reads this once, when NumPy
# first loads it, so it only helps if minidl is imported before NumPy; an explicit setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from minidl import backend, cuda  # noqa: E402  (after OPENBLAS_THREAD_TIMEOUT)
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
]
