"""The one kernel-test helper: every fast kernel set (the ``backend`` fixture of conftest.py: cpu, the CUDA
sources on the host shim, the GPU) against the NumPy reference, on one generator of cases.

    assert_matches_reference(backend, name, args, backward)   one call of kernel ``name``, every output compared
    kernel_calls(rng, dtype)                                  (name, args, backward) for one random call of every kernel
"""
from typing import Callable, NamedTuple

import numpy as np

from minidl.kernels import reference as ref

DTYPES = [np.float32, np.float64]


class Backend(NamedTuple):
    name: str                      # "cpu", "host_shim" or "gpu"
    module: object                 # the kernel set: minidl.kernels.cpu or minidl.kernels.gpu
    to_device: Callable = lambda a: a
    to_host: Callable = lambda a: a


def tie_free(shape, rng):
    """Distinct values (a shuffled arange), so a max is never tied."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) / n


def assert_matches_reference(backend, name, args, backward=False):
    """Run kernel ``name`` of the backend (on device copies of the arrays) and of reference; compare every
    output, and return the backend's outputs (on the host).

    Outputs must be C-contiguous, in the dtype of the first array argument (indices int64, equal exactly;
    batch norm's var float64). Tolerance, relative to the largest finite reference value: 1e-12 in float64;
    in float32 1e-5 forward, 2e-4 for the accumulating backward kernels (the reference accumulates in float64).
    """
    got = getattr(backend.module, name)(*(backend.to_device(a) if isinstance(a, np.ndarray) else a for a in args))
    expected = getattr(ref, name)(*args)
    if not isinstance(expected, tuple):
        got, expected = (got,), (expected,)
    dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
    tol = 1e-12 if dtype == np.float64 else 2e-4 if backward else 1e-5
    assert len(got) == len(expected)
    host = []
    for g, e in zip(got, expected):
        assert g.flags.c_contiguous, f"{name}: output is not C-contiguous"
        g = backend.to_host(g)
        host.append(g)
        assert g.shape == e.shape and g.dtype == e.dtype, f"{name}: got {g.shape} {g.dtype}, want {e.shape} {e.dtype}"
        if e.dtype.kind == "i":
            np.testing.assert_array_equal(g, e, err_msg=name)
            continue
        assert g.dtype == dtype or (name == "batch_norm_forward_train" and len(host) == 4)   # var is float64
        finite = np.abs(e[np.isfinite(e)])
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol * max(1.0, finite.max(initial=0.0)), err_msg=name)
    return tuple(host)


def random_conv_window(rng):
    """(N, C, H, W) and (KH, KW, SH, SW, PH, PW, DH, DW) whose dilated kernel fits the padded input."""
    KH, KW, SH, SW = rng.integers(1, 4, 4)
    PH, PW = rng.integers(0, 3, 2)
    DH, DW = rng.integers(1, 3, 2)
    min_h, min_w = max(1, DH * (KH - 1) + 1 - 2 * PH), max(1, DW * (KW - 1) + 1 - 2 * PW)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(min_h, min_h + 7)),
             int(rng.integers(min_w, min_w + 7)))
    return shape, tuple(int(v) for v in (KH, KW, SH, SW, PH, PW, DH, DW))


def random_pool_window(rng, ceil_mode):
    """(N, C, H, W) and (KH, KW, SH, SW, PH, PW), padding at most half the kernel; with ceil_mode the kernel
    may be up to SH - 1 (SW - 1) larger than the padded input, as PyTorch allows."""
    KH, KW = (int(v) for v in rng.integers(1, 5, 2))
    SH, SW = (int(v) for v in rng.integers(1, 4, 2))
    PH, PW = int(rng.integers(0, KH // 2 + 1)), int(rng.integers(0, KW // 2 + 1))
    slack_h, slack_w = (SH - 1, SW - 1) if ceil_mode else (0, 0)
    min_h, min_w = max(1, KH - 2 * PH - slack_h), max(1, KW - 2 * PW - slack_w)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(min_h, min_h + 8)),
             int(rng.integers(min_w, min_w + 8)))
    return shape, (KH, KW, SH, SW, PH, PW)


def kernel_calls(rng, dtype):
    """(kernel name, NumPy arguments, backward?) for one random call of every kernel in reference.py.

    Backward inputs (indices, mean, invstd, y, scale) come from the reference forward, so each backward
    kernel is checked on its own. A backend without a kernel (the GPU's has no GEMM-layout, depthwise, direct
    or Winograd kernels) skips it.
    """
    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)

    (N, C, H, W), conv = random_conv_window(rng)
    x = normal(N, C, H, W)
    col = ref.im2col(x, *conv)
    calls = [("im2col", (x, *conv), False),
             ("col2im", (normal(*col.shape), H, W, *conv[2:]), True),
             ("im2col_gemm", (x, *conv), False),
             ("col2im_gemm", (normal(*col.shape[1:4], N, *col.shape[4:]), H, W, *conv[2:]), True)]

    KH, KW = (int(v) for v in rng.integers(1, 6, 2))
    PH, PW = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    x = normal(N, C, max(1, KH - 2 * PH) + int(rng.integers(0, 6)), max(1, KW - 2 * PW) + int(rng.integers(0, 6)))
    y = ref.depthwise_conv2d(x, normal(C, 1, KH, KW), PH, PW)
    calls += [("depthwise_conv2d", (x, normal(C, 1, KH, KW), PH, PW), False),
              ("depthwise_conv2d_grad_weight", (x, normal(*y.shape), KH, KW, PH, PW), True)]
    K = int(rng.integers(1, 5))                     # direct convolution: the same window, K filters of C channels
    y = ref.direct_conv2d(x, normal(K, C, KH, KW), PH, PW)
    calls += [("direct_conv2d", (x, normal(K, C, KH, KW), PH, PW), False),
              ("direct_conv2d_grad_input", (normal(*y.shape), normal(K, C, KH, KW), *x.shape[2:], PH, PW), True),
              ("direct_conv2d_grad_weight", (x, normal(*y.shape), KH, KW, PH, PW), True)]

    shape = tuple(int(v) for v in rng.integers(0, 6, int(rng.integers(0, 5))))    # any rank, empty too
    x = np.asarray(rng.standard_normal(shape) * rng.choice([0.001, 1.0, 5.0]), dtype=dtype)
    outer, inner = (float(v) for v in rng.choice([-1.5, 0.5, 1.7159, 2.0], 2) * rng.uniform(0.5, 1.5, 2))
    calls += [("tanh_forward", (x,), False),
              ("tanh_backward", (np.asarray(rng.standard_normal(shape), dtype=dtype), np.tanh(x)), True),
              ("tanh_forward", (x, outer, inner), False),
              ("tanh_backward", (np.asarray(rng.standard_normal(shape), dtype=dtype),
                                 np.asarray(outer * np.tanh(inner * x), dtype=dtype), outer, inner), True),
              ("relu_forward", (x,), False),
              ("relu_backward", (np.asarray(rng.standard_normal(shape), dtype=dtype), np.maximum(x, 0)), True)]

    AO, AI, s = [(6, 6, 4), (6, 4, 4), (4, 6, 4), (4, 4, 2), (3, 2, 1)][rng.integers(5)]
    TH, TW, spare, C = (int(v) for v in (*rng.integers(1, 4, 2), rng.integers(0, 3), rng.integers(1, 10)))
    L = normal(AO, AI)
    V = ref.winograd_tiles(normal(N, s * (TH - 1) + AI + spare, s * (TW - 1) + AI + spare, C), L, s, TH, TW)
    calls += [("winograd_tiles", (normal(N, s * (TH - 1) + AI + spare, s * (TW - 1) + AI + spare, C), L, s, TH, TW),
               False),
              ("winograd_untiles", (V, np.ascontiguousarray(L.T), s, TH, TW, s * (TH - 1) + AI + spare,
                                    s * (TW - 1) + AI), True),
              ("pad_nhwc", (normal(N, C, 3 + spare, 4), 1, spare, 5 + spare, 6 + spare), False),
              ("crop_nchw", (normal(N, 5 + spare, 6 + spare, C), 1, spare, 3 + spare, 4), False)]

    ceil_mode, count_include_pad, ties = (bool(b) for b in rng.integers(0, 2, 3))
    shape, pool = random_pool_window(rng, ceil_mode)
    # With ties (small integers) the indices must agree too: both apply the first-max-wins rule.
    x = (rng.integers(0, 3, shape) if ties else tie_free(shape, rng)).astype(dtype)
    y, indices = ref.max_pool2d_forward(x, *pool, ceil_mode)
    calls += [("max_pool2d_forward", (x, *pool, ceil_mode), False),
              ("max_pool2d_backward", (normal(*y.shape), indices, *shape[2:]), True),
              ("avg_pool2d_forward", (x, *pool, ceil_mode, count_include_pad), False),
              ("avg_pool2d_backward", (normal(*y.shape), *shape[2:], *pool, ceil_mode, count_include_pad), True)]

    shape = tuple(int(v) for v in rng.integers(1, 6, 4))
    C = shape[1]
    x = (rng.normal(rng.uniform(-5, 5), 2.0, shape)).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2.0, C).astype(dtype), normal(C)
    _, mean, invstd, _ = ref.batch_norm_forward_train(x, gamma, beta, 1e-5)
    running_mean, running_var = normal(C), rng.uniform(0.5, 2.0, C).astype(dtype)
    gy = normal(*shape)
    calls += [("batch_norm_forward_train", (x, gamma, beta, 1e-5), False),
              ("batch_norm_forward_eval", (x, gamma, beta, running_mean, running_var, 1e-5), False),
              ("batch_norm_backward", (gy[::-1], x, gamma, mean, invstd), True)]   # a non-contiguous gy

    size, alpha, k = int(rng.integers(1, 7)), float(rng.choice([1e-4, 0.1, 1.0])), float(rng.choice([1.0, 2.0]))
    y, scale = ref.lrn_forward(x, size, alpha, 0.75, k)
    calls += [("lrn_forward", (x, size, alpha, 0.75, k), False),
              ("lrn_backward", (gy, x, y, scale, size, alpha, 0.75), True)]
    return calls


def nan_and_infinity_case(dtype):
    """Max pooling over -inf windows, +inf and NaNs (the first NaN wins, as np.argmax)."""
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(dtype)
    x[0, 0, :3, :3] = -np.inf
    x[0, 1, 1, 1] = np.inf
    x[1, 0, 2, 2:4] = np.nan
    return "max_pool2d_forward", (x, 3, 3, 2, 2, 1, 1, True)


def oversized_ceil_mode_cases(dtype):
    """Pooling calls whose kernel is larger than the padded input, which only ceil_mode allows (PyTorch's
    rule: one window, starting inside the input or its left padding), and windows hanging past the edge."""
    rng = np.random.default_rng(7)
    calls = []
    for shape, pool in [((1, 2, 2, 4), (3, 3, 2, 2, 0, 0)), ((2, 1, 1, 1), (3, 2, 3, 2, 1, 1)),
                        ((1, 3, 3, 2), (5, 4, 4, 3, 2, 0)), ((1, 1, 5, 4), (4, 4, 3, 3, 1, 2))]:
        x = tie_free(shape, rng).astype(dtype)
        y, indices = ref.max_pool2d_forward(x, *pool, True)
        gy = rng.standard_normal(y.shape).astype(dtype)
        calls += [("max_pool2d_forward", (x, *pool, True), False),
                  ("max_pool2d_backward", (gy, indices, *shape[2:]), True)]
        for count_include_pad in (True, False):
            calls += [("avg_pool2d_forward", (x, *pool, True, count_include_pad), False),
                      ("avg_pool2d_backward", (gy, *shape[2:], *pool, True, count_include_pad), True)]
    return calls
