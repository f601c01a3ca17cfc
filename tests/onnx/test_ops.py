"""Each op's ONNX conversion, run in onnxruntime against minidl's forward (float32, 1e-4 relative).

Skipped without onnx / onnxruntime (``pip install onnx onnxruntime``).
"""
import numpy as np
import pytest

import minidl
import minidl.functions as F
import minidl.onnx
from minidl import nn
from minidl.functions.shape import Concat, Pad, Split
from minidl.functions.activation import Softmax
from tests.onnx.helpers import RTOL, export_and_run, relative_error

import minidl.ops as ops


class Lambda(nn.Module):
    """A module whose forward is ``fn(x, *params)``; ``params`` become Parameters (initializers)."""

    def __init__(self, fn, *params):
        super().__init__()
        self.fn = fn
        for i, p in enumerate(params):
            setattr(self, f"p{i}", nn.Parameter(np.asarray(p, dtype=np.float32)))
        self.count = len(params)

    def forward(self, x):
        return self.fn(x, *[getattr(self, f"p{i}") for i in range(self.count)])


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check(tmp_path, fn, x, *params, opset=minidl.onnx.DEFAULT_OPSET):
    path = tmp_path / "op.onnx"
    path.unlink(missing_ok=True)   # written by this test's previous case, if any
    got, expected = export_and_run(Lambda(fn, *params), x, path, opset=opset)
    for g, e in zip(got, expected):
        if e.dtype.kind == "f":
            assert relative_error(g, e) <= RTOL
        else:
            np.testing.assert_array_equal(g, e)


W = _x(6, 2, 3, 3, seed=1)
CASES = {
    "conv groups, stride, padding, dilation": (lambda x, w: F.conv2d(x, w, stride=2, padding=(2, 1), dilation=2,
                                                                     groups=2), (2, 4, 11, 9), [W]),
    "conv with bias, 1x1": (lambda x, w, b: F.conv2d(x, w, b), (1, 4, 5, 5), [_x(3, 4, 1, 1), _x(3)]),
    "conv padding same, even kernel": (lambda x, w: F.conv2d(x, w, padding="same", dilation=(1, 3)), (2, 4, 7, 6),
                                       [_x(5, 4, 4, 2, seed=2)]),
    "max pool ceil_mode": (lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True), (2, 3, 8, 8), []),
    "max pool kernel larger than the input": (lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True), (1, 2, 2, 4), []),
    "avg pool kernel larger than the input": (lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True,
                                                                     count_include_pad=False), (1, 2, 1, 2), []),
    "max pool padding": (lambda x: F.max_pool2d(x, 3, 2, padding=1), (2, 3, 7, 6), []),
    "avg pool count_include_pad": (lambda x: F.avg_pool2d(x, 3, 2, padding=1), (2, 3, 7, 7), []),
    "avg pool excluding pad": (lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False), (2, 3, 7, 7),
                               []),
    "avg pool ceil_mode": (lambda x: F.avg_pool2d(x, 2, 2, ceil_mode=True), (2, 3, 7, 7), []),
    "adaptive pool, divisible": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (2, 3, 4, 6), []),
    "adaptive pool, overlapping bins": (lambda x: F.adaptive_avg_pool2d(x, (3, 4)), (2, 3, 5, 7), []),
    "adaptive pool, 1 x 1 to 7 x 7": (lambda x: F.adaptive_avg_pool2d(x, 7), (2, 3, 1, 1), []),
    "global average pool": (lambda x: F.global_avg_pool2d(x), (2, 3, 5, 4), []),
    "LRN, the paper's alpha": (lambda x: F.local_response_norm(x, 5, alpha=1e-2, beta=0.75, k=2.0),
                               (2, 7, 3, 3), []),
    "LRN, PyTorch's alpha / size": (lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=1.0,
                                                                    alpha_over_size=True), (2, 6, 3, 3), []),
    "LRN, even size": (lambda x: F.local_response_norm(x, 4, alpha=0.3, beta=0.75, k=1.0), (2, 6, 3, 3), []),
    "linear 2-D": (lambda x, w, b: F.linear(x, w, b), (3, 5), [_x(4, 5), _x(4)]),
    "linear 3-D, no bias": (lambda x, w: F.linear(x, w), (2, 3, 5), [_x(4, 5)]),
    "arithmetic with constants": (lambda x, a: ((x * a + 1.5) / 2.0 - a) ** 2 + (-x).abs().sqrt()
                                  + (x.exp() + 1.0).log(), (2, 3), [_x(2, 3, seed=2)]),
    "activations": (lambda x: F.relu(x) + F.tanh(x) + F.sigmoid(x) + F.leaky_relu(x, 0.2), (2, 8), []),
    "softmax": (lambda x: Softmax(1)(x * 3.0), (2, 5, 3), []),
    "reshape, flatten, transpose": (lambda x: x.reshape(2, 12).T.flatten(), (2, 3, 4), []),
    "sum and mean over axes": (lambda x: x.sum(axis=1) + x.mean(axis=(1, 2), keepdims=True).reshape(2, 1),
                               (2, 3, 4), []),
    "slices with steps": (lambda x: x[:, 1:, ::2] * 2.0, (2, 3, 5), []),
    "integer and array indexing": (lambda x: x[1] + x[np.array([0, 0, 1])].sum(axis=0), (2, 3), []),
    "concat and split": (lambda x: Concat(1)(*Split([1, 3], 1)(x)[::-1]), (2, 5, 2), []),
    "pad with a value": (lambda x: Pad(((0, 0), (0, 0), (1, 2), (0, 1)), 0.5)(x), (1, 2, 3, 3), []),
    "matmul with a parameter": (lambda x, w: x @ w, (2, 3, 4), [_x(4, 2)]),
}
if hasattr(F, "conv_transpose2d"):
    CASES["transposed conv, output_padding"] = (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2),
        (1, 4, 3, 3), [_x(4, 3, 3, 3, seed=3)])
