"""The CUDA kernels (kernels/gpu.py) against the NumPy reference on a real device, float32 and float64.

Skipped without CuPy and a CUDA device. The same cases (``kernel_calls``) and comparison
(``assert_matches_reference``) also run on the CPU through the host shim in test_cuda_sources.py, with
NumPy standing in for CuPy; here ``to_device`` and ``to_host`` move the arrays to and from the GPU.
"""
import numpy as np
import pytest

from minidl.backend import gpu_available
from minidl.kernels import reference as ref
from tests.kernels.test_reference import tie_free

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")

DTYPES = [np.float32, np.float64]
SEEDS = range(12)


def random_conv_window(rng):
    """(N, C, H, W) and (KH, KW, SH, SW, PH, PW, DH, DW) whose dilated kernel fits the padded input."""
    KH, KW, SH, SW = rng.integers(1, 4, 4)
    PH, PW = rng.integers(0, 3, 2)
    DH, DW = rng.integers(1, 3, 2)
    min_h, min_w = max(1, DH * (KH - 1) + 1 - 2 * PH), max(1, DW * (KW - 1) + 1 - 2 * PW)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(min_h, min_h + 7)),
             int(rng.integers(min_w, min_w + 7)))
    return shape, tuple(int(v) for v in (KH, KW, SH, SW, PH, PW, DH, DW))


def random_pool_window(rng):
    """(N, C, H, W) and (KH, KW, SH, SW, PH, PW), padding at most half the kernel."""
    KH, KW = (int(v) for v in rng.integers(1, 5, 2))
    SH, SW = (int(v) for v in rng.integers(1, 4, 2))
    PH, PW = int(rng.integers(0, KH // 2 + 1)), int(rng.integers(0, KW // 2 + 1))
    min_h, min_w = max(1, KH - 2 * PH), max(1, KW - 2 * PW)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(min_h, min_h + 8)),
             int(rng.integers(min_w, min_w + 8)))
    return shape, (KH, KW, SH, SW, PH, PW)


def kernel_calls(rng, dtype):
    """(kernel name, NumPy arguments, backward?) for one random call of every kernel in reference.py.

    Backward inputs (indices, mean, invstd, y, scale) come from the reference forward, so each backward
    kernel is checked on its own.
    """
    def normal(shape):
        return rng.standard_normal(shape).astype(dtype)

    calls = []
    (N, C, H, W), conv = random_conv_window(rng)
    x = normal((N, C, H, W))
    col = ref.im2col(x, *conv)
    calls += [("im2col", (x, *conv), False),
              ("col2im", (normal(col.shape), H, W, *conv[2:]), True)]

    shape, pool = random_pool_window(rng)
    ceil_mode, count_include_pad, ties = (bool(b) for b in rng.integers(0, 2, 3))
    # With ties (small integers) the indices must agree too: both apply the first-max-wins rule.
    x = (rng.integers(0, 3, shape) if ties else tie_free(shape, rng)).astype(dtype)
    y, indices = ref.max_pool2d_forward(x, *pool, ceil_mode)
    calls += [("max_pool2d_forward", (x, *pool, ceil_mode), False),
              ("max_pool2d_backward", (normal(y.shape), indices, *shape[2:]), True),
              ("avg_pool2d_forward", (x, *pool, ceil_mode, count_include_pad), False),
              ("avg_pool2d_backward", (normal(y.shape), *shape[2:], *pool, ceil_mode, count_include_pad), True)]

    shape = tuple(int(v) for v in rng.integers(1, 6, 4))
    C = shape[1]
    x = (rng.normal(rng.uniform(-5, 5), 2.0, shape)).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2.0, C).astype(dtype), normal(C)
    _, mean, invstd, _ = ref.batch_norm_forward_train(x, gamma, beta, 1e-5)
    running_mean, running_var = normal(C), rng.uniform(0.5, 2.0, C).astype(dtype)
    gy = normal(shape)
    calls += [("batch_norm_forward_train", (x, gamma, beta, 1e-5), False),
              ("batch_norm_forward_eval", (x, gamma, beta, running_mean, running_var, 1e-5), False),
              ("batch_norm_backward", (gy[::-1], x, gamma, mean, invstd), True)]   # a non-contiguous gy

    size, alpha, k = int(rng.integers(1, 7)), float(rng.choice([1e-4, 0.1, 1.0])), float(rng.choice([1.0, 2.0]))
    y, scale = ref.lrn_forward(x, size, alpha, 0.75, k)
    calls += [("lrn_forward", (x, size, alpha, 0.75, k), False),
              ("lrn_backward", (gy, x, y, scale, size, alpha, 0.75), True)]
    return calls


