"""Numba tanh, ReLU and their gradients, element by element over flat arrays. Formulas:
``minidl.kernels.reference``.

NumPy's float32 tanh takes ~3 ns an element here (0.89 ms for LeNet-5's first layer output at batch 64,
13% of the faithful LeNet-5's training step with the other tanh layers); the rational function below is
~15 multiply-adds and one division, which LLVM vectorises. float64 arrays take NumPy's tanh.

ReLU is a select per element: NumPy's ``maximum(x, 0)`` (which checks for NaN) ran 237 us on LeNet-5's first
ReLU at batch 64 (301,056 elements), this loop 40 us; the gradient ``gy * (y > 0)`` (a mask, a cast and a
product) 142 us, its select 58 us.
"""
import numpy as np
from numba import float32, njit

from minidl.kernels import threads
from minidl.kernels.threads import parallel_for

# tanh(x) ~ x P(x^2) / Q(x^2) on [-c, c], the minimax rational function of Eigen's float tanh
# (generic_fast_tanh_float): x is clamped to [-c, c] (tanh(c) = 0.99999976 in float32), the result is +-1
# from ONE_FROM on (where float32 tanh is +-1) and x itself below TINY. At most 4e-7 from float64 tanh on a
# dense grid of [-12, 12] and on 1e-30..1e30 (NumPy's float32 tanh: ~1e-7), never above 1 in magnitude
# (tests/kernels/test_kernels.py).
CLAMP = float32(7.90531110763549805)
TINY = float32(0.0004)
ONE_FROM = float32(9.01)       # float32 tanh is exactly +-1 from here on (the clamp alone gives 0.99999976)
ALPHA = tuple(float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                   5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                   -2.76076847742355e-16))
BETA = tuple(float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                  1.19825839466702e-06))
A1, A3, A5, A7, A9, A11, A13 = ALPHA
B0, B2, B4, B6 = BETA


# No "nnan"/"ninf" fast-math flags: a NaN must stay NaN and +-inf give +-1. The loops index views from 0:
# with lo (of unknown sign to LLVM) in the index, Numba's negative-index wraparound kept them scalar
# (2.3x slower than NumPy).
@njit(cache=True, fastmath={"contract", "arcp", "nsz"}, error_model="numpy", nogil=True)
def _tanh_float32(lo, hi, x, y, outer, inner):
    # y = outer * tanh(inner * x); outer = inner = 1 is tanh itself, bit for bit (products by 1 are exact)
    xs, ys = x[lo:hi], y[lo:hi]
    for i in range(hi - lo):
        u = inner * xs[i]
        v = CLAMP if u > CLAMP else u      # selects, not min/max: Numba's float max branches (NaN rules)
        v = -CLAMP if v < -CLAMP else v
        v2 = v * v
        p = ((((((A13 * v2 + A11) * v2 + A9) * v2 + A7) * v2 + A5) * v2 + A3) * v2 + A1) * v
        q = ((B6 * v2 + B4) * v2 + B2) * v2 + B0
        r = p / q
        a = abs(u)
        r = u if a < TINY else r
        r = (float32(1) if u > 0 else float32(-1)) if a >= ONE_FROM else r
        ys[i] = outer * (u if u != u else r)          # NaN stays NaN


@njit(cache=True, fastmath={"contract", "arcp", "nsz"}, nogil=True)   # NaN and inf propagate as in NumPy
def _tanh_backward(lo, hi, gy, y, gx, outer_inv, slope, one):
    # t = y / outer is tanh's value; gx = gy * slope * (1 - t^2), slope = outer * inner (1 and 1 for tanh).
    # ``one`` is 1 in the arrays' dtype: the literal 1 made the loop float64 (as PyTorch, float32 throughout).
    gys, ys, gxs = gy[lo:hi], y[lo:hi], gx[lo:hi]
    for i in range(hi - lo):
        t = ys[i] * outer_inv
        gxs[i] = gys[i] * (slope * (one - t * t))


def tanh_forward(x, outer=1.0, inner=1.0):
    """Numba outer * tanh(inner * x) for float32 (NumPy's tanh for float64): x (any shape) -> y. See
    reference."""
    x = np.ascontiguousarray(x)
    if x.dtype != np.float32:
        return _scaled(np.tanh(_scaled(x, inner)), outer)
    y = np.empty_like(x)
    parallel_for(_tanh_float32, x.size, x.reshape(-1), y.reshape(-1), np.float32(outer), np.float32(inner))
    return y


def _scaled(a, factor):
    return a if factor == 1 else a * a.dtype.type(factor)


def tanh_backward(gy, y, outer=1.0, inner=1.0):
    """Numba gradient of outer * tanh(inner * x) from its output y: gy, y (one shape) ->
    gx = gy * outer * inner * (1 - (y / outer)^2). See reference."""
    gy = np.ascontiguousarray(gy)
    y = np.ascontiguousarray(y, dtype=gy.dtype)
    gx = np.empty_like(gy)
    kind = gy.dtype.type
    parallel_for(_tanh_backward, gy.size, gy.reshape(-1), y.reshape(-1), gx.reshape(-1), kind(1 / outer),
                 kind(outer * inner), kind(1))
    return gx


# Selects, as PyTorch's relu and its gradient: y = 0 where x < 0, else x (so -0.0 and NaN pass unchanged);
# gx = 0 where y <= 0, else gy (an inf or NaN gradient where y is 0 gives 0, not NaN). One kernel for both
# (``at_zero``: also 0 where ``cond`` is 0), so a cold cache compiles one (0.25-0.5 s each). No fast-math
# flags: "nsz" would let LLVM turn the select into a max that drops -0.0's sign. ``zero`` is a scalar of the
# arrays' dtype, passed in (a literal 0 would make the select float64; np.zeros inside cost 0.5 s more to
# compile).
@njit(cache=True, error_model="numpy", nogil=True)
def _relu_select(lo, hi, cond, value, out, zero, at_zero):
    cs, vs, outs = cond[lo:hi], value[lo:hi], out[lo:hi]
    if at_zero:     # two loops, not the flag inside one: that loop ran 2x slower
        for i in range(hi - lo):
            outs[i] = zero if cs[i] <= zero else vs[i]
    else:
        for i in range(hi - lo):
            outs[i] = zero if cs[i] < zero else vs[i]


def relu_forward(x):
    """Numba ReLU: x (any shape, float32 or float64) -> y = x where x >= 0 or NaN, else 0. See reference."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    flat = x.reshape(-1)
    parallel_for(_relu_select, x.size, flat, flat, y.reshape(-1), x.dtype.type(0), False,
                 min_work=threads.MIN_ELEMENTWISE)
    return y


def relu_backward(gy, y):
    """Numba gradient of ReLU from its output: gy, y (one shape) -> gx = 0 where y <= 0, else gy. See reference."""
    gy = np.ascontiguousarray(gy)
    y = np.ascontiguousarray(y, dtype=gy.dtype)
    gx = np.empty_like(gy)
    parallel_for(_relu_select, gy.size, y.reshape(-1), gy.reshape(-1), gx.reshape(-1), gy.dtype.type(0), True,
                 min_work=threads.MIN_ELEMENTWISE)
    return gx
