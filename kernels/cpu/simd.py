"""Eight float32 lanes as one Numba value: register tiles for the direct convolution (kernels/cpu/tiled.py).

Numba has no vector type, and LLVM will not keep a tile of accumulators in registers when they live in an
array (Numba's arrays may alias): the register-tiled convolution written with scalars or arrays ran at
7-13 GFLOP/s here (benchmarks/README.md). ``f32x8`` is a Numba type whose values are LLVM ``<8 x float>``
values, so a dozen of them held in local variables become a dozen AVX registers, and these intrinsics are
the only operations on them:

    vzero()                 (0, ..., 0)
    vload(a, i)             a[i:i+8] of a contiguous 1-D float32 array
    vstore(a, i, v)         a[i:i+8] = v
    vbroadcast(a, i)        (a[i], ..., a[i])
    vfma(a, b, c)           a * b + c, lane by lane, fused where the CPU has FMA (llvm.fmuladd)
    vsum(v)                 v[0] + ... + v[7], always in the same order (a tree of pairs)
    at(a, i)                a[i] of a 1-D array
    put(a, i, v)            a[i] = v

None checks its index: ``a[i]`` in Numba wraps a negative i around, a test and a select on every access
that LLVM cannot hoist out of the innermost loop (it made the first version of the convolution 3x slower),
and bounds are the caller's to keep. The callers index contiguous 1-D arrays only, from 0. On a CPU without
AVX, LLVM splits each value into two SSE registers: slower, the same results.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_LANES = 8
_VECTOR = ir.VectorType(ir.FloatType(), _LANES)
_I32 = ir.IntType(32)


class F32x8(types.Type):
    """The Numba type of eight float32 lanes (an LLVM ``<8 x float>``)."""

    def __init__(self):
        super().__init__(name="f32x8")


f32x8 = F32x8()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _address(context, builder, array_type, array, index):
    """A pointer to element ``index`` of a 1-D array, without wraparound or bounds check."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


def _splat(builder, scalar):
    lanes = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(lanes, ir.Constant(_VECTOR, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, _LANES), [0] * _LANES))


def _float32_array(array):
    return isinstance(array, types.Array) and array.dtype == types.float32 and array.ndim == 1


@intrinsic
def vzero(typingctx):
    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0.0] * _LANES)
    return f32x8(), codegen


@intrinsic
def vload(typingctx, array, index):
    if not _float32_array(array):
        return None

    def codegen(context, builder, signature, args):
        pointer = _address(context, builder, signature.args[0], *args)
        return builder.load(builder.bitcast(pointer, _VECTOR.as_pointer()), align=4)
    return f32x8(array, index), codegen


@intrinsic
def vstore(typingctx, array, index, value):
    if not _float32_array(array) or value != f32x8:
        return None

    def codegen(context, builder, signature, args):
        pointer = _address(context, builder, signature.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(pointer, _VECTOR.as_pointer()), align=4)
    return types.void(array, index, value), codegen


@intrinsic
def vbroadcast(typingctx, array, index):
    if not _float32_array(array):
        return None

    def codegen(context, builder, signature, args):
        return _splat(builder, builder.load(_address(context, builder, signature.args[0], *args)))
    return f32x8(array, index), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    if not a == b == c == f32x8:
        return None

    def codegen(context, builder, signature, args):
        fused = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                               "llvm.fmuladd.v8f32")
        return builder.call(fused, args)
    return f32x8(a, b, c), codegen


@intrinsic
def vsum(typingctx, value):
    if value != f32x8:
        return None

    def codegen(context, builder, signature, args):
        lanes = [builder.extract_element(args[0], ir.Constant(_I32, i)) for i in range(_LANES)]
        while len(lanes) > 1:     # (0+1)+(2+3), ...: a fixed order, so a fixed rounding
            lanes = [builder.fadd(lanes[i], lanes[i + 1]) for i in range(0, len(lanes), 2)]
        return lanes[0]
    return types.float32(value), codegen


@intrinsic
def at(typingctx, array, index):
    if not (isinstance(array, types.Array) and array.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        return builder.load(_address(context, builder, signature.args[0], *args))
    return array.dtype(array, index), codegen


@intrinsic
def put(typingctx, array, index, value):
    if not (isinstance(array, types.Array) and array.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        item = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
        builder.store(item, _address(context, builder, signature.args[0], args[0], args[1]))
    return types.void(array, index, value), codegen
