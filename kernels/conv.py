"""How a 2-D convolution is computed fast: which algorithm, its settings, and each algorithm on its own.

``minidl.functions.conv`` states the mathematics (im2col + one GEMM per group over the whole batch, the
column buffer kept for backward) and asks ``conv2d_forward`` / ``conv2d_backward`` here whether another
algorithm is faster for a given layer. Shape letters as in ``minidl.functions.conv`` (N, C, H, W, K, G,
KH, KW, SH, SW, PH, PW, DH, DW, OH, OW); arrays are NumPy or CuPy, the ops' weights W are (K, C/G, KH, KW).

Algorithms (``choose`` picks one; each runs alone, for tests and benchmarks):
    "winograd"   3x3, stride 1, padding 1, G = 1: Winograd's F(4x4, 3x3) (kernels/winograd.py), see WINOGRAD
    "depthwise"  G = C = K, stride 1, undilated: kernels.depthwise_conv2d (the GPU set has none)
    "direct"     G = 1, stride 1, undilated, few channels (C K <= DIRECT_MAX_CHANNEL_PAIRS, or in float32 C and
                 K <= DIRECT_MAX_CHANNELS_FLOAT32): kernels.direct_conv2d and its gradients, no im2col (the
                 GPU set has none); in float32 the CPU's are register-tiled (kernels/cpu/tiled.py), which also
                 take strided layers and first layers forward (DIRECT_STRIDED_MAX_CHANNELS), their filter
                 gradient where few channels come in, their input gradient by im2col (``direct_backward``)
    "chunks"     im2col + GEMM a chunk of images at a time (the columns of a whole batch are too large to
                 keep), or a 1x1 unpadded conv whose column matrix is x itself, channels first
                 (``gemm_forward``/``gemm_backward``); backward of a stride-1 "same"-padded conv
                 takes ``same_padding_backward``
    "dense"      the window covers the whole unpadded input (a 1 x 1 output, G = 1: LeNet-5's C5): x itself,
                 one row an image, is the column matrix, so the layer is a fully connected one, three GEMMs
                 and no im2col, col2im or transposes (``is_dense``)
    None         minidl.functions.conv's own im2col + GEMM: the whole batch's columns are small
"""
import os

import numpy

from minidl import kernels
from minidl.kernels import threads
from minidl.kernels import winograd

# Column-buffer elements per chunk of images (2 MB in float32): the chunk stays in cache between im2col and
# the GEMM, and a batch's full buffer (9x a 3x3 conv's input) would dominate memory.
COL_CHUNK_ELEMENTS = 2 ** 19
# A layer whose whole column buffer is at most this builds it once and keeps it for backward (the plain
# path of minidl.functions.conv); larger kept buffers measured no faster and cost memory.
COL_KEEP_ELEMENTS = 2 ** 19
# A layer cut into chunks whose columns together are at most this keeps each chunk's columns from forward
# for its backward (``gemm_forward``'s ``kept``), instead of building them again: LeNet-5's C3 at batch 64
# (960,000 elements, 3.8 MB) backward 4.2 -> 3.7 ms, where the one whole-batch buffer of the plain path made
# its forward slower (2.3 -> 2.5 ms). Only where backward reads the columns of x: not 1x1 (x is its own
# column matrix), not "same"-padded (same_padding_backward reads the columns of dY).
CHUNK_KEEP_ELEMENTS = 2 ** 20

# Which 3x3 convolutions (stride 1, padding 1, no dilation or groups) run by Winograd's F(4x4, 3x3):
#   "auto"    float32 with at least WINOGRAD_MIN_CHANNELS input and output channels, at least
#             WINOGRAD_MIN_TILES output tiles of 4x4 and at most WINOGRAD_MAX_FILTER_ELEMENTS transformed
#             filter elements (36 C K: up to 256 x 256 channels) (the default): where it measured faster;
#             fewer channels gained nothing (and keep im2col's smaller rounding error), few tiles lost,
#             and 512 x 512 filters raised ResNet-18's training memory past 1.5x PyTorch's
#   "off"     never (im2col + GEMM only: ~10x smaller rounding error in float32)
#   "always"  every such convolution, any dtype and size (the tests use it to check the path in float64)
# Read from the environment variable MINIDL_WINOGRAD at import; set this attribute to change it later.
# The measurements: benchmarks/README.md ("Winograd").
WINOGRAD = os.environ.get("MINIDL_WINOGRAD", "auto").strip().lower()
WINOGRAD_MODES = ("auto", "off", "always")
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_TILES = 128
WINOGRAD_MAX_FILTER_ELEMENTS = 2 ** 22

