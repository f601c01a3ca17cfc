"""minidl.kernels: the compute kernels of minidl (arrays in, arrays out; NumPy, Numba, CuPy only).

Every kernel exists three times, with the same name and signature:
    reference   plain NumPy, written to be read: the oracle the others are tested against
    cpu         Numba, for NumPy arrays (the default)
    gpu         CUDA through CuPy, for CuPy arrays (kernels/gpu.py, loaded on first use)
The functions below check their arguments (kernels/_checks.py: once, for every kernel set), then pick the
module from their first array argument. Which algorithm computes a convolution: kernels/conv.py (and
kernels/winograd.py). Set the environment variable
MINIDL_KERNELS=reference (read once, at import) to run the NumPy reference on NumPy arrays instead of
Numba, for debugging.

Shapes, formulas and the notation (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) are documented in
``minidl.kernels.reference``; all arrays are NCHW, outputs are C-contiguous in the input's dtype.

    >>> import numpy as np
    >>> from minidl import kernels
    >>> x = np.ones((2, 3, 8, 8), np.float32)                 # N x C x H x W
    >>> kernels.im2col(x, 3, 3, 1, 1, 1, 1).shape             # 3x3 kernel, stride 1, padding 1
    (2, 3, 3, 3, 8, 8)
"""
import importlib
import os
import sys

import numpy

if __name__ != "minidl.kernels":
    raise ImportError(f"import minidl.kernels, not kernels: this folder was imported as {__name__!r}, and "
                      "a second copy would JIT-compile every Numba kernel again")

from minidl.kernels import reference  # noqa: E402
from minidl.kernels import _checks  # noqa: E402  (the argument checks, once for every kernel set)
from minidl.kernels import threads  # noqa: E402  (minidl's CPU threads: no Numba)
from minidl.kernels._checks import conv_output_size, window_count  # noqa: E402

# The Numba kernels (minidl.kernels.cpu) are imported at the first kernel call, not here: importing Numba
# takes ~0.35 s, half of `import minidl` (issue 15).
_mode = os.environ.get("MINIDL_KERNELS", "").strip().lower()
if _mode not in ("", "numba", "cpu", "reference"):
    raise ImportError(f"minidl.kernels: MINIDL_KERNELS={_mode!r} is not a kernel set: "
                      "expected 'reference' or 'numba' (the default)")
_numpy_kernels = reference if _mode == "reference" else None


def _load_numpy_kernels():
    """The kernel set for NumPy arrays: minidl.kernels.cpu (Numba), imported on first use, or reference."""
    global _numpy_kernels
    if _numpy_kernels is None:
        from minidl.kernels import cpu
        _numpy_kernels = cpu
    return _numpy_kernels


def __getattr__(name):
    # `kernels.numpy_kernels` and `kernels.cpu` load the Numba kernels when first asked for
    if name == "numpy_kernels":
        return _load_numpy_kernels()
    if name == "cpu":
        return importlib.import_module("minidl.kernels.cpu")
    raise AttributeError(f"module 'minidl.kernels' has no attribute {name!r}")


def _backend_for(x, op):
    """The kernel module for array x: gpu for a CuPy array, else cpu (or reference, see MINIDL_KERNELS)."""
    cupy = sys.modules.get("cupy")   # no CuPy imported means x cannot be a CuPy array
    if cupy is not None and isinstance(x, getattr(cupy, "ndarray", ())):
        try:
            return importlib.import_module("minidl.kernels.gpu")
        except Exception as error:
            raise RuntimeError(f"minidl.kernels: {op} on a CuPy array needs the GPU kernels (kernels/gpu.py), "
                               f"not available: {type(error).__name__}: {error}") from error
    return _numpy_kernels or _load_numpy_kernels()


def matmul(a, b, out=None):
    """a @ b (into out, if given): NumPy arrays split over minidl's threads where large (kernels/threads.py),
    CuPy arrays by cuBLAS."""
    if isinstance(a, numpy.ndarray):
        return threads.matmul(a, b, out)
    return array_module(a).matmul(a, b, out=out)


