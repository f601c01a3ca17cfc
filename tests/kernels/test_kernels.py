"""Every fast kernel set (the ``backend`` fixture: cpu, the CUDA sources on the host shim, the GPU) against
the NumPy reference, in float32 and float64, on the cases of tests/kernels/helpers.py; and the dispatch layer.
"""
import importlib.util
import inspect
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import minidl.kernels as kernels
from minidl.backend import gpu_available
from minidl.kernels import cpu, gpu
from minidl.kernels import reference as ref
from tests.kernels.helpers import (DTYPES, assert_matches_reference, kernel_calls, nan_and_infinity_case,
                                   oversized_ceil_mode_cases, tie_free)

ALL_KERNELS = (kernels.KERNELS + kernels.GEMM_LAYOUT_KERNELS + kernels.DEPTHWISE_KERNELS + kernels.DIRECT_KERNELS
               + kernels.WINOGRAD_KERNELS + kernels.ACTIVATION_KERNELS)


def kernel_or_skip(backend, name):
    if not hasattr(backend.module, name):
        pytest.skip(f"the {backend.name} kernel set has no {name} (kernels/conv.py runs im2col + GEMM instead)")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_every_kernel_matches_reference(backend, dtype, seed):
    calls = kernel_calls(np.random.default_rng(seed), dtype)
    assert {name for name, _, _ in calls} == set(ALL_KERNELS)
    for name, args, backward in calls:
        if hasattr(backend.module, name):
            assert_matches_reference(backend, name, args, backward)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_and_infinities(backend, dtype):
    y, _ = assert_matches_reference(backend, *nan_and_infinity_case(dtype))
    assert np.isnan(y[1, 0]).sum() == 2 and np.isneginf(y[0, 0, 0, 0]) and np.isposinf(y[0, 1, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_kernels_larger_than_the_input_with_ceil_mode(backend, dtype):
    for name, args, backward in oversized_ceil_mode_cases(dtype):
        assert_matches_reference(backend, name, args, backward)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, W, ceil_mode", [(8, 6, False), (7, 9, False), (7, 9, True),
                                             (6, 66, False), (5, 67, True)])     # OW >= 32: the CPU's row kernel
def test_max_pool_2x2(backend, dtype, H, W, ceil_mode):
    # 2x2/2 unpadded windows: the CPU set's unrolled kernels, with many ties, NaNs, -inf and signed zeros
    x = np.random.default_rng(H).integers(0, 3, (2, 3, H, W)).astype(dtype)
    x[0, 0, 0, 1] = x[1, 2, 3, 3] = np.nan
    x[0, 1, :2, :2] = -np.inf
    x[1, 1, 2:4, 2:4] = [[-0.0, 0.0], [0.0, -0.0]]
    y, _ = assert_matches_reference(backend, "max_pool2d_forward", (x, 2, 2, 2, 2, 0, 0, ceil_mode))
    assert np.isnan(y).sum() == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", [(2, 2, 2, 2, 0, 0, False),     # the CPU set's short-row 2x2 kernel
                                    (3, 3, 2, 2, 1, 1, True)])     # the general kernel, padded
def test_max_pool_each_plane_starts_afresh(backend, dtype, window):
    # The CPU kernels reuse their scratch rows from plane to plane: a plane of -inf, or of NaN, that follows
    # planes of large values must not keep any of their maxima or indices.
    x = np.full((2, 3, 6, 6), np.finfo(dtype).max, dtype=dtype)
    x[0, 1] = x[1, 2] = -np.inf
    x[1, 2, 5, 5] = -1.0
    x[1, 0] = np.nan
    y, indices = assert_matches_reference(backend, "max_pool2d_forward", (x,) + window)
    assert np.isneginf(y[0, 1]).all() and np.isnan(y[1, 0]).all() and y[1, 2, -1, -1] == -1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, W, ceil_mode", [(8, 6, False), (7, 9, False), (7, 9, True), (28, 28, False)])
