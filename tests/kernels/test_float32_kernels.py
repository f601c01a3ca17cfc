"""float32 kernels compute in float32: their vectorised loops hold no double-precision arithmetic.

Numba types a float32 times an int or float literal (``4 * d0``, ``rows[0] * 0``) as float64, silently: the
results stay right, but the loop converts every value to double and back and runs at half the vector width.
That had happened three times: the direct convolution's filter gradient (its per-image sums) and the four
Winograd F(4x4, 3x3) tile transforms (ResNet-20's training step 5-8% slower), each found in the assembly,
and tanh's gradient (``1 - t * t``), found by this test. (The direct convolution's float32 calls now run
the register-tiled kernels of kernels/cpu/tiled.py, which are not loop-vectorised but written in 8-lane
vectors: the last test checks those.)
Here each kernel that should run in the arrays' dtype is compiled afresh (Numba shows no code for a kernel
loaded from its cache) for the float32 signature a call gives it, and the loops LLVM vectorised (its
``vector.body`` blocks) must exist and hold no double. Float64 totals kept outside those loops (the direct
filter gradient adds each image's float32 sums into float64 ones) are allowed; kernels that sum in float64
on purpose inside their loops (batch norm's statistics, the general average pooling, the depthwise filter
gradient) are not listed.
"""
import importlib
import re

import numba
import numpy as np
import pytest

from minidl import kernels

F32 = np.float32

# (module of minidl.kernels.cpu, kernel, a call of the public kernel that compiles it for float32)
CASES = [
    ("winograd", "_winograd_tiles_bt",
     lambda rng: kernels.winograd_tiles(rng.random((1, 10, 10, 8), F32), np.array(kernels.winograd.BT, F32), 4, 2, 2)),
    ("winograd", "_winograd_tiles_a",
     lambda rng: kernels.winograd_tiles(rng.random((1, 8, 8, 8), F32), np.array(kernels.winograd.AT, F32).T, 4, 2, 2)),
    ("winograd", "_winograd_untiles_at",
     lambda rng: kernels.winograd_untiles(rng.random((36, 4, 8), F32), np.array(kernels.winograd.AT, F32), 4, 2, 2,
                                         8, 8)),
    ("winograd", "_winograd_untiles_b",
     lambda rng: kernels.winograd_untiles(rng.random((36, 4, 8), F32), np.array(kernels.winograd.BT, F32).T, 4, 2, 2,
                                         10, 10)),
    ("pooling", "_max_pool2d_forward_2x2_short",
     lambda rng: kernels.max_pool2d_forward(rng.random((2, 3, 10, 10), F32), 2, 2, 2, 2, 0, 0)),
    ("pooling", "_max_pool2d_forward",
     lambda rng: kernels.max_pool2d_forward(rng.random((2, 3, 10, 10), F32), 3, 3, 2, 2, 1, 1)),
    ("pooling", "_avg_pool2d_forward_2x2",
     lambda rng: kernels.avg_pool2d_forward(rng.random((2, 3, 10, 10), F32), 2, 2, 2, 2, 0, 0)),
    ("pooling", "_avg_pool2d_backward_2x2",
     lambda rng: kernels.avg_pool2d_backward(rng.random((2, 3, 5, 5), F32), 10, 10, 2, 2, 2, 2, 0, 0)),
    ("depthwise", "_depthwise_conv2d",
     lambda rng: kernels.depthwise_conv2d(rng.random((2, 3, 12, 12), F32), rng.random((3, 1, 3, 3), F32), 1, 1)),
    ("normalization", "_channel_affine",
     lambda rng: kernels.batch_norm_forward_eval(rng.random((2, 3, 8, 8), F32), rng.random(3, F32), rng.random(3, F32),
                                                 rng.random(3, F32), rng.random(3, F32) + 1, 1e-5)),
    ("normalization", "_bn_backward_apply",
     lambda rng: kernels.batch_norm_backward(rng.random((2, 3, 8, 8), F32), rng.random((2, 3, 8, 8), F32),
                                             rng.random(3, F32), rng.random(3, F32), rng.random(3, F32) + 1)),
    ("normalization", "_lrn_forward",
     lambda rng: kernels.lrn_forward(rng.random((2, 7, 6, 6), F32), 5, 1e-4, 0.75, 2.0)),
    ("normalization", "_lrn_backward",
     lambda rng: kernels.lrn_backward(rng.random((2, 7, 6, 6), F32), rng.random((2, 7, 6, 6), F32),
                                      *kernels.lrn_forward(rng.random((2, 7, 6, 6), F32), 5, 1e-4, 0.75, 2.0), 5, 1e-4,
                                      0.75)),
    ("activation", "_relu_select",
     lambda rng: kernels.relu_backward(rng.random(64, F32), kernels.relu_forward(rng.random(64, F32)))),
    ("activation", "_tanh_float32", lambda rng: kernels.tanh_forward(rng.random(64, F32), 1.7159, 2 / 3)),
    ("activation", "_tanh_backward",
     lambda rng: kernels.tanh_backward(rng.random(64, F32), rng.random(64, F32), 1.7159, 2 / 3)),
    ("im2col", "_im2col_gemm_stride1",
     lambda rng: kernels.im2col_gemm(rng.random((2, 3, 8, 8), F32), 3, 3, 1, 1, 1, 1)),
    ("im2col", "_col2im_gemm_stride1",
     lambda rng: kernels.col2im_gemm(rng.random((3, 3, 3, 2, 8, 8), F32), 8, 8, 1, 1, 1, 1)),
]

