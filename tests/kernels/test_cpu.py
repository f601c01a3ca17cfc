"""The Numba kernels against the NumPy reference, in float32 and float64, and the dispatch layer."""
import importlib.util
import inspect
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minidl.kernels as kernels
from minidl.kernels import cpu
from minidl.kernels import reference as ref
from tests.kernels.test_reference import argument_errors, conv_cases, pool_cases, seeds, tie_free

DTYPES = [np.float32, np.float64]


def assert_matches_reference(name, *args, backward=False):
    """Run kernel ``name`` of cpu and of reference on the same arguments and compare every output.

    Outputs must be C-contiguous in the dtype of the first array argument. Tolerance, relative to the largest
    finite reference value: 1e-12 in float64; in float32 1e-5 forward, 2e-4 for the accumulating backward.
    """
    got, expected = getattr(cpu, name)(*args), getattr(ref, name)(*args)
    if not isinstance(got, tuple):
        got, expected = (got,), (expected,)
    dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
    tol = 1e-12 if dtype == np.float64 else 2e-4 if backward else 1e-5
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype and g.flags.c_contiguous
        if e.dtype.kind == "i":
            np.testing.assert_array_equal(g, e)
            continue
        assert g.dtype == dtype or (name == "batch_norm_forward_train" and g is got[-1])   # var is float64
        finite = np.abs(e[np.isfinite(e)])
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol * max(1.0, finite.max(initial=0.0)))
    return got


@st.composite
def nchw_shapes(draw):
    return draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=conv_cases(), seed=seeds)
def test_im2col_and_col2im(dtype, case, seed):
    (N, C, H, W), win = case
    rng = np.random.default_rng(seed)
    col = assert_matches_reference("im2col", rng.standard_normal((N, C, H, W)).astype(dtype), *win.conv)[0]
    gcol = rng.standard_normal(col.shape).astype(dtype)
    assert_matches_reference("col2im", gcol, H, W, *win.conv_strides, backward=True)



@pytest.mark.parametrize("dtype", DTYPES)
@given(case=conv_cases(), seed=seeds)
def test_im2col_gemm_and_col2im_gemm(dtype, case, seed):
    (N, C, H, W), win = case
    rng = np.random.default_rng(seed)
    col = assert_matches_reference("im2col_gemm", rng.standard_normal((N, C, H, W)).astype(dtype), *win.conv)[0]
    gcol = rng.standard_normal(col.shape).astype(dtype)
    assert_matches_reference("col2im_gemm", gcol, H, W, *win.conv_strides, backward=True)
    for name in kernels.GEMM_LAYOUT_KERNELS:
        assert inspect.signature(getattr(cpu, name)) == inspect.signature(getattr(ref, name))
        assert inspect.signature(getattr(kernels, name)) == inspect.signature(getattr(ref, name))

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, conv", [
    ((3, 4, 9, 11), (3, 3, 1, 1, 1, 1)),      # stride 1, padded, rows of >= 4 outputs: the Numba loop
    ((2, 3, 14, 14), (5, 5, 1, 1, 0, 0)),     # LeNet C3-like, unpadded: the Numba loop on x itself
    ((2, 2, 8, 6), (3, 2, 1, 1, 2, 0)),       # uneven kernel and padding
    ((2, 3, 5, 5), (5, 5, 1, 1, 0, 0)),       # one output per row (LeNet C5): NumPy's strided copy
    ((2, 3, 9, 9), (3, 3, 2, 2, 1, 1)),       # strided: NumPy's strided copy
    ((2, 3, 9, 9), (3, 3, 1, 1, 2, 2, 2, 2)),  # dilated: NumPy's strided copy
])
def test_im2col_gemm_and_col2im_gemm_both_paths(dtype, shape, conv):
    # Both paths of im2col_gemm and col2im_gemm, on C-contiguous inputs and on transposed (non-contiguous) views.
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    col = assert_matches_reference("im2col_gemm", x, *conv)[0]
    assert_matches_reference("im2col_gemm", np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2), *conv)
    gcol = rng.standard_normal(col.shape).astype(dtype)
    assert_matches_reference("col2im_gemm", gcol, *shape[2:], *conv[2:], backward=True)
    gcol_view = np.ascontiguousarray(gcol.transpose(0, 1, 2, 3, 5, 4)).transpose(0, 1, 2, 3, 5, 4)
    assert_matches_reference("col2im_gemm", gcol_view, *shape[2:], *conv[2:], backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 3), C=st.integers(1, 4), H=st.integers(1, 9), W=st.integers(1, 9),
       KH=st.integers(1, 5), KW=st.integers(1, 5), PH=st.integers(0, 3), PW=st.integers(0, 3), seed=seeds)
