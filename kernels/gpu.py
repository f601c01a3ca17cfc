"""CUDA kernels for CuPy arrays: the same functions, signatures and conventions as ``kernels/reference.py``.

``minidl.kernels`` imports this module the first time a CuPy array reaches a kernel. The CUDA C sources are
real files in ``kernels/cuda/`` (one per family: im2col.cu, pooling.cu, batch_norm.cu, lrn.cu), each
compiled once per process by NVRTC through ``cupy.RawModule`` with float and double template instances.

How the kernels are written (see the GPU section of PERF.md):
    - grid-stride loops, blocks of 256 threads, at most MAX_BLOCKS blocks; 64-bit element indices
      (``long long``), since a column buffer can pass 2^31 elements;
    - every scalar is converted to the exact C type of its parameter (SIGNATURES below) before a launch:
      CuPy passes a Python int as ``long long`` and a Python float as ``double``, which a kernel taking
      ``int`` or ``float`` would misread;
    - col2im and the average-pool backward are gathers (one thread per input pixel, no atomics); the
      max-pool backward is a scatter with atomicAdd, because its signature (gy, indices, H, W) carries no
      window to gather over; batch-norm statistics are CuPy reductions in float64, and the normalisation
      itself is an elementwise kernel.

How they are tested without a GPU (tests/kernels/test_cuda_sources.py):
    - nvcc compiles every .cu file for sm_90 with explicit float/double instances built from SIGNATURES
      (which therefore must match the sources), and ptxas must report no register spills;
    - every kernel not in DEVICE_ONLY is barrier-free, so g++ compiles it with ``cuda/host_shim.h`` and the
      functions of this module run on NumPy arrays on the CPU, each launch executing its (block, thread)
      pairs one after another with odd grid and block sizes. This checks the kernels' arithmetic and this
      module's glue (shapes, dtypes, argument types) against the reference. It cannot check races, shared
      memory, device math-library rounding, NVRTC itself or performance: the ``backend`` fixture of
      tests/kernels runs the same comparisons on a real device ("gpu").

The arguments are checked once, by the dispatchers of ``minidl.kernels`` (kernels/_checks.py); the
functions here assume arguments that passed.

CuPy is optional for minidl: without it this module still imports (its tables are read by the tests), but
calling a kernel needs it.
"""
import functools
import os

import numpy as np

from minidl.kernels._checks import indices_out_of_range, window_count

try:
    import cupy
except ImportError:   # importable without CuPy so that the CPU tests can read SIGNATURES and DEVICE_ONLY
    cupy = None

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda")
BLOCK = 256
MAX_BLOCKS = 4096        # 1M threads: several waves on an H100 (132 SMs x 2048 threads); loops cover the rest
TEMPLATE_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_WINDOW = ("int",) * 12   # H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW
_POOL = ("int",) * 10     # H, W, KH, KW, SH, SW, PH, PW, OH, OW
SIGNATURES = {   # kernel -> (source file, C parameter types with T the element type): arrays, total, scalars
    "im2col_kernel": ("im2col.cu", ("const T*", "T*", "long long") + _WINDOW),
    "col2im_kernel": ("im2col.cu", ("const T*", "T*", "long long") + _WINDOW),
    "max_pool2d_forward_kernel": ("pooling.cu", ("const T*", "T*", "long long*", "long long") + _POOL),
    "max_pool2d_backward_kernel": ("pooling.cu", ("const T*", "const long long*", "T*", "int*", "long long",
                                                  "int", "int")),
    "avg_pool2d_forward_kernel": ("pooling.cu", ("const T*", "T*", "long long") + _POOL + ("int",)),
    "avg_pool2d_backward_kernel": ("pooling.cu", ("const T*", "T*", "long long") + _POOL + ("int",)),
    "channel_affine_kernel": ("batch_norm.cu", ("const T*",) * 4 + ("T*", "long long", "int", "long long")),
    "batch_norm_backward_kernel": ("batch_norm.cu", ("const T*",) * 6 + ("T*", "long long", "int", "long long")),
    "lrn_forward_kernel": ("lrn.cu", ("const T*", "T*", "T*", "long long", "int", "long long", "int",
                                      "T", "T", "T")),
    "lrn_backward_kernel": ("lrn.cu", ("const T*",) * 4 + ("T*", "long long", "int", "long long", "int", "T", "T")),
}