def test_avg_pool_2x2(backend, dtype, H, W, ceil_mode):
    # 2x2/2 unpadded windows: the CPU set's unrolled kernels (odd sizes leave a row or column out); with
    # ceil_mode and an odd size, a window overhangs and the general kernel runs.
    rng = np.random.default_rng(H + W)
    x = rng.standard_normal((2, 3, H, W)).astype(dtype)
    for count_include_pad in (True, False):
        y = assert_matches_reference(backend, "avg_pool2d_forward", (x, 2, 2, 2, 2, 0, 0, ceil_mode, count_include_pad))[0]
        gy = rng.standard_normal(y.shape).astype(dtype)
        assert_matches_reference(backend, "avg_pool2d_backward",
                                 (gy, H, W, 2, 2, 2, 2, 0, 0, ceil_mode, count_include_pad), backward=True)


def test_tanh_on_a_dense_grid_and_at_the_boundaries(backend):
    """float32 tanh (the CPU set's rational function) against float64 tanh: within 4e-7 everywhere on
    [-12, 12] and on 1e-30..1e30, never above 1 in magnitude, odd, exact at 0, +-1 from 9.01 and at +-inf,
    -0.0 kept, NaN kept; and its gradient from the output."""
    kernel_or_skip(backend, "tanh_forward")
    grid = np.concatenate([np.linspace(-12, 12, 480001), np.geomspace(1e-30, 1e30, 20001)]).astype(np.float32)
    grid = np.concatenate([grid, -grid])
    y = backend.to_host(backend.module.tanh_forward(backend.to_device(grid)))
    exact = np.tanh(grid.astype(np.float64))
    assert y.dtype == np.float32 and np.abs(y - exact).max() <= 4e-7
    assert np.abs(y).max() <= 1 and np.array_equal(y[: grid.size // 2], -y[grid.size // 2:])
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 9.01, -9.01, np.finfo(np.float32).max,
                      np.finfo(np.float32).min, np.finfo(np.float32).tiny], np.float32)
    got = backend.to_host(backend.module.tanh_forward(backend.to_device(edges)))
    np.testing.assert_array_equal(got[[0, 2, 3, 5, 6, 7, 8, 9]], [0, 1, -1, 1, -1, 1, -1, np.finfo(np.float32).tiny])
    assert np.signbit(got[1]) and np.isnan(got[4])
    gy = np.linspace(-2, 2, edges.size).astype(np.float32)
    gx = backend.to_host(backend.module.tanh_backward(backend.to_device(gy), backend.to_device(got)))
    np.testing.assert_allclose(gx, gy * (1 - got.astype(np.float64) ** 2), rtol=1e-6, atol=1e-7)
    gy, y = np.array([np.nan, np.inf, np.inf, 1.0], np.float32), np.array([0.5, 0.5, 1.0, np.nan], np.float32)
    with np.errstate(invalid="ignore"):
        expected = gy * (1 - y * y)                                         # nan, inf, nan (inf * 0), nan
    gx = backend.to_host(backend.module.tanh_backward(backend.to_device(gy), backend.to_device(y)))
    np.testing.assert_array_equal(gx, expected)


def test_relu_at_the_boundaries(backend):
    """ReLU and its gradient as PyTorch's (torch.relu, ReluBackward0): -0.0 and NaN pass, -inf gives 0, the
    float32 extremes pass or give 0; the gradient is 0 wherever the output is 0 or -0.0, even for an inf or
    NaN gradient (a product with a mask would give NaN there), and gy itself where the output is NaN."""
    kernel_or_skip(backend, "relu_forward")
    for dtype in (np.float32, np.float64):
        info = np.finfo(dtype)
        x = np.array([-0.0, 0.0, np.nan, -np.inf, np.inf, -1.0, 2.0, info.max, info.min, info.tiny, -info.tiny],
                     dtype)
        y = backend.to_host(backend.module.relu_forward(backend.to_device(x)))
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, [0, 0, np.nan, 0, np.inf, 0, 2, info.max, 0, info.tiny, 0])
        assert np.signbit(y[0]) and not np.signbit(y[1]) and not np.signbit(y[3])
        gy = np.array([1.0, np.inf, np.nan, np.nan, 3.0, np.inf, -np.inf, 5.0, -np.inf, np.nan, 7.0], dtype)
        gx = backend.to_host(backend.module.relu_backward(backend.to_device(gy), backend.to_device(y)))
        np.testing.assert_array_equal(gx, [0, 0, np.nan, 0, 3, 0, -np.inf, 5, 0, np.nan, 0])
        assert not np.signbit(gx[[0, 1, 3, 5, 8, 10]]).any()