for name in ("clamp", "maximum", "softplus", "logsigmoid"):
    if not hasattr(F, name) and not hasattr(ops, name):
        continue
    CASES[name] = {
        "clamp": (lambda x: ops.clamp(x, -0.5, 0.7), (3, 4), []),
        "maximum": (lambda x, a: ops.maximum(x, a) + ops.minimum(x, a), (3, 4), [_x(3, 4, seed=4)]),
        "softplus": (lambda x: F.softplus(x * 12.0, beta=2.0, threshold=5.0), (3, 4), []),
        "logsigmoid": (lambda x: F.logsigmoid(x * 30.0), (3, 4), []),
    }[name]


@pytest.mark.parametrize("name", list(CASES))
def test_op_exports_and_runs_equal(tmp_path, name):
    fn, shape, params = CASES[name]
    _check(tmp_path, fn, _x(*shape), *params)


def _amax(x, axis):
    return ops.amax(x, axis) if hasattr(ops, "amax") else x.max(axis=axis)


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_reductions_in_every_supported_opset(tmp_path, opset):
    """ReduceMax/ReduceMean take axes as an attribute before opset 18 and as an input from 18."""
    _check(tmp_path, lambda x: _amax(x, 1) + x.mean(axis=(1, 2)).reshape(2, 1) + x.sum(axis=2),
           _x(2, 3, 3), opset=opset)


@pytest.mark.skipif(not hasattr(ops, "MaxMinDim"), reason="this minidl has no max(x, dim) with indices")
@pytest.mark.parametrize("opset", [13, 18])
def test_max_along_a_dim_gives_values_and_indices(tmp_path, opset):
    _check(tmp_path, lambda x: tuple(ops.min(x * 2.0, 1)), _x(2, 4, 3), opset=opset)


def test_batch_norm_in_eval_uses_running_statistics(tmp_path):
    bn = nn.BatchNorm2d(3)
    bn.running_mean.data[...] = [0.5, -1.0, 2.0]
    bn.running_var.data[...] = [0.25, 4.0, 1.0]
    bn.weight.data[...] = [1.5, -0.5, 2.0]
    bn.train()
    minidl.onnx.export(bn, _x(2, 3, 4, 4), tmp_path / "first.onnx")
    assert bn.training, "export restores the training flag"
    got, expected = export_and_run(bn, _x(2, 3, 4, 4), tmp_path / "bn.onnx")
    assert relative_error(got[0], expected[0]) <= RTOL