# Convolutions with stride 1, no dilation, one group and at most this many (input, output) channel pairs run
# by kernels.direct_conv2d: LeNet-5's C1 (1 x 6 channels, 5x5) is an im2col of 25x its input and a 6 x 25 by
# 25 x N*784 GEMM, which BLAS runs at ~8 GFLOP/s. Measured (batch 64 unless said, ms, direct vs im2col +
# GEMM): 1 -> 6 5x5 on 32x32: forward 0.70 vs 0.94, filter gradient 0.43 vs 2.05; 3 -> 6: forward 2.1-2.7
# vs 4.0-4.4; but 6 -> 16 (C3): forward 1.4 vs 1.0, filter gradient 1.4 vs 1.1-1.3, and 3 -> 16 3x3 at batch
# 128 (ResNet-20's first layer): forward 5.7-6.6 vs 4.8-5.5, so more pairs take im2col + GEMM.
# 0 turns the direct path off. benchmarks/README.md ("Few-channel convolutions by direct kernels").
DIRECT_MAX_CHANNEL_PAIRS = 18
# In float32 the CPU's direct kernels are register-tiled (kernels/cpu/tiled.py) and beat im2col + GEMM, and
# Winograd, on layers with at most this many input and output channels (LeNet-5's C3, ResNet-20's 16- and
# 32-channel stages, ResNet's 3-channel first layer): forward and backward, one thread, batch 64 / 128,
# alternating in one process, direct / the old path: ResNet-20's 16 -> 16 0.79x forward, 1.01x backward;
# 32 -> 32 (Winograd before) 0.71x and 1.00x; 3 -> 16 0.88x and 0.69x; LeNet-5's C3 0.49x and 1.43x (its
# backward had kept columns); but 64 -> 64 on 8 x 8 1.6x and 2.8x, so 64 channels keep Winograd. Training
# steps: ResNet-20 0.82x / 0.77x (one / two threads), LeNet-5 0.94x / 0.96x. 0 turns it off.
# benchmarks/README.md ("A register-tiled direct convolution in float32").
DIRECT_MAX_CHANNELS_FLOAT32 = 32
# The register-tiled forward also takes float32 layers (one group, undilated, not 1x1 unpadded) with a stride
# and at most DIRECT_STRIDED_MAX_CHANNELS input channels, and first layers of at most DIRECT_FEW_INPUT_CHANNELS
# input channels at any stride, whatever their output channels; their filter gradient is register-tiled
# too where they have at most DIRECT_GRAD_WEIGHT_MAX_CHANNELS input channels, and a strided layer's input
# gradient is im2col's (gemm_backward). Measured, alternating in one process, tiled / im2col + GEMM time at
# one and two threads, forward and filter gradient: ResNet-20's 16 -> 32 stride 2 (batch 128) 0.48-0.52x,
# 0.59-0.69x; 32 -> 64 stride 2 0.69-0.79x, but 1.37-1.59x; ResNet-18's 64 -> 128 stride 2 0.85-0.89x, 0.95-0.98x;
# but 128 -> 256 1.11x and 1.7-2.2x; ResNet-50's 7x7 stride-2 stem (batch 16) 0.56-0.60x, 0.58x; AlexNet's
# 11x11 stride 4 0.62-0.66x, 0.71-0.79x; ResNet-18 CIFAR's 3 -> 64 stem 0.57-0.59x, 0.50-0.51x; VGG's 3 -> 64
# at 224 0.60-0.65x, 0.99-1.1x. 0 turns each off. benchmarks/README.md ("Strided and first layers").
DIRECT_STRIDED_MAX_CHANNELS = 64
DIRECT_FEW_INPUT_CHANNELS = 4
DIRECT_GRAD_WEIGHT_MAX_CHANNELS = 16
# A stride-1 direct layer of at most this many multiply-adds a gradient starts its filter gradient's parts on
# the pool's threads while its input gradient runs here, and this thread then takes the parts left
# (threads.beside_map; float64: the whole filter gradient on a pool thread, threads.beside), instead of each
# split over both threads in turn: LeNet-5's C3 at batch 64 (15.4M each) 2.28 -> 2.05 ms in a step at two
# threads side by side (beside), 2.19 -> 1.78 ms with the parts shared (beside_map; a LeNet-5 step 9.26 ->
# 8.74 ms, alternating in one process). Larger layers keep the split: ResNet-20's 16-channel layers at batch
# 128 (302M) took 2% longer a step with beside, and the same with beside_map (529 vs 526 ms).
BESIDE_MAX_MACS = 2 ** 25