def test_large_grid_stride_and_64_bit_indices(backend):
    """More elements than one launch has threads (MAX_BLOCKS * BLOCK), so every grid-stride loop wraps."""
    x = np.random.default_rng(1).standard_normal((8, 16, 64, 64)).astype(np.float32)   # col: 8*16*9*64*64 = 4.7M
    assert_matches_reference(backend, "im2col", (x, 3, 3, 1, 1, 1, 1))
    assert_matches_reference(backend, "col2im", (ref.im2col(x, 3, 3, 1, 1, 1, 1), 64, 64, 1, 1, 1, 1), True)
    assert_matches_reference(backend, "max_pool2d_forward", (x, 3, 3, 2, 2, 1, 1, True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, conv", [
    ((3, 4, 9, 11), (3, 3, 1, 1, 1, 1)),      # stride 1, padded, rows of >= 4 outputs: the Numba loop
    ((2, 3, 14, 14), (5, 5, 1, 1, 0, 0)),     # LeNet C3-like, unpadded: the Numba loop on x itself
    ((2, 2, 8, 6), (3, 2, 1, 1, 2, 0)),       # uneven kernel and padding
    ((2, 3, 5, 5), (5, 5, 1, 1, 0, 0)),       # one output per row (LeNet C5): NumPy's strided copy
    ((2, 3, 9, 9), (3, 3, 2, 2, 1, 1)),       # strided: NumPy's strided copy
    ((2, 3, 9, 9), (3, 3, 1, 1, 2, 2, 2, 2)),  # dilated: NumPy's strided copy
])
def test_im2col_gemm_and_col2im_gemm_both_paths(backend, dtype, shape, conv):
    # Both paths of im2col_gemm and col2im_gemm, on C-contiguous inputs and on transposed (non-contiguous) views.
    kernel_or_skip(backend, "im2col_gemm")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    col = assert_matches_reference(backend, "im2col_gemm", (x, *conv))[0]
    transposed = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    assert_matches_reference(backend, "im2col_gemm", (transposed, *conv))
    gcol = rng.standard_normal(col.shape).astype(dtype)
    assert_matches_reference(backend, "col2im_gemm", (gcol, *shape[2:], *conv[2:]), backward=True)
    gcol_view = np.ascontiguousarray(gcol.transpose(0, 1, 2, 3, 5, 4)).transpose(0, 1, 2, 3, 5, 4)
    assert_matches_reference(backend, "col2im_gemm", (gcol_view, *shape[2:], *conv[2:]), backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_col2im_gemm_one_window(backend, dtype):
    # The whole image in one window (LeNet-5 C5): col2im_gemm's transpose fast path.
    kernel_or_skip(backend, "col2im_gemm")
    gcol = np.random.default_rng(0).standard_normal((3, 5, 4, 2, 1, 1)).astype(dtype)
    assert_matches_reference(backend, "col2im_gemm", (gcol, 5, 4, 1, 1, 0, 0), backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["BT", "AT^T", "AT", "BT^T"])
@pytest.mark.parametrize("seed", range(4))
def test_winograd_kernels_written_out_for_f4x4_3x3(backend, dtype, which, seed):
    # The four matrices of F(4x4, 3x3) take loops of their own in the CPU set (the rest: the general loops).
    kernel_or_skip(backend, "winograd_tiles")
    BT, AT = np.array(ref.WINOGRAD_BT, dtype), np.array(ref.WINOGRAD_AT, dtype)
    L = {"BT": BT, "AT^T": AT.T.copy(), "AT": AT, "BT^T": BT.T.copy()}[which]
    rng = np.random.default_rng(seed)
    N, C, TH, TW, spare = (int(v) for v in (rng.integers(1, 4), rng.integers(1, 21), *rng.integers(1, 4, 2),
                                            rng.integers(0, 3)))
    AO, AI = L.shape
    if which in ("BT", "AT^T"):
        x = rng.standard_normal((N, 4 * (TH - 1) + AI + spare, 4 * (TW - 1) + AI + spare, C)).astype(dtype)
        assert_matches_reference(backend, "winograd_tiles", (x, L, 4, TH, TW))
    else:
        M = rng.standard_normal((AI * AI, N * TH * TW, C)).astype(dtype)
        Hp, Wp = 4 * (TH - 1) + AO + spare, 4 * (TW - 1) + AO + spare
        got = assert_matches_reference(backend, "winograd_untiles", (M, L, 4, TH, TW, Hp, Wp), backward=True)[0]
        out = np.full((N, Hp, Wp, C), np.nan, dtype)     # whatever the buffer held is overwritten
        np.testing.assert_array_equal(backend.module.winograd_untiles(M, L, 4, TH, TW, Hp, Wp, out=out), got)


def test_out_buffers_are_filled_and_returned(backend):
    kernel_or_skip(backend, "winograd_tiles")
    rng = np.random.default_rng(2)
    x, L = rng.standard_normal((2, 10, 14, 3)), rng.standard_normal((6, 6))
    out = np.full((36, 2 * 2 * 3, 3), np.nan)
    assert backend.module.winograd_tiles(np.asfortranarray(x), L, 4, 2, 3, out=out) is out
    np.testing.assert_allclose(out, ref.winograd_tiles(x, L, 4, 2, 3), rtol=1e-12, atol=1e-12)
    y = np.full((2, 3, 7, 9), np.nan)
    assert backend.module.crop_nchw(x, 1, 2, 7, 9, out=y) is y
    np.testing.assert_array_equal(y, ref.crop_nchw(x, 1, 2, 7, 9))


def sample_calls(rng):
    """(kernel name, arguments) for one small float32 call of every kernel."""
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2.0, 3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    _, mean, invstd, _ = ref.batch_norm_forward_train(x, gamma, beta, 1e-5)
    y_pool, indices = ref.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, True)
    y_lrn, scale = ref.lrn_forward(x, 5, 1e-2, 0.75, 2.0)
    return [
        ("im2col", (x, 3, 3, 1, 2, 1, 0, 1, 2)),
        ("col2im", (ref.im2col(x, 3, 3, 1, 2, 1, 0, 1, 2), 6, 5, 1, 2, 1, 0, 1, 2)),
        ("max_pool2d_forward", (x, 3, 3, 2, 2, 1, 1, True)),
        ("max_pool2d_backward", (y_pool, indices, 6, 5)),
        ("avg_pool2d_forward", (x, 3, 3, 2, 2, 1, 1, True, False)),
        ("avg_pool2d_backward", (y_pool, 6, 5, 3, 3, 2, 2, 1, 1, True, False)),
        ("batch_norm_forward_train", (x, gamma, beta, 1e-5)),
        ("batch_norm_forward_eval", (x, gamma, beta, mean, 1 / invstd ** 2, 1e-5)),
        ("batch_norm_backward", (x[::-1], x, gamma, mean, invstd)),
        ("lrn_forward", (x, 5, 1e-2, 0.75, 2.0)),
        ("lrn_backward", (x[::-1], x, y_lrn, scale, 5, 1e-2, 0.75)),
    ]