# Kernels that use __shared__ memory or __syncthreads (so cannot run on the CPU shim), with the reason.
# None today: the batch-norm sums are CuPy reductions. A fused per-channel reduction kernel would go here.
DEVICE_ONLY = ()

_SCALAR_TYPES = {"int": np.int32, "long long": np.int64}


def source_path(filename):
    return os.path.join(SOURCE_DIR, filename)


@functools.lru_cache(maxsize=None)
def _module(filename):
    """The compiled RawModule of one .cu file, with a float and a double instance of each of its kernels."""
    names = [f"{kernel}<{t}>" for kernel, (source, _) in SIGNATURES.items() if source == filename
             for t in TEMPLATE_TYPES.values()]
    with open(source_path(filename)) as f:
        code = f.read()
    return cupy.RawModule(code=code, options=("--std=c++17",), name_expressions=names)


def _launch(kernel, arrays, total, *scalars):
    """Launch ``kernel`` for ``total`` elements; T is the dtype of arrays[0], scalars are cast per SIGNATURES."""
    if total == 0:
        return
    source, params = SIGNATURES[kernel]
    dtype = arrays[0].dtype
    n_arrays = len(arrays)
    assert len(params) == n_arrays + 1 + len(scalars), f"{kernel}: wrong number of arguments"
    args = list(arrays) + [np.int64(total)]
    for param, value in zip(params[n_arrays + 1:], scalars):
        args.append(dtype.type(value) if param == "T" else _SCALAR_TYPES[param](value))
    grid = min((total + BLOCK - 1) // BLOCK, MAX_BLOCKS)
    _module(source).get_function(f"{kernel}<{TEMPLATE_TYPES[dtype]}>")((grid,), (BLOCK,), tuple(args))


def _c(a, dtype):
    return cupy.ascontiguousarray(a, dtype=dtype)


def im2col(x, KH, KW, SH, SW, PH, PW, DH=1, DW=1):
    """CUDA im2col: x (N, C, H, W) -> col (N, C, KH, KW, OH, OW). See reference.im2col."""
    N, C, H, W = x.shape
    OH, OW = window_count(H, KH, SH, PH, DH), window_count(W, KW, SW, PW, DW)
    x = _c(x, x.dtype)
    col = cupy.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    _launch("im2col_kernel", (x, col), col.size, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    return col


def col2im(col, H, W, SH, SW, PH, PW, DH=1, DW=1):
    """CUDA col2im (a gather over the windows covering each pixel): -> x (N, C, H, W). See reference.col2im."""
    N, C, KH, KW, OH, OW = col.shape
    col = _c(col, col.dtype)
    x = cupy.empty((N, C, H, W), dtype=col.dtype)
    _launch("col2im_kernel", (col, x), x.size, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    return x


def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False):
    """CUDA max pooling: x (N, C, H, W) -> y, indices (N, C, OH, OW). See reference.max_pool2d_forward."""
    N, C, H, W = x.shape
    OH, OW = window_count(H, KH, SH, PH, 1, ceil_mode), window_count(W, KW, SW, PW, 1, ceil_mode)
    x = _c(x, x.dtype)
    y = cupy.empty((N, C, OH, OW), dtype=x.dtype)
    indices = cupy.empty((N, C, OH, OW), dtype=np.int64)
    _launch("max_pool2d_forward_kernel", (x, y, indices), y.size, H, W, KH, KW, SH, SW, PH, PW, OH, OW)
    return y, indices


def max_pool2d_backward(gy, indices, H, W):
    """CUDA scatter-add of gy at indices: -> gx (N, C, H, W). See reference.max_pool2d_backward.

    Checking the indices reads one flag back from the device (a synchronisation) per call.
    """
    N, C, OH, OW = gy.shape
    gy, indices = _c(gy, gy.dtype), _c(indices, np.int64)
    gx = cupy.zeros((N, C, H, W), dtype=gy.dtype)
    out_of_range = cupy.zeros(1, dtype=np.int32)
    _launch("max_pool2d_backward_kernel", (gy, indices, gx, out_of_range), gy.size, H * W, OH * OW)
    if int(out_of_range[0]):
        raise indices_out_of_range("max_pool2d_backward", indices, H, W)
    return gx


def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """CUDA average pooling: x (N, C, H, W) -> y (N, C, OH, OW). See reference.avg_pool2d_forward."""
    N, C, H, W = x.shape
    OH, OW = window_count(H, KH, SH, PH, 1, ceil_mode), window_count(W, KW, SW, PW, 1, ceil_mode)
    x = _c(x, x.dtype)
    y = cupy.empty((N, C, OH, OW), dtype=x.dtype)
    _launch("avg_pool2d_forward_kernel", (x, y), y.size, H, W, KH, KW, SH, SW, PH, PW, OH, OW,
            bool(count_include_pad))
    return y


def avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, ceil_mode=False, count_include_pad=True):
    """CUDA average-pool gradient (a gather): gy (N, C, OH, OW) -> gx (N, C, H, W)."""
    N, C, OH, OW = gy.shape
    gy = _c(gy, gy.dtype)
    gx = cupy.empty((N, C, H, W), dtype=gy.dtype)
    _launch("avg_pool2d_backward_kernel", (gy, gx), gx.size, H, W, KH, KW, SH, SW, PH, PW, OH, OW,
            bool(count_include_pad))
    return gx


def _channel_affine(x, center, scale, shift):
    """y = (x - center[c]) * scale[c] + shift[c] for a C-contiguous x (N, C, H, W); vectors cast to x.dtype."""
    N, C, H, W = x.shape
    dt = x.dtype
    y = cupy.empty_like(x)
    _launch("channel_affine_kernel", (x, _c(center, dt), _c(scale, dt), _c(shift, dt), y), x.size, C, H * W)
    return y


def batch_norm_forward_train(x, gamma, beta, eps):
    """CUDA training-mode batch norm: -> y, mean, invstd, var. See reference.batch_norm_forward_train.

    The per-channel mean and (biased) variance are CuPy reductions accumulated in float64.
    """
    x = _c(x, x.dtype)
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
    var = x.var(axis=(0, 2, 3), dtype=np.float64)
    invstd = 1.0 / cupy.sqrt(var + eps)
    y = _channel_affine(x, mean, _c(gamma, np.float64) * invstd, beta)
    return y, mean.astype(x.dtype), invstd.astype(x.dtype), var


def batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """CUDA inference-mode batch norm: -> y. See reference.batch_norm_forward_eval."""
    scale = _c(gamma, np.float64) / cupy.sqrt(_c(running_var, np.float64) + eps)
    return _channel_affine(_c(x, x.dtype), running_mean, scale, beta)


def batch_norm_backward(gy, x, gamma, mean, invstd):
    """CUDA training-mode batch-norm gradients: -> gx, dgamma, dbeta. See reference.batch_norm_backward.

    dbeta = sum(gy) and dgamma = invstd * sum(gy * (x - mean)) are CuPy reductions in float64; then, with
    k = gamma * invstd, gx = k * gy - k * invstd * dgamma / M * (x - mean) - k * dbeta / M elementwise.
    """
    N, C, H, W = gy.shape
    M = N * H * W
    dt = gy.dtype
    gy, x, mean = _c(gy, dt), _c(x, dt), _c(mean, dt)
    mean64, invstd64 = mean.astype(np.float64), _c(invstd, np.float64)
    dbeta = gy.sum(axis=(0, 2, 3), dtype=np.float64)
    dgamma = (gy * (x - mean64.reshape(1, C, 1, 1))).sum(axis=(0, 2, 3), dtype=np.float64) * invstd64
    k = _c(gamma, np.float64) * invstd64
    gx = cupy.empty_like(gy)
    _launch("batch_norm_backward_kernel", (gy, x, mean, _c(k, dt), _c(-k * invstd64 * dgamma / M, dt),
                                           _c(-k * dbeta / M, dt), gx), gx.size, C, H * W)
    return gx, dgamma.astype(dt), dbeta.astype(dt)


def lrn_forward(x, size, alpha, beta, k):
    """CUDA local response normalisation: x (N, C, H, W) -> y, scale. See reference.lrn_forward."""
    N, C, H, W = x.shape
    x = _c(x, x.dtype)
    y, scale = cupy.empty_like(x), cupy.empty_like(x)
    _launch("lrn_forward_kernel", (x, y, scale), x.size, C, H * W, size, alpha, beta, k)
    return y, scale


def lrn_backward(gy, x, y, scale, size, alpha, beta):
    """CUDA gradient of lrn_forward: -> gx (N, C, H, W). See reference.lrn_backward."""
    N, C, H, W = gy.shape
    dt = gy.dtype
    gy = _c(gy, dt)
    gx = cupy.empty_like(gy)
    _launch("lrn_backward_kernel", (gy, _c(x, dt), _c(y, dt), _c(scale, dt), gx), gx.size, C, H * W, size,
            alpha, beta)
    return gx