def grouped_matmul(a, b):
    """a (G, M, K) @ b (G, K, P) -> (G, M, P): a single 2-D GEMM when G == 1, which BLAS runs best; on
    minidl's threads (kernels.matmul)."""
    if a.shape[0] == 1:
        return kernels.matmul(a[0], b[0])[None]
    return kernels.matmul(a, b)


def is_pointwise(W, padding):
    """A 1x1 unpadded convolution: x itself, channels first, is its column matrix (no im2col)."""
    return W.shape[2:] == (1, 1) and tuple(padding) == (0, 0)


def is_dense(x, W, padding, dilation, groups):
    """One group, no padding, no dilation, and a window as large as the input (one output pixel, whatever the
    stride): y = x.reshape(N, C*KH*KW) @ W.reshape(K, C*KH*KW)^T, a fully connected layer."""
    return (groups == 1 and tuple(padding) == (0, 0) and tuple(dilation) == (1, 1)
            and tuple(x.shape[2:]) == tuple(W.shape[2:]) and x.dtype == W.dtype)


def is_depthwise(x, W, stride, padding, dilation, groups):
    """Groups = C = K, stride 1, undilated, padding smaller than the kernel, and a depthwise kernel for x
    (the CPU sets have one): C matmuls of 1 x KH*KW by KH*KW x N*OH*OW run BLAS at a fraction of its rate."""
    return (groups == x.shape[1] == W.shape[0] and W.shape[1] == 1 and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and padding[0] < W.shape[2] and padding[1] < W.shape[3]
            and kernels.has_kernel(x, "depthwise_conv2d"))


def is_winograd(x, W, stride, padding, dilation, groups):
    """Whether this convolution runs by Winograd's F(4x4, 3x3) (see WINOGRAD)."""
    if WINOGRAD not in WINOGRAD_MODES:
        raise ValueError(f"conv2d: minidl.kernels.conv.WINOGRAD (or MINIDL_WINOGRAD) must be one of "
                         f"{WINOGRAD_MODES}, got {WINOGRAD!r}")
    if WINOGRAD == "off" or W.shape[2:] != (3, 3) or groups != 1 or tuple(stride) != (1, 1) \
            or tuple(padding) != (1, 1) or tuple(dilation) != (1, 1) or x.dtype != W.dtype \
            or not kernels.has_kernel(x, "winograd_tiles"):
        return False
    if WINOGRAD == "always":
        return True
    N, C, H, W_in = x.shape
    TH, TW = winograd.tiles(H, W_in)
    return (x.dtype == kernels.array_module(x).float32 and min(C, W.shape[0]) >= WINOGRAD_MIN_CHANNELS
            and N * TH * TW >= WINOGRAD_MIN_TILES
            and winograd.ALPHA ** 2 * C * W.shape[0] <= WINOGRAD_MAX_FILTER_ELEMENTS)


def _direct_both_ways(x, W, stride):
    """Whether the direct kernels compute the whole layer, forward and both gradients: stride 1 and few
    channels, at most DIRECT_MAX_CHANNEL_PAIRS pairs or (float32) DIRECT_MAX_CHANNELS_FLOAT32 each way."""
    C, K = x.shape[1], W.shape[0]
    return tuple(stride) == (1, 1) and (C * K <= DIRECT_MAX_CHANNEL_PAIRS or (
        x.dtype == numpy.float32 and max(C, K) <= DIRECT_MAX_CHANNELS_FLOAT32))


