"""Export a model, check the file in full and run it in onnxruntime next to minidl's own forward pass."""
import numpy as np
import pytest

import minidl
import minidl.onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL = 1e-4


def relative_error(got, expected):
    """max |got - expected| / max |expected|: the error relative to the output's scale."""
    scale = np.abs(expected).max()
    assert scale > 0 and np.isfinite(scale), "a zero or non-finite output checks nothing"
    return float(np.abs(got.astype(np.float64) - expected).max() / scale)


def export_and_run(model, x, path, opset=minidl.onnx.DEFAULT_OPSET):
    """(onnxruntime's outputs, minidl's outputs) for ``x``, both lists, the model in eval mode."""
    minidl.onnx.export(model, x, path, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version <= 10, "onnxruntime 1.30 refuses IR versions past 10"
    model.eval()
    with minidl.no_grad():
        out = model(minidl.tensor(x))
    expected = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})
    assert [g.shape for g in got] == [e.shape for e in expected]
    return got, expected