def test_depthwise_conv2d_and_grad_weight(dtype, N, C, H, W, KH, KW, PH, PW, seed):
    assume(H + 2 * PH >= KH and W + 2 * PW >= KW)   # a kernel that does not fit: see the argument errors
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y = assert_matches_reference("depthwise_conv2d", x, rng.standard_normal((C, 1, KH, KW)).astype(dtype), PH, PW)[0]
    gy = rng.standard_normal(y.shape).astype(dtype)
    assert_matches_reference("depthwise_conv2d_grad_weight", x, gy, KH, KW, PH, PW, backward=True)
    for name in kernels.DEPTHWISE_KERNELS:
        assert inspect.signature(getattr(cpu, name)) == inspect.signature(getattr(ref, name))
        assert inspect.signature(getattr(kernels, name)) == inspect.signature(getattr(ref, name))


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 3), C=st.integers(1, 9), TH=st.integers(1, 3), TW=st.integers(1, 3),
       shape=st.sampled_from([(6, 6, 4), (6, 4, 4), (4, 6, 4), (4, 4, 2), (3, 2, 1)]), spare=st.integers(0, 2),
       seed=seeds)
def test_winograd_kernels(dtype, N, C, TH, TW, shape, spare, seed):
    AO, AI, s = shape
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((AO, AI)).astype(dtype)
    x = rng.standard_normal((N, s * (TH - 1) + AI + spare, s * (TW - 1) + AI + spare, C)).astype(dtype)
    V = assert_matches_reference("winograd_tiles", x, L, s, TH, TW)[0]
    LT = np.ascontiguousarray(L.T)
    assert_matches_reference("winograd_untiles", V, LT, s, TH, TW, s * (TH - 1) + AI + spare, s * (TW - 1) + AI,
                             backward=True)
    image = rng.standard_normal((N, C, 3 + spare, 4)).astype(dtype)
    padded = assert_matches_reference("pad_nhwc", image, 1, spare, 5 + spare, 6 + spare)[0]
    assert_matches_reference("crop_nchw", padded, 1, spare, 3 + spare, 4)
    # out= buffers are filled and returned; a transposed (non-contiguous) input gives the same result
    out = np.full(V.shape, np.nan, dtype)
    assert cpu.winograd_tiles(np.asfortranarray(x), L, s, TH, TW, out=out) is out
    np.testing.assert_array_equal(out, V)
    for name in kernels.WINOGRAD_KERNELS:
        assert inspect.signature(getattr(cpu, name)) == inspect.signature(getattr(ref, name))
        assert inspect.signature(getattr(kernels, name)) == inspect.signature(getattr(ref, name))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["BT", "AT^T", "AT", "BT^T"])
@given(N=st.integers(1, 3), C=st.integers(1, 20), TH=st.integers(1, 3), TW=st.integers(1, 3),
       spare=st.integers(0, 2), seed=seeds)