def is_direct(x, W, stride, padding, dilation, groups):
    """Undilated, one group, x and W of one dtype, a direct kernel for x (the CPU sets have one), and either
    stride 1 with few channels (_direct_both_ways; not 1x1 unpadded unless at most DIRECT_MAX_CHANNEL_PAIRS
    pairs), or float32, not 1x1 unpadded, with at most DIRECT_FEW_INPUT_CHANNELS input channels, or a stride
    and at most DIRECT_STRIDED_MAX_CHANNELS."""
    if not (groups == 1 and tuple(dilation) == (1, 1) and x.dtype == W.dtype
            and kernels.has_kernel(x, "direct_conv2d")):
        return False
    C, K = x.shape[1], W.shape[0]
    if tuple(stride) == (1, 1) and C * K <= DIRECT_MAX_CHANNEL_PAIRS:
        return True
    if x.dtype != numpy.float32 or is_pointwise(W, padding):
        return False
    return (_direct_both_ways(x, W, stride) or C <= DIRECT_FEW_INPUT_CHANNELS
            or (tuple(stride) != (1, 1) and C <= DIRECT_STRIDED_MAX_CHANNELS))


def choose(x, W, stride, padding, dilation, groups):
    """The algorithm: "dense", "direct", "winograd", "depthwise", "chunks", or None (the plain path)."""
    if is_dense(x, W, padding, dilation, groups):
        return "dense"
    winograd_applies = is_winograd(x, W, stride, padding, dilation, groups)
    if winograd_applies and WINOGRAD == "always":
        return "winograd"
    if is_direct(x, W, stride, padding, dilation, groups):
        return "direct"
    if winograd_applies:
        return "winograd"
    if is_depthwise(x, W, stride, padding, dilation, groups):
        return "depthwise"
    N, C = x.shape[:2]
    KH, KW = W.shape[2:]
    OH = kernels.conv_output_size(x.shape[2], KH, stride[0], padding[0], dilation[0])
    OW = kernels.conv_output_size(x.shape[3], KW, stride[1], padding[1], dilation[1])
    if is_pointwise(W, padding) or N * C * KH * KW * OH * OW > COL_KEEP_ELEMENTS:
        return "chunks"
    return None


def conv2d_forward(x, W, stride, padding, dilation, groups, kept=None, b=None):
    """(y, the algorithm) if a faster algorithm than the plain path applies, else None; y has the bias b
    (K,) added if given (the direct kernels add it as they store y). ``kept``: a dict that a chunked layer
    small enough (CHUNK_KEEP_ELEMENTS) fills with its columns, for conv2d_backward."""
    algorithm = choose(x, W, stride, padding, dilation, groups)
    if algorithm is None:
        return None
    if algorithm == "direct":
        return kernels.direct_conv2d(x, W, *padding, *stride, b), algorithm
    if algorithm == "dense":
        N, K, CKK = x.shape[0], W.shape[0], W[0].size
        y = kernels.matmul(x.reshape(N, CKK), W.reshape(K, CKK).T).reshape(N, K, 1, 1)
    elif algorithm == "winograd":
        y = winograd.conv3x3_forward(x, W)
    elif algorithm == "depthwise":
        y = kernels.depthwise_conv2d(x, W, *padding)
    else:
        y = gemm_forward(x, W, stride, padding, dilation, groups, kept)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y, algorithm


def conv2d_backward(x, W, gy, algorithm, stride, padding, dilation, groups, need_gx=True, need_gb=True,
                    kept=None):
    """(gx or None, gW, gb or None) of conv2d_forward by the same algorithm (``kept``: what it kept)."""
    if algorithm == "chunks":
        return gemm_backward(x, W, gy, stride, padding, dilation, groups, need_gx, need_gb, kept)
    if algorithm == "dense":
        N, K, CKK = gy.shape[0], gy.shape[1], W[0].size
        gy2 = gy.reshape(N, K)
        gx = kernels.matmul(gy2, W.reshape(K, CKK)).reshape(x.shape) if need_gx else None
        gW = kernels.matmul(gy2.T, x.reshape(N, CKK)).reshape(W.shape)
        return gx, gW, gy2.sum(axis=0) if need_gb else None
    if algorithm == "winograd":
        gx, gW = winograd.conv3x3_backward(x, W, gy, need_gx)
    elif algorithm == "depthwise":
        gx, gW = depthwise_backward(x, W, gy, padding, need_gx)
    elif algorithm == "direct":
        gx, gW = direct_backward(x, W, gy, stride, padding, need_gx)
    else:
        raise ValueError(f"conv2d_backward: algorithm must be 'dense', 'winograd', 'depthwise', 'direct' or "
                         f"'chunks', got {algorithm!r}")
    return gx, gW, channel_sums(gy) if need_gb else None