def strided_copy(a):
    """The same values as ``a`` in a non-contiguous view (every other element of a wider array)."""
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    wide = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)[..., ::2]
    wide[...] = a
    return wide


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def test_non_contiguous_inputs_give_the_contiguous_answer(backend):
    for name, args in sample_calls(np.random.default_rng(0)):
        views = tuple(backend.to_device(strided_copy(a)) if isinstance(a, np.ndarray) else a for a in args)
        dense = tuple(backend.to_device(a) if isinstance(a, np.ndarray) else a for a in args)
        for got, expected in zip(as_tuple(getattr(backend.module, name)(*views)),
                                 as_tuple(getattr(backend.module, name)(*dense))):
            np.testing.assert_array_equal(backend.to_host(got), backend.to_host(expected), err_msg=name)


def test_outputs_follow_the_dtype_of_the_first_array(backend):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for k in (ref, backend.module):
        d = backend.to_device if k is backend.module else (lambda a: a)
        outputs = k.batch_norm_forward_train(d(x), d(np.ones(3)), d(np.zeros(3)), 1e-5)   # float64 gamma, beta
        assert [a.dtype for a in outputs] == [np.float32] * 3 + [np.float64]   # var: for the running statistics
        assert k.lrn_backward(d(x), d(x.astype(np.float64)), d(x), d(np.abs(x) + 2), 3, 0.1, 0.75).dtype == np.float32


