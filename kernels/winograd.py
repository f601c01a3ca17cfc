"""Winograd's minimal filtering F(4x4, 3x3): 3x3 convolutions, stride 1, padding 1, with 4x fewer multiplies.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). A 4x4 tile of the output
of a 3x3 filter g over a 6x6 tile d of the input is

    Y = A^T [ (G g G^T) * (B^T d B) ] A            (* element by element, 6x6)

with the constant matrices BT (6x6), G (6x3) and AT (4x6) below: 36 multiplies where direct convolution
needs 16 * 9 = 144. Summed over input channels, the 36 elementwise products become 36 GEMMs:

    U[xi] = (G W G^T)[xi]   (C x K)        the filters, transformed once per call
    V[xi] = (B^T d B)[xi]   (tiles x C)    every 6x6 input tile, at stride 4 (tiles overlap by 2)
    M[xi] = V[xi] @ U[xi]   (tiles x K)    for xi = 0..35: the only O(N*C*K*H*W) work, 2.25 multiplies per output
    y     = A^T M[tile] A                  4x4 output tiles, side by side

The identity is exact, so backward is its adjoint, with exact gradients (rounding aside):

    dM = A dY A^T (dY's 4x4 tiles)    dU[xi] = dM[xi]^T @ V[xi]    dW = G^T dU G
    dV[xi] = dM[xi] @ U[xi]^T         dX = B dV B^T, the 6x6 tiles added where they overlap

The tile transforms are kernels (minidl.kernels.winograd_tiles / winograd_untiles) on a channels-last
layout, so each is a sum of contiguous rows of C or K values. Rounding: the transforms multiply and divide
by up to 8 and 24, so float32 results carry ~1e-5 relative error against ~1e-6 for im2col + GEMM
(Lavin & Gray measured the same); float64 is exact to ~1e-14. Which convolutions take this path:
minidl.kernels.conv (WINOGRAD). Measured speed-ups against im2col + GEMM: benchmarks/README.md.

    >>> import numpy as np
    >>> y = conv3x3_forward(np.ones((2, 32, 8, 8), np.float32), np.ones((16, 32, 3, 3), np.float32))
    >>> y.shape                                                      # = conv2d(x, W, padding=1)
    (2, 16, 8, 8)
"""
import numpy

from minidl import kernels
from minidl.kernels import threads
from minidl.kernels import reference

M_OUT, R = 4, 3                 # F(4x4, 3x3): 4x4 output tiles of a 3x3 filter
ALPHA = M_OUT + R - 1           # 6x6 input tiles, at stride M_OUT

# The interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray, section 4.2). They live with the
# kernels, whose CPU set has loops written out for exactly these matrices.
BT, G, AT = reference.WINOGRAD_BT, reference.WINOGRAD_G, reference.WINOGRAD_AT

# Transformed elements per chunk of images (V and M of one chunk: 2 MB each in float32): larger chunks
# measured no faster, and the buffers stay small (benchmarks/README.md, "Winograd").
CHUNK_ELEMENTS = 2 ** 19