LABEL = re.compile(r"^([\w.]+):")
# Arithmetic in double: an add, multiply, ... or a float widened to double (loads and stores of a float64
# total, and its rounding to float32 on the way out, are not arithmetic)
DOUBLE_MATH = re.compile(r"\b(fadd|fsub|fmul|fdiv|fneg|fpext)\b[^=]*double|llvm\.fmuladd\.v\d+f64|llvm\.fma\.v\d+f64")


def vector_loops(ir):
    """The lines of the blocks LLVM's loop vectoriser made (``vector.body``, ``vector.body12``, ...)."""
    lines, inside = [], False
    for line in ir.splitlines():
        label = LABEL.match(line)
        if label:
            inside = label.group(1).startswith("vector.body")
        elif inside:
            lines.append(line)
    return lines


def float32_ir(module, name, call):
    """The LLVM IR of kernel ``name`` compiled afresh (no cache) for the float32 signature ``call`` gives it."""
    kernel = getattr(importlib.import_module(f"minidl.kernels.cpu.{module}"), name)
    call(np.random.default_rng(0))
    signatures = [s for s in kernel.signatures if any(getattr(t, "dtype", None) == numba.float32 for t in s)]
    assert signatures, f"{name}: the call compiled no float32 signature"
    options = {key: value for key, value in kernel.targetoptions.items() if key not in ("cache", "nopython")}
    fresh = numba.njit(**options)(kernel.py_func)
    fresh.compile(signatures[0])
    return fresh.inspect_llvm(signatures[0])


@pytest.mark.parametrize("module, name, call", CASES, ids=[name for _, name, _ in CASES])
def test_float32_kernel_vectorises_in_float32(module, name, call):
    loops = vector_loops(float32_ir(module, name, call))
    assert loops, f"{name}: LLVM vectorised no loop of the float32 kernel"
    double = [line.strip() for line in loops if DOUBLE_MATH.search(line)]
    assert not double, (f"{name}: float64 arithmetic in its vectorised float32 loop (a literal that makes it "
                        f"double?): {double[:3]}")


def test_the_check_finds_a_literal_that_makes_a_loop_double():
    # The defect this file guards against, in miniature: a float32 sum started from ``x[0] * 0`` (float64 in
    # Numba) and the same sum started from a zero of the array's dtype.
    def with_literal(x):
        s = x[0] * 0
        for i in range(x.size):
            s += x[i] * x[i]
        return s

    def with_typed_zero(x, zero):
        s = zero
        for i in range(x.size):
            s += x[i] * x[i]
        return s

    x = np.ones(64, F32)
    literal, typed = numba.njit(fastmath=True)(with_literal), numba.njit(fastmath=True)(with_typed_zero)
    literal(x)
    typed(x, F32(0))
    assert any(DOUBLE_MATH.search(line) for line in vector_loops(literal.inspect_llvm(literal.signatures[0])))
    loops = vector_loops(typed.inspect_llvm(typed.signatures[0]))
    assert loops and not any(DOUBLE_MATH.search(line) for line in loops)


TILED = [
    ("_tiled_conv2d", lambda rng: kernels.direct_conv2d(rng.random((2, 3, 12, 12), F32), rng.random((5, 3, 3, 3), F32),
                                                        1, 1)),
    ("_tiled_conv2d_grad_weight",
     lambda rng: kernels.direct_conv2d_grad_weight(rng.random((2, 3, 12, 12), F32), rng.random((2, 5, 12, 12), F32),
                                                   3, 3, 1, 1)),
]


@pytest.mark.parametrize("name, call", TILED, ids=[name for name, _ in TILED])
def test_tiled_kernels_multiply_add_in_float32_vectors(name, call):
    # Their sums are 8-lane float32 multiply-adds (kernels/cpu/simd.py's vfma); the forward has no double at
    # all, the filter gradient only where it adds each image's tile sums into float64 totals.
    ir = float32_ir("tiled", name, call)
    assert "llvm.fmuladd.v8f32" in ir
    assert not re.search(r"llvm\.fmuladd\.v\d+f64|llvm\.fma\.v\d+f64", ir)
    if name == "_tiled_conv2d":
        assert not [line for line in ir.splitlines() if DOUBLE_MATH.search(line)]