@pytest.mark.parametrize("name", ALL_KERNELS)
def test_every_kernel_has_the_same_signature_everywhere(name):
    signature = inspect.signature(getattr(ref, name))
    assert inspect.signature(getattr(kernels, name)) == signature
    assert getattr(kernels, name).__doc__ == getattr(ref, name).__doc__
    assert inspect.signature(getattr(cpu, name)) == signature
    if name in kernels.KERNELS:    # the GPU set has the rest only through kernels/conv.py's other algorithms
        assert inspect.signature(getattr(gpu, name)) == signature


def test_dispatchers_run_the_numpy_kernels():
    expected = ref if os.environ.get("MINIDL_KERNELS", "").strip().lower() == "reference" else cpu
    assert kernels.numpy_kernels is expected
    for name, args in sample_calls(np.random.default_rng(1)):
        assert kernels._backend_for(args[0], name) is expected
        for got, want in zip(as_tuple(getattr(kernels, name)(*args)), as_tuple(getattr(expected, name)(*args))):
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_minidl_kernels_environment_variable():
    code = "import numpy as np, minidl.kernels as k; assert k._backend_for(np.zeros(1), 'im2col') is k.reference"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "MINIDL_KERNELS": "reference"}, check=True)
    bad = subprocess.run([sys.executable, "-c", "import minidl.kernels"], capture_output=True, text=True,
                         env={**os.environ, "MINIDL_KERNELS": "fortran"})
    assert bad.returncode != 0 and "MINIDL_KERNELS='fortran' is not a kernel set" in bad.stderr


def test_importing_the_folder_as_plain_kernels_fails():
    spec = importlib.util.spec_from_file_location("kernels", kernels.__file__)
    with pytest.raises(ImportError, match="import minidl.kernels, not kernels"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_cupy_arrays_need_the_gpu_kernels(monkeypatch):
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.ndarray = type("ndarray", (), {"shape": (1, 1, 4, 4), "dtype": np.dtype(np.float32)})
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "minidl.kernels.gpu", None)    # as if kernels/gpu.py failed to import
    with pytest.raises(RuntimeError, match=r"max_pool2d_forward on a CuPy array needs the GPU kernels \(kernels/gpu"):
        kernels.max_pool2d_forward(fake_cupy.ndarray(), 2, 2, 2, 2, 0, 0)


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")
def test_dispatch_sends_cupy_arrays_to_gpu():
    import cupy
    x = cupy.asarray(tie_free((2, 3, 6, 5), np.random.default_rng(2)).astype(np.float32))
    col = kernels.im2col(x, 3, 3, 1, 1, 1, 1)
    assert isinstance(col, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(col), ref.im2col(cupy.asnumpy(x), 3, 3, 1, 1, 1, 1))
