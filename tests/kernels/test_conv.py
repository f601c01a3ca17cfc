"""kernels/conv.py: which algorithm each convolution takes, and each algorithm alone against a float64
convolution built from the reference kernels (im2col, col2im) by its definition."""
import numpy as np
import pytest

from minidl.kernels import conv
from minidl.kernels import reference as ref


def reference_conv(x, W, gy, stride, padding, dilation, groups):
    """(y, gx, gW, gb) of a grouped convolution from reference.im2col/col2im and einsum, in float64."""
    N, C, H, Wd = x.shape
    K, Cg, KH, KW = W.shape
    G = groups
    col = ref.im2col(x, KH, KW, *stride, *padding, *dilation)                       # N C KH KW OH OW
    OH, OW = col.shape[-2:]
    col = col.reshape(N, G, Cg, KH, KW, OH, OW)
    Wg = W.reshape(G, K // G, Cg, KH, KW)
    y = np.einsum("gkcij,ngcijhw->ngkhw", Wg, col).reshape(N, K, OH, OW)
    gyg = gy.reshape(N, G, K // G, OH, OW)
    gW = np.einsum("ngkhw,ngcijhw->gkcij", gyg, col).reshape(W.shape)
    gcol = np.einsum("gkcij,ngkhw->ngcijhw", Wg, gyg).reshape(N, C, KH, KW, OH, OW)
    gx = ref.col2im(gcol, H, Wd, *stride, *padding, *dilation)
    return y, gx, gW, gy.sum(axis=(0, 2, 3))


def layer(rng, x_shape, W_shape, dtype=np.float64):
    x, W = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(W_shape).astype(dtype)
    return x, W


@pytest.mark.parametrize("x_shape, W_shape, stride, padding, dilation, groups", [
    ((5, 4, 9, 8), (6, 4, 3, 3), (1, 1), (1, 1), (1, 1), 1),      # "same": same_padding_backward
    ((5, 4, 9, 8), (6, 4, 3, 3), (2, 1), (1, 0), (1, 2), 1),      # strided, dilated, uneven padding
    ((5, 4, 9, 8), (6, 2, 3, 3), (1, 1), (2, 2), (2, 2), 2),      # grouped
    ((5, 4, 9, 8), (6, 4, 1, 1), (1, 1), (0, 0), (1, 1), 1),      # 1x1: x itself is the column matrix
    ((5, 4, 9, 8), (6, 2, 1, 1), (2, 3), (0, 0), (1, 1), 2),      # 1x1, strided and grouped
    ((5, 4, 9, 8), (4, 4, 5, 3), (1, 1), (2, 1), (1, 1), 1),      # "same" with an uneven kernel
])
@pytest.mark.parametrize("chunk", [1, 2 ** 19], ids=["one-image-chunks", "one-chunk"])
def test_gemm_chunks_match_the_definition(monkeypatch, x_shape, W_shape, stride, padding, dilation, groups, chunk):
    monkeypatch.setattr(conv, "COL_CHUNK_ELEMENTS", chunk)
    x, W = layer(np.random.default_rng(0), x_shape, W_shape)
    args = (stride, padding, dilation, groups)
    y = conv.gemm_forward(x, W, *args)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    y_ref, gx_ref, gW_ref, gb_ref = reference_conv(x, W, gy, *args)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    gx, gW, gb = conv.gemm_backward(x, W, gy, *args)
    for got, want in ((gx, gx_ref), (gW, gW_ref), (gb, gb_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    gx, gW, gb = conv.gemm_backward(x, W, gy, *args, need_gx=False, need_gb=False)   # a first layer
    assert gx is None and gb is None
    np.testing.assert_allclose(gW, gW_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, W_shape, stride, padding, dilation, groups, keeps", [
    ((5, 4, 9, 8), (6, 4, 3, 3), (2, 1), (1, 0), (1, 2), 1, True),      # strided, dilated
    ((5, 4, 9, 8), (6, 2, 3, 3), (1, 1), (2, 2), (2, 2), 2, True),      # grouped
    ((5, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0), (1, 1), 1, True),   # LeNet-5's C3, five images
    ((5, 4, 9, 8), (6, 4, 3, 3), (1, 1), (1, 1), (1, 1), 1, False),     # "same": backward reads dY's columns
    ((5, 4, 9, 8), (6, 4, 1, 1), (1, 1), (0, 0), (1, 1), 1, False),     # 1x1: x is its own column matrix
])
@pytest.mark.parametrize("chunk", [1, 2 ** 19], ids=["one-image-chunks", "one-chunk"])
def test_gemm_backward_with_the_kept_columns_is_the_same(monkeypatch, x_shape, W_shape, stride, padding, dilation,
                                                        groups, keeps, chunk):
    """A chunked layer under CHUNK_KEEP_ELEMENTS keeps each chunk's columns from forward (one per chunk,
    taken out again by backward) and its gradients are bit for bit those computed with the columns built
    again; a layer over the limit, a "same"-padded or a 1x1 one keeps none."""
    monkeypatch.setattr(conv, "COL_CHUNK_ELEMENTS", chunk)
    x, W = layer(np.random.default_rng(0), x_shape, W_shape, np.float32)
    args = (stride, padding, dilation, groups)
    kept = {}
    y = conv.gemm_forward(x, W, *args, kept=kept)
    np.testing.assert_array_equal(y, conv.gemm_forward(x, W, *args))
    chunks = conv._chunks(x.shape[0], np.prod(W_shape[1:]) * groups * np.prod(y.shape[2:]), W)
    assert sorted(kept) == (sorted(chunks) if keeps else [])
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    with_kept = conv.gemm_backward(x, W, gy, *args, kept=kept)
    assert kept == {}
    for got, want in zip(with_kept, conv.gemm_backward(x, W, gy, *args)):
        np.testing.assert_array_equal(got, want)
    columns = x.shape[0] * x.shape[1] * np.prod(W_shape[2:]) * np.prod(y.shape[2:])     # N C KH KW OH OW
    monkeypatch.setattr(conv, "CHUNK_KEEP_ELEMENTS", columns - 1)
    kept = {}
    conv.gemm_forward(x, W, *args, kept=kept)
    assert kept == {}


@pytest.mark.parametrize("kernel", [(3, 3), (5, 5), (3, 5), (1, 3)])
def test_same_padding_backward_matches_the_definition(monkeypatch, kernel):
    monkeypatch.setattr(conv, "COL_CHUNK_ELEMENTS", 1)     # one image per chunk: the chunk loop runs
    KH, KW = kernel
    padding = ((KH - 1) // 2, (KW - 1) // 2)
    x, W = layer(np.random.default_rng(2), (3, 4, 7, 6), (5, 4, KH, KW))
    assert conv.is_same_padding(W, (1, 1), padding, (1, 1), 1)
    gy = np.random.default_rng(3).standard_normal((3, 5, 7, 6))
    _, gx_ref, gW_ref, gb_ref = reference_conv(x, W, gy, (1, 1), padding, (1, 1), 1)
    gx, gW, gb = conv.same_padding_backward(x, W, gy, padding)
    for got, want in ((gx, gx_ref), (gW, gW_ref), (gb, gb_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def assert_stride1_algorithm_matches_the_definition(expected, x, W, padding, groups):
    """conv2d_forward takes ``expected``; it and conv2d_backward (with and without dX and db) match the
    definition in float64."""
    y, algorithm = conv.conv2d_forward(x, W, (1, 1), padding, (1, 1), groups)
    assert algorithm == expected
    gy = np.random.default_rng(5).standard_normal(y.shape)
    y_ref, gx_ref, gW_ref, gb_ref = reference_conv(x, W, gy, (1, 1), padding, (1, 1), groups)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    gx, gW, gb = conv.conv2d_backward(x, W, gy, algorithm, (1, 1), padding, (1, 1), groups)
    for got, want in ((gx, gx_ref), (gW, gW_ref), (gb, gb_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    gx, gW, gb = conv.conv2d_backward(x, W, gy, algorithm, (1, 1), padding, (1, 1), groups, need_gx=False,
                                      need_gb=False)                       # a first layer
    assert gx is None and gb is None
    np.testing.assert_allclose(gW, gW_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, padding", [((3, 3), (1, 1)), ((5, 3), (2, 0)), ((3, 5), (0, 4))])
def test_depthwise_matches_the_definition(kernel, padding):
    x, W = layer(np.random.default_rng(4), (2, 3, 7, 6), (3, 1) + kernel)
    assert_stride1_algorithm_matches_the_definition("depthwise", x, W, padding, 3)


@pytest.mark.parametrize("x_shape, W_shape, padding", [
    ((3, 1, 12, 11), (6, 1, 5, 5), (0, 0)),          # LeNet-5's C1, smaller
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1)),
    ((2, 2, 5, 6), (3, 2, 3, 5), (2, 0)),            # uneven kernel and padding
    ((1, 2, 2, 3), (2, 2, 4, 3), (1, 0)),            # kernel as tall as the padded input: one output row
    ((2, 1, 4, 4), (3, 1, 1, 1), (0, 0)),            # 1x1
])
def test_direct_matches_the_definition(x_shape, W_shape, padding):
    x, W = layer(np.random.default_rng(7), x_shape, W_shape)
    assert_stride1_algorithm_matches_the_definition("direct", x, W, padding, 1)


@pytest.mark.parametrize("x_shape, W_shape", [
    ((3, 16, 5, 5), (7, 16, 5, 5)),                  # LeNet-5's C5, smaller
    ((2, 3, 1, 1), (4, 3, 1, 1)),                    # 1x1 on 1x1 maps
    ((2, 2, 3, 4), (5, 2, 3, 4)),                    # an uneven window
])
def test_dense_matches_the_definition(x_shape, W_shape):
    x, W = layer(np.random.default_rng(8), x_shape, W_shape)
    assert_stride1_algorithm_matches_the_definition("dense", x, W, (0, 0), 1)


def test_dense_with_a_stride_and_in_float32():
    """The stride does not matter with one output pixel; float32 matches the float64 definition."""
    x, W = layer(np.random.default_rng(9), (4, 6, 5, 5), (3, 6, 5, 5))
    gy = np.random.default_rng(10).standard_normal((4, 3, 1, 1))
    y_ref, gx_ref, gW_ref, gb_ref = reference_conv(x, W, gy, (1, 1), (0, 0), (1, 1), 1)
    x32, W32, gy32 = x.astype(np.float32), W.astype(np.float32), gy.astype(np.float32)
    y, algorithm = conv.conv2d_forward(x32, W32, (3, 2), (0, 0), (1, 1), 1)
    assert algorithm == "dense" and y.shape == (4, 3, 1, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    gx, gW, gb = conv.conv2d_backward(x32, W32, gy32, algorithm, (3, 2), (0, 0), (1, 1), 1)
    for got, want in ((gx, gx_ref), (gW, gW_ref), (gb, gb_ref)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_dense_on_an_empty_batch():
    x, W = np.zeros((0, 4, 3, 3), np.float32), np.ones((5, 4, 3, 3), np.float32)
    y, algorithm = conv.conv2d_forward(x, W, (1, 1), (0, 0), (1, 1), 1)
    assert algorithm == "dense" and y.shape == (0, 5, 1, 1)
    gx, gW, gb = conv.conv2d_backward(x, W, y, algorithm, (1, 1), (0, 0), (1, 1), 1)
    assert gx.shape == x.shape and not gW.any() and gW.shape == W.shape and gb.tolist() == [0.0] * 5


@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (1, 1, 1, 1), (0, 3, 4, 4), (2, 3, 0, 4), (64, 16, 10, 10)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_sums_are_the_sums_over_images_and_pixels(shape, dtype):
    gy = np.random.default_rng(11).standard_normal(shape).astype(dtype)
    got = conv.channel_sums(gy)
    assert got.dtype == dtype and got.shape == (shape[1],)
    np.testing.assert_allclose(got, gy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5 if dtype == np.float32
                               else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)
    strided = np.random.default_rng(12).standard_normal((3, 4, 6, 6)).astype(dtype)[:, :, ::2]  # not contiguous
    np.testing.assert_allclose(conv.channel_sums(strided), strided.sum(axis=(0, 2, 3)), rtol=1e-6)


def test_direct_on_an_empty_batch():
    x, W = np.zeros((0, 1, 8, 8)), np.ones((6, 1, 5, 5))
    y, algorithm = conv.conv2d_forward(x, W, (1, 1), (0, 0), (1, 1), 1)
    assert algorithm == "direct" and y.shape == (0, 6, 4, 4)
    gx, gW, gb = conv.conv2d_backward(x, W, y, algorithm, (1, 1), (0, 0), (1, 1), 1)
    assert gx.shape == x.shape and gW.tolist() == np.zeros(W.shape).tolist() and gb.tolist() == [0.0] * 6


@pytest.mark.parametrize("x_shape, W_shape, stride, padding, groups, expected, dtype", [
    ((2, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1), 1, "direct", "float64"),   # 12 channel pairs
    ((64, 1, 32, 32), (6, 1, 5, 5), (1, 1), (0, 0), 1, "direct", "float64"),  # LeNet-5's C1
    ((2, 3, 8, 8), (4, 3, 3, 3), (2, 2), (1, 1), 1, None, "float64"),       # strided: functions/conv.py's own path
    ((2, 3, 8, 8), (4, 3, 3, 3), (2, 2), (1, 1), 1, "direct", "float32"),   # float32: the tiled kernel, any stride
    ((128, 16, 32, 32), (32, 16, 3, 3), (2, 2), (1, 1), 1, "direct", "float32"),  # ResNet-20's strided layers
    ((128, 32, 16, 16), (64, 32, 3, 3), (2, 2), (1, 1), 1, "direct", "float32"),
    ((128, 64, 32, 32), (128, 64, 3, 3), (2, 2), (1, 1), 1, "direct", "float32"),  # ResNet-18's first strided
    ((128, 128, 16, 16), (256, 128, 3, 3), (2, 2), (1, 1), 1, "chunks", "float32"),  # over 64 channels in
    ((128, 64, 32, 32), (128, 64, 1, 1), (2, 2), (0, 0), 1, "chunks", "float32"),  # 1x1 projection: a GEMM
    ((16, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3), 1, "direct", "float32"),   # ResNet-50's stem
    ((128, 3, 32, 32), (64, 3, 3, 3), (1, 1), (1, 1), 1, "direct", "float32"),    # 3 channels in: any out
    ((128, 5, 32, 32), (64, 5, 3, 3), (1, 1), (1, 1), 1, "chunks", "float32"),    # 5 in, 64 out, stride 1
    ((2, 4, 8, 8), (5, 4, 3, 3), (1, 1), (1, 1), 1, None, "float64"),       # 20 channel pairs: small, own path
    ((2, 4, 8, 8), (5, 4, 3, 3), (1, 1), (1, 1), 1, "direct", "float32"),   # float32: up to 32 channels each
    ((128, 3, 32, 32), (16, 3, 3, 3), (1, 1), (1, 1), 1, "chunks", "float64"),  # ResNet-20's first layer: 48 pairs
    ((128, 3, 32, 32), (16, 3, 3, 3), (1, 1), (1, 1), 1, "direct", "float32"),
    ((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0), 1, "chunks", "float64"),   # LeNet C3 at batch 64: 1.9M columns
    ((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0), 1, "direct", "float32"),
    ((64, 16, 5, 5), (120, 16, 5, 5), (1, 1), (0, 0), 1, "dense", "float32"),  # LeNet C5: a window of the whole input
    ((64, 16, 5, 5), (120, 16, 5, 5), (2, 2), (0, 0), 1, "dense", "float64"),  # any stride, any dtype
    ((64, 16, 5, 5), (120, 16, 5, 5), (1, 1), (1, 1), 1, None, "float32"),     # padded: 3x3 outputs
    ((64, 16, 5, 5), (120, 8, 5, 5), (1, 1), (0, 0), 2, None, "float32"),      # grouped: not dense
    ((4, 8, 1, 1), (5, 8, 1, 1), (1, 1), (0, 0), 1, "dense", "float32"),       # 1x1 on 1x1 maps
    ((2, 8, 6, 6), (5, 8, 1, 1), (1, 1), (0, 0), 1, "chunks", "float32"),   # 1x1: no im2col, any size
    ((8, 32, 20, 20), (32, 1, 3, 3), (1, 1), (1, 1), 32, "depthwise", "float32"),
    ((32, 32, 20, 20), (32, 1, 3, 3), (2, 2), (1, 1), 32, "chunks", "float32"),  # strided depthwise: grouped GEMM
    ((8, 32, 16, 16), (32, 32, 3, 3), (1, 1), (1, 1), 1, "direct", "float32"),   # 32 channels: direct before Winograd
    ((8, 33, 16, 16), (33, 33, 3, 3), (1, 1), (1, 1), 1, "winograd", "float32"),  # float32, 33 channels, 128 tiles
    ((8, 64, 8, 8), (64, 64, 3, 3), (1, 1), (1, 1), 1, None, "float32"),    # 64 channels, 32 tiles: too few
])
def test_which_algorithm(monkeypatch, x_shape, W_shape, stride, padding, groups, expected, dtype):
    monkeypatch.setattr(conv, "WINOGRAD", "auto")
    x = np.broadcast_to(np.zeros((), dtype), x_shape)
    W = np.broadcast_to(np.zeros((), dtype), W_shape)
    assert conv.choose(x, W, stride, padding, (1, 1), groups) == expected
    if expected is None:
        assert conv.conv2d_forward(x, W, stride, padding, (1, 1), groups) is None


def test_an_unknown_algorithm_is_named():
    x, W = layer(np.random.default_rng(6), (1, 2, 4, 4), (2, 2, 3, 3))
    with pytest.raises(ValueError, match="conv2d_backward: algorithm must be 'dense', 'winograd', 'depthwise', "
                                         "'direct' or 'chunks', got 'fft'"):
        conv.conv2d_backward(x, W, x, "fft", (1, 1), (1, 1), (1, 1), 1)