def assert_matches_reference(gpu, to_device, to_host, name, args, backward=False):
    """Run kernel ``name`` of ``gpu`` (on device copies of the arrays) and of reference; compare every output.

    Outputs must be C-contiguous, in the dtype of the first array argument (indices int64, equal exactly).
    Tolerance, relative to the largest finite reference value: 1e-12 in float64; in float32 1e-5 forward,
    2e-4 for the accumulating backward kernels (the reference accumulates in float64).
    """
    got = getattr(gpu, name)(*(to_device(a) if isinstance(a, np.ndarray) else a for a in args))
    expected = getattr(ref, name)(*args)
    if not isinstance(expected, tuple):
        got, expected = (got,), (expected,)
    dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
    tol = 1e-12 if dtype == np.float64 else 2e-4 if backward else 1e-5
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.flags.c_contiguous, f"{name}: output is not C-contiguous"
        g = to_host(g)
        assert g.shape == e.shape and g.dtype == e.dtype, f"{name}: got {g.shape} {g.dtype}, want {e.shape} {e.dtype}"
        if e.dtype.kind == "i":
            np.testing.assert_array_equal(g, e, err_msg=name)
            continue
        finite = np.abs(e[np.isfinite(e)])
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol * max(1.0, finite.max(initial=0.0)), err_msg=name)


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


@pytest.fixture(scope="module")
def cuda():
    """(gpu module, to_device, to_host) on the real device."""
    import cupy

    from minidl.kernels import gpu
    return gpu, cupy.asarray, cupy.asnumpy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_every_kernel_matches_reference(cuda, dtype, seed):
    for name, args, backward in kernel_calls(np.random.default_rng(seed), dtype):
        assert_matches_reference(*cuda, name, args, backward)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_and_infinities(cuda, dtype):
    assert_matches_reference(*cuda, *nan_and_infinity_case(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_kernels_larger_than_the_input_with_ceil_mode(cuda, dtype):
    for name, args, backward in oversized_ceil_mode_cases(dtype):
        assert_matches_reference(*cuda, name, args, backward)


def test_large_grid_stride_and_64_bit_indices(cuda):
    """More elements than one launch has threads (MAX_BLOCKS * BLOCK), so every grid-stride loop wraps."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16, 64, 64)).astype(np.float32)            # col: 8*16*9*64*64 = 4.7M
    assert_matches_reference(*cuda, "im2col", (x, 3, 3, 1, 1, 1, 1))
    assert_matches_reference(*cuda, "col2im", (ref.im2col(x, 3, 3, 1, 1, 1, 1), 64, 64, 1, 1, 1, 1), True)
    assert_matches_reference(*cuda, "max_pool2d_forward", (x, 3, 3, 2, 2, 1, 1, True))


def test_dispatch_sends_cupy_arrays_to_gpu(cuda):
    import cupy

    import minidl.kernels as kernels
    x = cupy.asarray(np.random.default_rng(2).standard_normal((2, 3, 6, 5)).astype(np.float32))
    col = kernels.im2col(x, 3, 3, 1, 1, 1, 1)
    assert isinstance(col, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(col), ref.im2col(cupy.asnumpy(x), 3, 3, 1, 1, 1, 1), rtol=0, atol=0)