def test_winograd_kernels_written_out_for_f4x4_3x3(dtype, which, N, C, TH, TW, spare, seed):
    # The four matrices of F(4x4, 3x3) take loops of their own in the CPU set (the rest: the general loops).
    BT, AT = np.array(ref.WINOGRAD_BT, dtype), np.array(ref.WINOGRAD_AT, dtype)
    L = {"BT": BT, "AT^T": AT.T.copy(), "AT": AT, "BT^T": BT.T.copy()}[which]
    rng = np.random.default_rng(seed)
    AO, AI = L.shape
    if which in ("BT", "AT^T"):
        x = rng.standard_normal((N, 4 * (TH - 1) + AI + spare, 4 * (TW - 1) + AI + spare, C)).astype(dtype)
        assert_matches_reference("winograd_tiles", x, L, 4, TH, TW)
    else:
        M = rng.standard_normal((AI * AI, N * TH * TW, C)).astype(dtype)
        Hp, Wp = 4 * (TH - 1) + AO + spare, 4 * (TW - 1) + AO + spare
        out = np.full((N, Hp, Wp, C), np.nan, dtype)     # whatever the buffer held is overwritten
        got = assert_matches_reference("winograd_untiles", M, L, 4, TH, TW, Hp, Wp, backward=True)[0]
        np.testing.assert_array_equal(cpu.winograd_untiles(M, L, 4, TH, TW, Hp, Wp, out=out), got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_col2im_gemm_one_window(dtype):
    # The whole image in one window (LeNet-5 C5): col2im_gemm's transpose fast path.
    gcol = np.random.default_rng(0).standard_normal((3, 5, 4, 2, 1, 1)).astype(dtype)
    assert_matches_reference("col2im_gemm", gcol, 5, 4, 1, 1, 0, 0, backward=True)

@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_cases(), seed=seeds, ties=st.booleans())
def test_max_pool(dtype, case, seed, ties):
    shape, win, ceil_mode = case
    rng = np.random.default_rng(seed)
    # With ties (small integers) the indices must agree too: both apply the first-max-wins rule.
    x = (rng.integers(0, 3, shape) if ties else tie_free(shape, rng)).astype(dtype)
    y, indices = assert_matches_reference("max_pool2d_forward", x, *win.pool, ceil_mode)
    gy = rng.standard_normal(y.shape).astype(dtype)
    assert_matches_reference("max_pool2d_backward", gy, indices, *shape[2:], backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_and_infinities(dtype):
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(dtype)
    x[0, 0, :3, :3] = -np.inf
    x[0, 1, 1, 1] = np.inf
    x[1, 0, 2, 2:4] = np.nan
    y, _ = assert_matches_reference("max_pool2d_forward", x, 3, 3, 2, 2, 1, 1, True)
    assert np.isnan(y[1, 0]).sum() == 2 and np.isneginf(y[0, 0, 0, 0]) and np.isposinf(y[0, 1, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, W, ceil_mode", [(8, 6, False), (7, 9, False), (7, 9, True),
                                             (6, 66, False), (5, 67, True)])     # OW >= 32: the row kernel
def test_max_pool_2x2_fast_path(dtype, H, W, ceil_mode):
    x = np.random.default_rng(H).integers(0, 3, (2, 3, H, W)).astype(dtype)     # many ties
    x[0, 0, 0, 1] = x[1, 2, 3, 3] = np.nan
    x[0, 1, :2, :2] = -np.inf
    x[1, 1, 2:4, 2:4] = [[-0.0, 0.0], [0.0, -0.0]]
    y, _ = assert_matches_reference("max_pool2d_forward", x, 2, 2, 2, 2, 0, 0, ceil_mode)
    assert np.isnan(y).sum() == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, W, ceil_mode", [(8, 6, False), (7, 9, False), (7, 9, True), (28, 28, False)])
def test_avg_pool_2x2_fast_path(dtype, H, W, ceil_mode):
    # 2x2/2 unpadded windows: the unrolled kernels (odd sizes leave a row or column out); with ceil_mode and
    # an odd size, a window overhangs and the general kernel runs.
    rng = np.random.default_rng(H + W)
    x = rng.standard_normal((2, 3, H, W)).astype(dtype)
    for count_include_pad in (True, False):
        y = assert_matches_reference("avg_pool2d_forward", x, 2, 2, 2, 2, 0, 0, ceil_mode, count_include_pad)[0]
        gy = rng.standard_normal(y.shape).astype(dtype)
        assert_matches_reference("avg_pool2d_backward", gy, H, W, 2, 2, 2, 2, 0, 0, ceil_mode, count_include_pad,
                                 backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=pool_cases(), count_include_pad=st.booleans(), seed=seeds)
def test_avg_pool(dtype, case, count_include_pad, seed):
    shape, win, ceil_mode = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    y = assert_matches_reference("avg_pool2d_forward", x, *win.pool, ceil_mode, count_include_pad)[0]
    gy = rng.standard_normal(y.shape).astype(dtype)
    assert_matches_reference("avg_pool2d_backward", gy, *shape[2:], *win.pool, ceil_mode, count_include_pad,
                             backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw_shapes(), offset=st.floats(-5, 5), seed=seeds)
def test_batch_norm(dtype, shape, offset, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(offset, 2.0, shape).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2.0, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    _, mean, invstd, _ = assert_matches_reference("batch_norm_forward_train", x, gamma, beta, 1e-5)
    running_mean, running_var = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)
    assert_matches_reference("batch_norm_forward_eval", x, gamma, beta, running_mean, running_var, 1e-5)
    gy = rng.standard_normal(shape).astype(dtype)
    assert_matches_reference("batch_norm_backward", gy, x, gamma, mean, invstd, backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=nchw_shapes(), size=st.integers(1, 6), alpha=st.sampled_from([1e-4, 0.1, 1.0]),
       k=st.sampled_from([1.0, 2.0]), seed=seeds)
def test_lrn(dtype, shape, size, alpha, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    y, scale = assert_matches_reference("lrn_forward", x, size, alpha, 0.75, k)
    gy = rng.standard_normal(shape).astype(dtype)
    assert_matches_reference("lrn_backward", gy, x, y, scale, size, alpha, 0.75, backward=True)


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


def test_every_kernel_has_the_same_signature_everywhere():
    for name in kernels.KERNELS:
        signature = inspect.signature(getattr(ref, name))
        assert inspect.signature(getattr(cpu, name)) == signature
        assert inspect.signature(getattr(kernels, name)) == signature
        assert getattr(kernels, name).__doc__ == getattr(ref, name).__doc__


def test_non_contiguous_inputs_give_the_contiguous_answer():
    for name, args in sample_calls(np.random.default_rng(0)):
        views = tuple(strided_copy(a) for a in args)
        assert any(isinstance(a, np.ndarray) and not a.flags.c_contiguous for a in views)
        for got, expected in zip(as_tuple(getattr(cpu, name)(*views)), as_tuple(getattr(cpu, name)(*args))):
            np.testing.assert_array_equal(got, expected, err_msg=name)


def test_outputs_follow_the_dtype_of_the_first_array():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for k in (ref, cpu):
        outputs = k.batch_norm_forward_train(x, np.ones(3), np.zeros(3), 1e-5)   # float64 gamma and beta
        assert [a.dtype for a in outputs] == [np.float32] * 3 + [np.float64]   # var: for the running statistics
        assert k.lrn_backward(x, x.astype(np.float64), x, np.abs(x) + 2, 3, 0.1, 0.75).dtype == np.float32


@pytest.mark.parametrize("row", range(len(argument_errors(cpu))))
def test_bad_arguments_fail_in_words(row):
    call, words = argument_errors(cpu)[row]
    with pytest.raises(ValueError) as error:
        call()
    assert words in str(error.value)


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
    fake_cupy.ndarray = type("ndarray", (), {})
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "minidl.kernels.gpu", None)    # as if kernels/gpu.py failed to import
    with pytest.raises(RuntimeError, match=r"max_pool2d_forward on a CuPy array needs the GPU kernels \(kernels/gpu"):
        kernels.max_pool2d_forward(fake_cupy.ndarray(), 2, 2, 2, 2, 0, 0)