def array_module(x):
    """The array library of x: cupy for a CuPy array, else numpy (DeZero's get_array_module)."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(x, getattr(cupy, "ndarray", ())):
        return cupy
    return numpy


def im2col(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    _checks.windows("im2col", x, KH, KW, SH, SW, PH, PW, DH, DW)
    return _backend_for(x, "im2col").im2col(x, KH, KW, SH, SW, PH, PW, DH, DW)


def col2im(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    _checks.columns("col2im", col, H, W, SH, SW, PH, PW, DH, DW)
    return _backend_for(col, "col2im").col2im(col, H, W, SH, SW, PH, PW, DH, DW)


def im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    _checks.windows("im2col_gemm", x, KH, KW, SH, SW, PH, PW, DH, DW)
    module = _backend_for(x, "im2col_gemm")
    if hasattr(module, "im2col_gemm"):
        return module.im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH, DW)
    # a kernel set without this layout (the GPU's): its im2col, transposed
    col = module.im2col(x, KH, KW, SH, SW, PH, PW, DH, DW)
    return col.transpose(1, 2, 3, 0, 4, 5).copy()


def col2im_gemm(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    _checks.columns("col2im_gemm", col, H, W, SH, SW, PH, PW, DH, DW)
    module = _backend_for(col, "col2im_gemm")
    if hasattr(module, "col2im_gemm"):
        return module.col2im_gemm(col, H, W, SH, SW, PH, PW, DH, DW)
    return module.col2im(col.transpose(3, 0, 1, 2, 4, 5).copy(), H, W, SH, SW, PH, PW, DH, DW)


def has_kernel(x, name):
    """Whether the kernel set for array x has kernel ``name`` (the GPU's has no depthwise kernels)."""
    return hasattr(_backend_for(x, name), name)


def depthwise_conv2d(x, W, PH, PW):
    _checks.depthwise_conv2d(x, W, PH, PW)
    return _backend_for(x, "depthwise_conv2d").depthwise_conv2d(x, W, PH, PW)


def depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW):
    _checks.depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW)
    return _backend_for(x, "depthwise_conv2d_grad_weight").depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW)


def direct_conv2d(x, W, PH, PW, SH=1, SW=1, b=None):
    _checks.direct_conv2d(x, W, PH, PW, SH, SW, b)
    return _backend_for(x, "direct_conv2d").direct_conv2d(x, W, PH, PW, SH, SW, b)


def direct_conv2d_grad_input(gy, W, H, Wd, PH, PW):
    _checks.direct_conv2d_grad_input(gy, W, H, Wd, PH, PW)
    return _backend_for(gy, "direct_conv2d_grad_input").direct_conv2d_grad_input(gy, W, H, Wd, PH, PW)


def direct_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    _checks.direct_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH, SW)
    return _backend_for(x, "direct_conv2d_grad_weight").direct_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH, SW)


def direct_conv2d_grad_weight_parts(x, gy, KH, KW, PH, PW, SH=1, SW=1):
    """direct_conv2d_grad_weight as ``(part, groups, partial_elements, finish)``: gW is
    ``finish(threads.sum_parts(threads.parallel_map(part, groups, partial_elements)))``, for a caller that
    runs the parts beside other work (kernels.conv.direct_backward). CPU kernel set, float32 x only."""
    _checks.direct_conv2d_grad_weight(x, gy, KH, KW, PH, PW, SH, SW)
    backend = _backend_for(x, "direct_conv2d_grad_weight_parts")
    return backend.direct_conv2d_grad_weight_parts(x, gy, KH, KW, PH, PW, SH, SW)


def tanh_forward(x, outer=1.0, inner=1.0):
    _checks.tanh_forward(x, outer, inner)
    return _backend_for(x, "tanh_forward").tanh_forward(x, outer, inner)


def tanh_backward(gy, y, outer=1.0, inner=1.0):
    _checks.tanh_backward(gy, y, outer, inner)
    return _backend_for(gy, "tanh_backward").tanh_backward(gy, y, outer, inner)


def relu_forward(x):
    _checks.relu_forward(x)
    return _backend_for(x, "relu_forward").relu_forward(x)


def relu_backward(gy, y):
    _checks.relu_backward(gy, y)
    return _backend_for(gy, "relu_backward").relu_backward(gy, y)


def pad_nhwc(x, PT, PL, Hp, Wp):
    _checks.pad_nhwc(x, PT, PL, Hp, Wp)
    return _backend_for(x, "pad_nhwc").pad_nhwc(x, PT, PL, Hp, Wp)


def crop_nchw(x, PT, PL, H, W, out=None):
    _checks.crop_nchw(x, PT, PL, H, W, out)
    return _backend_for(x, "crop_nchw").crop_nchw(x, PT, PL, H, W, out)


def winograd_tiles(x, L, s, TH, TW, out=None):
    _checks.winograd_tiles(x, L, s, TH, TW, out)
    return _backend_for(x, "winograd_tiles").winograd_tiles(x, L, s, TH, TW, out)


def winograd_untiles(M, L, s, TH, TW, Hp, Wp, out=None):
    _checks.winograd_untiles(M, L, s, TH, TW, Hp, Wp, out)
    return _backend_for(M, "winograd_untiles").winograd_untiles(M, L, s, TH, TW, Hp, Wp, out)


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False):
    _checks.windows("max_pool2d_forward", x, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode, pool=True)
    return _backend_for(x, "max_pool2d_forward").max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode)