def tiles(H, W):
    """The number of 4x4 output tiles (TH, TW) that cover an H x W output."""
    return -(-H // M_OUT), -(-W // M_OUT)


def _matrices(xp, dtype):
    """BT and AT as arrays of the data's dtype (G is applied to the filters, by transform_filters)."""
    return xp.asarray(BT, dtype=dtype), xp.asarray(AT, dtype=dtype)


def transform_filters(W, transposed=False):
    """U[a*6 + b, c, k] = (G W[k, c] G^T)[a, b]: W (K, C, 3, 3) -> U (36, C, K), or (36, K, C) if transposed.

    Two GEMMs, the second writing U in its final layout: with 512 x 512 filters U is 38 MB in float32, and
    the temporaries here peak at 1.5x U (an einsum-free tensordot and a transposing copy peaked at 2.5x).
    """
    xp = kernels.array_module(W)
    K, C = W.shape[:2]
    G_ = xp.asarray(G, dtype=W.dtype)
    WG = (xp.ascontiguousarray(W).reshape(K * C * R, R) @ G_.T).reshape(K, C, R, ALPHA)   # W G^T: (k, c, i, b)
    WG = xp.ascontiguousarray(WG.transpose(2, 3, 0, 1) if transposed else WG.transpose(2, 3, 1, 0))
    U = G_ @ WG.reshape(R, -1)                                                           # G (W G^T): (a, b, ...)
    return U.reshape((ALPHA * ALPHA, K, C) if transposed else (ALPHA * ALPHA, C, K))


def transform_filters_adjoint(dU, K, C):
    """dW[k, c] = G^T dU[:, k, c] G: dU (36, K, C) -> dW (K, C, 3, 3), the gradient through transform_filters."""
    xp = kernels.array_module(dU)
    G_ = xp.asarray(G, dtype=dU.dtype)
    t = (G_.T @ dU.reshape(ALPHA, -1)).reshape(R, ALPHA, K, C)                          # (i, b, k, c)
    t = xp.ascontiguousarray(t.transpose(2, 3, 0, 1))                                    # (k, c, i, b)
    return (t.reshape(-1, ALPHA) @ G_).reshape(K, C, R, R)


def _chunks(x, per_image):
    # On NumPy arrays, a multiple of minidl's thread count of equal chunks, each thread running its own
    # chunks' whole pipeline (threads.map_chunks).
    return threads.batch_chunks(x.shape[0], CHUNK_ELEMENTS // max(per_image, 1),
                                        parallel=isinstance(x, numpy.ndarray))


def conv3x3_forward(x, W):
    """y = conv2d(x, W, padding=1) for x (N, C, H, W) and W (K, C, 3, 3), by F(4x4, 3x3)."""
    xp = kernels.array_module(x)
    N, C, H, Wd = x.shape
    K = W.shape[0]
    TH, TW = tiles(H, Wd)
    BT_, AT_ = _matrices(xp, x.dtype)
    U = transform_filters(W)
    y = xp.empty((N, K, H, Wd), dtype=x.dtype)

    def forward(chunks):
        for n0, n1 in chunks:
            d = kernels.pad_nhwc(x[n0:n1], 1, 1, M_OUT * TH + 2, M_OUT * TW + 2)
            V = kernels.winograd_tiles(d, BT_, M_OUT, TH, TW)                  # (36, tiles, C)
            M = kernels.matmul(V, U)                                            # (36, tiles, K)
            y_tiles = kernels.winograd_untiles(M, AT_, M_OUT, TH, TW, M_OUT * TH, M_OUT * TW)
            kernels.crop_nchw(y_tiles, 0, 0, H, Wd, out=y[n0:n1])

    threads.map_chunks(x, _chunks(x, ALPHA * ALPHA * max(C, K) * TH * TW), forward)
    return y


def conv3x3_backward(x, W, gy, need_gx=True):
    """(dX or None, dW) of conv3x3_forward, for the output gradient gy (N, K, H, W)."""
    xp = kernels.array_module(x)
    N, C, H, Wd = x.shape
    K = W.shape[0]
    TH, TW = tiles(H, Wd)
    BT_, AT_ = _matrices(xp, x.dtype)
    B, A = xp.ascontiguousarray(BT_.T), xp.ascontiguousarray(AT_.T)
    U_t = transform_filters(W, transposed=True)                         # (36, K, C)
    gx = xp.empty(x.shape, dtype=x.dtype) if need_gx else None
    Hp, Wp = M_OUT * TH + 2, M_OUT * TW + 2

    def backward(chunks):   # -> this part's sum of dU
        dU = xp.zeros((ALPHA * ALPHA, K, C), dtype=x.dtype)
        for n0, n1 in chunks:
            d = kernels.pad_nhwc(x[n0:n1], 1, 1, Hp, Wp)
            V = kernels.winograd_tiles(d, BT_, M_OUT, TH, TW)                   # recomputed: keeping it costs 2.25x x
            g = kernels.pad_nhwc(gy[n0:n1], 0, 0, M_OUT * TH, M_OUT * TW)
            dM = kernels.winograd_tiles(g, A, M_OUT, TH, TW)                     # (36, tiles, K)
            dU += kernels.matmul(dM.transpose(0, 2, 1), V)                      # (36, K, C)
            if need_gx:
                dV = kernels.matmul(dM, U_t, out=V)                             # (36, tiles, C), into V's buffer
                dd = kernels.winograd_untiles(dV, B, M_OUT, TH, TW, Hp, Wp, out=d)
                kernels.crop_nchw(dd, 1, 1, H, Wd, out=gx[n0:n1])
        return dU

    dU = threads.sum_parts(threads.map_chunks(x, _chunks(x, ALPHA * ALPHA * max(C, K) * TH * TW), backward,
                                              partial_elements=ALPHA * ALPHA * K * C))
    del U_t                              # the filters' 36 matrices can be large (38 MB at 512 x 512): free first
    return gx, transform_filters_adjoint(dU, K, C)