def channel_sums(gy):
    """gy.sum(axis=(0, 2, 3)), a bias's gradient: for a contiguous NumPy array, each (image, channel) plane's
    sum by one matrix-vector product with ones, then the images' (3x faster than NumPy's reduction over the
    outer and inner axes: 25 against 78 us for LeNet-5's C1, 20 against 56 for its C3)."""
    if not (isinstance(gy, numpy.ndarray) and gy.ndim == 4 and gy.flags.c_contiguous
            and gy.dtype in (numpy.float32, numpy.float64)):
        return gy.sum(axis=(0, 2, 3))
    N, K, H, W = gy.shape
    planes = gy.reshape(N * K, H * W) @ numpy.ones(H * W, dtype=gy.dtype)
    return planes.reshape(N, K).sum(axis=0)


def direct_backward(x, W, gy, stride, padding, need_gx=True):
    """(gx or None, gW) of kernels.direct_conv2d. Stride 1 (_direct_both_ways, or a first layer of at most
    DIRECT_GRAD_WEIGHT_MAX_CHANNELS input channels): both by the direct kernels, side by side on two threads
    in small layers (BESIDE_MAX_MACS). With a stride: gW by them
    with at most DIRECT_GRAD_WEIGHT_MAX_CHANNELS input channels, gx by im2col's gemm_backward (with more
    input channels both by gemm_backward; see DIRECT_STRIDED_MAX_CHANNELS)."""
    KH, KW = W.shape[2:]
    few = x.shape[1] <= DIRECT_GRAD_WEIGHT_MAX_CHANNELS
    if tuple(stride) == (1, 1) and (few or _direct_both_ways(x, W, stride)):
        grad_weight = lambda: kernels.direct_conv2d_grad_weight(x, gy, KH, KW, *padding)  # noqa: E731
        if not need_gx:
            return None, grad_weight()
        grad_input = lambda: kernels.direct_conv2d_grad_input(gy, W, *x.shape[2:], *padding)  # noqa: E731
        if isinstance(x, numpy.ndarray) and gy.size * W[0].size <= BESIDE_MAX_MACS:
            if x.dtype == numpy.float32 and kernels.has_kernel(x, "direct_conv2d_grad_weight_parts"):
                part, groups, partial_elements, finish = kernels.direct_conv2d_grad_weight_parts(x, gy, KH, KW,
                                                                                                 *padding)
                gx, sums = threads.beside_map(grad_input, part, groups, partial_elements)
                return gx, finish(threads.sum_parts(sums))
            return threads.beside(grad_input, grad_weight)
        return grad_input(), grad_weight()
    if not few:
        gx, gW, _ = gemm_backward(x, W, gy, stride, padding, (1, 1), 1, need_gx, need_gb=False)
        return gx, gW
    gW = kernels.direct_conv2d_grad_weight(x, gy, KH, KW, *padding, *stride)
    gx = gemm_backward(x, W, gy, stride, padding, (1, 1), 1, need_gb=False, need_gw=False)[0] if need_gx else None
    return gx, gW


def depthwise_backward(x, W, gy, padding, need_gx=True):
    """(gx or None, gW) of kernels.depthwise_conv2d: dX is dY, padded by K-1-P, convolved with the flipped filters."""
    (PH, PW), (KH, KW) = padding, W.shape[2:]
    gx = kernels.depthwise_conv2d(gy, W[:, :, ::-1, ::-1], KH - 1 - PH, KW - 1 - PW) if need_gx else None
    return gx, kernels.depthwise_conv2d_grad_weight(x, gy, KH, KW, PH, PW)