def test_dropout_is_dropped(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    model.train()
    got, expected = export_and_run(model, _x(2, 4), tmp_path / "dropout.onnx")
    assert relative_error(got[0], expected[0]) <= RTOL
    import onnx
    assert "Dropout" not in {n.op_type for n in onnx.load(str(tmp_path / "dropout.onnx")).graph.node}


def test_initializers_carry_state_dict_names(tmp_path):
    import onnx
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    minidl.onnx.export(model, _x(1, 1, 5, 5), tmp_path / "names.onnx")
    names = {t.name for t in onnx.load(str(tmp_path / "names.onnx")).graph.initializer}
    assert {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"} <= names


def test_tuple_outputs(tmp_path):
    got, expected = export_and_run(Lambda(lambda x: (x * 2.0, F.relu(x))), _x(2, 3), tmp_path / "two.onnx")
    assert len(got) == 2
    for g, e in zip(got, expected):
        assert relative_error(g, e) <= RTOL


def test_errors_are_clear(tmp_path):
    x = _x(2, 3)
    with pytest.raises(minidl.onnx.ExportError, match="opset must be an int from 13 to 21"):
        minidl.onnx.export(Lambda(F.relu), x, tmp_path / "a.onnx", opset=7)
    with pytest.raises(minidl.onnx.ExportError, match="does not depend on the input"):
        minidl.onnx.export(Lambda(lambda x, w: w * 2.0, _x(3)), x, tmp_path / "b.onnx")
    with pytest.raises(minidl.onnx.ExportError, match="BatchNormTrain cannot be exported.*eval mode"):
        minidl.onnx.export(Lambda(lambda x: F.batch_norm(x, None, None, training=True)), _x(4, 3, 2, 2),
                           tmp_path / "c.onnx")
    with pytest.raises(minidl.onnx.ExportError, match="example_input must be a floating-point"):
        minidl.onnx.export(Lambda(F.relu), np.ones((2, 2), dtype=np.int64), tmp_path / "d.onnx")
    assert not any(tmp_path.iterdir()), "a failed export leaves no file behind"
    existing = tmp_path / "mine.onnx"
    existing.write_bytes(b"not minidl's")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        minidl.onnx.export(Lambda(F.relu), x, existing)
    assert existing.read_bytes() == b"not minidl's"
    minidl.onnx.export(Lambda(F.relu), x, existing, overwrite=True)
    assert existing.read_bytes() != b"not minidl's"


def test_boundary_values_pass_through(tmp_path):
    """Infinities, float32's extremes and zeros go through ReLU, max pooling and concat unchanged."""
    f32 = np.finfo(np.float32)
    x = np.array([[[[np.inf, -np.inf, 0.0, -0.0], [f32.max, f32.min, f32.tiny, 1.0]]]], dtype=np.float32)
    model = Lambda(lambda x: Concat(3)(F.relu(x), F.max_pool2d(x, (1, 2), (1, 2))))
    got, expected = export_and_run(model, x, tmp_path / "edges.onnx")
    np.testing.assert_array_equal(got[0], expected[0])


POOLS = [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, stride=2, padding=1),
         dict(kernel_size=3, stride=3, padding=1), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))]


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling_ceil_mode_and_padding_edges(tmp_path, pool):
    """Where ceil_mode's last window would start in the right padding, minidl (like PyTorch) drops it and
    ONNX's ceil_mode would keep it; and clipped windows divide by their own size. All sizes 5-7."""
    checked = 0
    for args in POOLS:
        for ceil_mode in (True, False):
            for count_include_pad in ((True, False) if pool == "avg" else (None,)):
                kwargs = dict(args, ceil_mode=ceil_mode)
                if count_include_pad is not None:
                    kwargs["count_include_pad"] = count_include_pad
                f = F.avg_pool2d if pool == "avg" else F.max_pool2d
                for size in (5, 6, 7):
                    _check(tmp_path, lambda x: f(x, **kwargs), _x(1, 2, size, size + 1))
                    checked += 1
    assert checked == (48 if pool == "avg" else 24)