def max_pool2d_backward(gy, indices, H, W):
    _checks.max_pool2d_backward(gy, indices, H, W)
    return _backend_for(gy, "max_pool2d_backward").max_pool2d_backward(gy, indices, H, W)


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    _checks.windows("avg_pool2d_forward", x, KH, KW, SH, SW, PH, PW, ceil_mode=ceil_mode, pool=True)
    return _backend_for(x, "avg_pool2d_forward").avg_pool2d_forward(
        x, KH, KW, SH, SW, PH, PW, ceil_mode, count_include_pad)


def avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    _checks.avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode, count_include_pad)
    return _backend_for(gy, "avg_pool2d_backward").avg_pool2d_backward(
        gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode, count_include_pad)


def batch_norm_forward_train(x, gamma, beta, eps):
    _checks.batch_norm_forward_train(x, gamma, beta, eps)
    return _backend_for(x, "batch_norm_forward_train").batch_norm_forward_train(x, gamma, beta, eps)


def batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    _checks.batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps)
    return _backend_for(x, "batch_norm_forward_eval").batch_norm_forward_eval(
        x, gamma, beta, running_mean, running_var, eps)


def batch_norm_backward(gy, x, gamma, mean, invstd):
    _checks.batch_norm_backward(gy, x, gamma, mean, invstd)
    return _backend_for(gy, "batch_norm_backward").batch_norm_backward(gy, x, gamma, mean, invstd)


def lrn_forward(x, size, alpha, beta, k):
    _checks.lrn_forward(x, size, alpha, beta, k)
    return _backend_for(x, "lrn_forward").lrn_forward(x, size, alpha, beta, k)


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    _checks.lrn_backward(gy, x, y, scale, size, alpha, beta)
    return _backend_for(gy, "lrn_backward").lrn_backward(gy, x, y, scale, size, alpha, beta)


KERNELS = ("im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
           "avg_pool2d_backward", "batch_norm_forward_train", "batch_norm_forward_eval", "batch_norm_backward",
           "lrn_forward", "lrn_backward")

# The one-GEMM layouts of im2col and col2im: CPU kernels of their own; on the GPU the dispatchers above
# transpose the GPU's im2col and col2im, so the GPU kernel set does not need them.
GEMM_LAYOUT_KERNELS = ("im2col_gemm", "col2im_gemm")
# Depthwise convolution with stride 1: CPU kernels; kernels.conv asks has_kernel(), else runs the grouped GEMM.
DEPTHWISE_KERNELS = ("depthwise_conv2d", "depthwise_conv2d_grad_weight")
# Direct convolution, one group, for layers with few channels (stride 1; in float32 also strided layers and
# first layers, register-tiled): CPU kernels (kernels/conv.py asks has_kernel(), else runs im2col + GEMM).
DIRECT_KERNELS = ("direct_conv2d", "direct_conv2d_grad_input", "direct_conv2d_grad_weight")
# tanh, ReLU and their gradients: CPU kernels (float32 tanh by a rational function, NumPy's is ~5x slower
# here; ReLU by selects, 2.5-6x NumPy's maximum and mask product); minidl.functions' tanh and relu ask
# has_kernel(), else run the array library's.
ACTIVATION_KERNELS = ("tanh_forward", "tanh_backward", "relu_forward", "relu_backward")
# Winograd F(4x4, 3x3) convolution (minidl.kernels.winograd): CPU kernels; elsewhere conv2d runs im2col + GEMM.
WINOGRAD_KERNELS = ("pad_nhwc", "crop_nchw", "winograd_tiles", "winograd_untiles")

# each dispatcher documents itself with the reference's formula
for _name in (KERNELS + GEMM_LAYOUT_KERNELS + DEPTHWISE_KERNELS + DIRECT_KERNELS + WINOGRAD_KERNELS
              + ACTIVATION_KERNELS):
    globals()[_name].__doc__ = getattr(reference, _name).__doc__
del _name

__all__ = ["ACTIVATION_KERNELS", "DEPTHWISE_KERNELS", "DIRECT_KERNELS", "GEMM_LAYOUT_KERNELS", "KERNELS",
           "WINOGRAD_KERNELS", "array_module", "conv_output_size", "cpu",
           "direct_conv2d_grad_weight_parts", "has_kernel", "matmul", "numpy_kernels", "reference", "threads",
           *KERNELS, *GEMM_LAYOUT_KERNELS, *DEPTHWISE_KERNELS,
           *DIRECT_KERNELS, *WINOGRAD_KERNELS, *ACTIVATION_KERNELS, "window_count"]
