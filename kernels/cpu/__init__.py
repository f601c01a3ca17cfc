"""Numba CPU kernels: the functions of ``reference``, same names and signatures, compiled; one file per
family, as the CUDA sources in ``kernels/cuda/``:

    im2col.py         im2col, col2im, im2col_gemm, col2im_gemm
    activation.py     tanh_forward, tanh_backward, relu_forward, relu_backward
    depthwise.py      depthwise_conv2d, depthwise_conv2d_grad_weight
    direct.py         direct_conv2d, direct_conv2d_grad_input, direct_conv2d_grad_weight (float32: tiled.py's
                      register-tiled kernels, written in simd.py's 8-lane float32 vectors)
    winograd.py       pad_nhwc, crop_nchw, winograd_tiles, winograd_untiles
    pooling.py        max_pool2d_forward/backward, avg_pool2d_forward/backward
    normalization.py  batch_norm_forward_train/eval, batch_norm_backward, lrn_forward/backward

Each public function makes its inputs C-contiguous in the dtype of its first array argument, allocates the
outputs and calls a jitted body; ``minidl.kernels`` has checked the arguments already. Each body is a serial
loop over ``lo:hi`` of an independent outer dimension (the N*C planes, or C for per-channel statistics)
around a contiguous inner loop, which Numba vectorises (tiled.py's are written in vectors instead), compiled
with ``nogil=True``:
``minidl.kernels.threads.parallel_for`` runs it in parts on minidl's threads (why not Numba's
``parallel=True``: see there). Shapes and formulas: see ``reference``.
"""
import os

# Numba's on-disk cache outside the checkout. Set in Numba's config, not in os.environ (importing minidl
# leaves the environment alone, and Numba may be imported already), before the kernels below are
# decorated (each reads it then). An explicit NUMBA_CACHE_DIR wins. Thread policy and malloc tuning:
# minidl/performance.py.
import numba.core.config as _numba_config

if not os.environ.get("NUMBA_CACHE_DIR"):
    _numba_config.CACHE_DIR = os.path.join(
        os.environ.get("MINIDL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minidl"), "numba")

from minidl.kernels import compile_notice  # noqa: E402,F401  (says once when a kernel must compile)
from minidl.kernels.cpu.activation import relu_backward, relu_forward, tanh_backward, tanh_forward
from minidl.kernels.cpu.depthwise import depthwise_conv2d, depthwise_conv2d_grad_weight
from minidl.kernels.cpu.direct import (direct_conv2d, direct_conv2d_grad_input, direct_conv2d_grad_weight,
                                      direct_conv2d_grad_weight_parts)
from minidl.kernels.cpu.im2col import col2im, col2im_gemm, im2col, im2col_gemm
from minidl.kernels.cpu.normalization import (batch_norm_backward, batch_norm_forward_eval,
                                              batch_norm_forward_train, lrn_backward, lrn_forward)
from minidl.kernels.cpu.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                        max_pool2d_forward)
from minidl.kernels.cpu.winograd import crop_nchw, pad_nhwc, winograd_tiles, winograd_untiles

__all__ = ["avg_pool2d_backward", "avg_pool2d_forward", "batch_norm_backward", "batch_norm_forward_eval",
           "batch_norm_forward_train", "col2im", "col2im_gemm", "crop_nchw", "depthwise_conv2d",
           "depthwise_conv2d_grad_weight", "direct_conv2d", "direct_conv2d_grad_input",
           "direct_conv2d_grad_weight", "direct_conv2d_grad_weight_parts", "im2col", "im2col_gemm",
           "lrn_backward", "lrn_forward",
           "max_pool2d_backward", "max_pool2d_forward", "pad_nhwc", "relu_backward", "relu_forward", "tanh_backward",
           "tanh_forward", "winograd_tiles",
           "winograd_untiles"]