def _chunks(N, per_image, W):
    # A chunk's columns hold at least twice the weights' elements: with many large filters (512-channel 3x3
    # layers on 4x4 maps) 2 MB of columns is a handful of images, and every chunk's GEMMs read the weights
    # (and add into dW) again.
    # On NumPy arrays, a multiple of minidl's thread count of equal chunks: each thread runs its chunks'
    # whole pipeline (threads.map_chunks).
    limit = max(COL_CHUNK_ELEMENTS, 2 * W.size)
    return threads.batch_chunks(N, limit // max(per_image, 1), parallel=isinstance(W, numpy.ndarray))


def columns(x, W, stride, padding, dilation, groups, OH, OW):
    """The column matrix of images x: (G, C/G*KH*KW, n*OH*OW)."""
    xp = kernels.array_module(x)
    n, C = x.shape[:2]
    G, (KH, KW) = groups, W.shape[2:]
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    if is_pointwise(W, padding):
        xs = x if (SH, SW) == (1, 1) else x[:, :, ::SH, ::SW][:, :, :OH, :OW]
        return xp.ascontiguousarray(xs.transpose(1, 0, 2, 3)).reshape(G, C // G, n * OH * OW)
    col = kernels.im2col_gemm(x, KH, KW, SH, SW, PH, PW, DH, DW)
    return col.reshape(G, C // G * KH * KW, n * OH * OW)


def keeps_columns(x, W, stride, padding, dilation, groups, OH, OW):
    """Whether gemm_forward keeps its chunks' columns for gemm_backward (see CHUNK_KEEP_ELEMENTS)."""
    N, C = x.shape[:2]
    KH, KW = W.shape[2:]
    return (N * C * KH * KW * OH * OW <= CHUNK_KEEP_ELEMENTS and not is_pointwise(W, padding)
            and not is_same_padding(W, stride, padding, dilation, groups))


def gemm_forward(x, W, stride, padding, dilation, groups, kept=None):
    """conv2d (no bias) by im2col + one GEMM per group, a chunk of images at a time. Keeps no columns, unless
    ``kept`` is a dict and the layer small enough (keeps_columns): then kept[(n0, n1)] is chunk n0:n1's.

    One large GEMM per group runs near the BLAS peak (N per-image GEMMs ran 10-70x slower on CIFAR shapes);
    the price is a transpose of y from (K, n, OH, OW) to NCHW, memory-bound."""
    xp = kernels.array_module(x)
    N, C, H, W_in = x.shape
    K, Cg, KH, KW = W.shape
    G = groups
    OH = kernels.conv_output_size(H, KH, stride[0], padding[0], dilation[0])
    OW = kernels.conv_output_size(W_in, KW, stride[1], padding[1], dilation[1])
    Wm = W.reshape(G, K // G, Cg * KH * KW)
    y = xp.empty((N, K, OH, OW), dtype=xp.result_type(x.dtype, W.dtype))
    keep = kept is not None and keeps_columns(x, W, stride, padding, dilation, groups, OH, OW)

    def forward(chunks):
        for n0, n1 in chunks:
            col = columns(x[n0:n1], W, stride, padding, dilation, groups, OH, OW)
            y_t = grouped_matmul(Wm, col)
            y[n0:n1] = y_t.reshape(K, n1 - n0, OH, OW).transpose(1, 0, 2, 3)
            if keep:
                kept[(n0, n1)] = col

    threads.map_chunks(x, _chunks(N, C * KH * KW * OH * OW, W), forward)
    return y


def is_same_padding(W, stride, padding, dilation, groups):
    """Stride 1, undilated, G = 1, not 1x1, and "same" padding (2P = K - 1): see same_padding_backward."""
    KH, KW = W.shape[2:]
    return (groups == 1 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and (2 * padding[0], 2 * padding[1]) == (KH - 1, KW - 1) and not is_pointwise(W, padding))


def gemm_backward(x, W, gy, stride, padding, dilation, groups, need_gx=True, need_gb=True, kept=None,
                  need_gw=True):
    """(gx or None, gW or None, gb or None) of gemm_forward, a chunk of images at a time, the columns taken
    from ``kept`` (gemm_forward's) where they are there, else built again (not at all without ``need_gw``).

    A first conv (no dX wanted) needs only dW = gy_t @ col^T; otherwise dX = col2im(W^T @ gy_t), or
    same_padding_backward where it applies."""
    if need_gx and need_gw and is_same_padding(W, stride, padding, dilation, groups):
        return same_padding_backward(x, W, gy, padding, need_gb)
    xp = kernels.array_module(x)
    N, C, H, W_in = x.shape
    K, Cg, KH, KW = W.shape
    G = groups
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    OH, OW = gy.shape[2:]
    Wm_t = W.reshape(G, K // G, Cg * KH * KW).swapaxes(-1, -2)
    pointwise = is_pointwise(W, padding)
    gx = (xp.zeros if pointwise and (SH, SW) != (1, 1) else xp.empty)(x.shape, dtype=gy.dtype) if need_gx else None
    def backward(chunks):   # -> this part's sums of gW and gb
        gW = xp.zeros((G, K // G, Cg * KH * KW), dtype=gy.dtype) if need_gw else None
        gb = xp.zeros(K, dtype=gy.dtype) if need_gb else None
        for n0, n1 in chunks:
            n = n1 - n0
            gy_t = xp.ascontiguousarray(gy[n0:n1].transpose(1, 0, 2, 3)).reshape(G, K // G, n * OH * OW)
            if need_gb:
                gb += gy_t.reshape(K, n * OH * OW).sum(axis=-1)
            col = kept.pop((n0, n1), None) if kept else None
            if need_gw:
                if col is None:
                    col = columns(x[n0:n1], W, stride, padding, dilation, groups, OH, OW)
                gW += grouped_matmul(col, gy_t.swapaxes(-1, -2)).swapaxes(-1, -2)
            del col                             # freed before gcol, as large, is made
            if not need_gx:
                continue
            gcol = grouped_matmul(Wm_t, gy_t)   # (G, C/G*KH*KW, n*OH*OW)
            if pointwise:
                gx[n0:n1, :, ::SH, ::SW][:, :, :OH, :OW] = gcol.reshape(C, n, OH, OW).transpose(1, 0, 2, 3)
            else:
                gx[n0:n1] = kernels.col2im_gemm(gcol.reshape(C, KH, KW, n, OH, OW), H, W_in, SH, SW, PH, PW, DH, DW)
        return gW, gb

    parts = threads.map_chunks(x, _chunks(N, C * KH * KW * OH * OW, W), backward, partial_elements=W.size)
    gW, gb = threads.sum_parts(parts)
    return gx, gW.reshape(W.shape) if need_gw else None, gb


def same_padding_backward(x, W, gy, padding, need_gb=True):
    """(gx, gW, gb or None) of a stride-1, undilated, ungrouped conv with "same" padding (2P = K - 1).

    dX is a convolution of dY (padded by K-1-P = P) with the flipped, transposed filters: im2col of dY and a
    GEMM that writes C x n*H*W, instead of a GEMM that writes the KH*KW times larger gradient of the columns
    and a col2im to sum it. The same columns of dY give dW too, flipped: the sum over n, h, w of
    x[c, h, w] dY[k, h+i'-P, w+j'-P] is dW[k, c, KH-1-i', KW-1-j'], so x needs only a transpose to C x n*H*W.
    Unpadded, dY would need K-1 of padding (slower than im2col of x): hence "same" only."""
    xp = kernels.array_module(x)
    N, C, H, W_in = x.shape
    K, _, KH, KW = W.shape
    PH, PW = padding
    W_flipped = xp.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(C, K * KH * KW)
    gx = xp.empty(x.shape, dtype=gy.dtype)

    def backward(chunks):   # -> this part's sums of the flipped gW and of gb
        gW_flipped = xp.zeros((K * KH * KW, C), dtype=gy.dtype)
        gb = xp.zeros(K, dtype=gy.dtype) if need_gb else None
        for n0, n1 in chunks:
            n = n1 - n0
            if need_gb:
                gb += channel_sums(gy[n0:n1])
            col_gy = kernels.im2col_gemm(gy[n0:n1], KH, KW, 1, 1, PH, PW).reshape(K * KH * KW, n * H * W_in)
            x_t = xp.ascontiguousarray(x[n0:n1].transpose(1, 0, 2, 3)).reshape(C, n * H * W_in)
            gW_flipped += kernels.matmul(col_gy, x_t.T)   # (K*KH*KW, C); not x_t @ col_gy.T: BLAS runs it faster
            gx_t = kernels.matmul(W_flipped, col_gy)                                # (C, n*H*W)
            gx[n0:n1] = gx_t.reshape(C, n, H, W_in).transpose(1, 0, 2, 3)
        return gW_flipped, gb

    parts = threads.map_chunks(x, _chunks(N, max(C, K) * KH * KW * H * W_in, W), backward, partial_elements=W.size)
    gW_flipped, gb = threads.sum_parts(parts)
    gW = xp.ascontiguousarray(gW_flipped.reshape(K, KH, KW, C)[:, ::-1, ::-1, :].transpose(0, 3, 1, 2))
    return gx, gW, gb
