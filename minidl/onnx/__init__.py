"""ONNX export: ``minidl.onnx.export(model, example_input, path, opset=17)``.

    import minidl.onnx
    minidl.onnx.export(get_model("resnet18").eval(), minidl.randn(1, 3, 224, 224), "resnet18.onnx")

How it works: minidl is define-by-run, so the model is *traced*. It runs once on ``example_input`` with
gradient recording on (the model in eval mode; its mode is restored afterwards), which leaves the graph of
Functions that computed the output (``Tensor.creator`` / ``Function.inputs``, see ``minidl.autograd``).
Each Function becomes one or a few ONNX nodes (``minidl.onnx.ops``), each parameter and buffer an
initializer under its ``state_dict`` name. Ops on parameters stay ops (LeNet-5's C3 weight is gathered from
its 1,516 parameters through the connection table, in the graph); any other value that does not depend on
the input (a constant scale, a reshaped buffer) is folded into an initializer.

Deviations and limits, named:

* The graph is the inference graph: eval-mode batch norm (running statistics), no dropout. Exporting a
  model in training mode is not possible (dropout draws a fresh mask per call; ONNX has no such op).
* Shapes are static: the graph is valid for ``example_input``'s shape (batch size included), as the
  traced reshapes and slices are. Export again for another input size.
* Python control flow is frozen at the branch the example took (a trace, as ``torch.jit.trace``).

Needs the ``onnx`` package (``pip install "minidl[onnx]"``); onnxruntime only to run the file.
"""
from pathlib import Path

import numpy as np

from minidl import autograd
from minidl.serialization import atomic_write
from minidl.tensor import Tensor

DEFAULT_OPSET = 17
MIN_OPSET = 13
MAX_OPSET = 21


class ExportError(RuntimeError):
    """The model (or one of its ops) cannot be expressed in ONNX, or the arguments are wrong."""


def export(model, example_input, path, opset=DEFAULT_OPSET, input_name="input", output_name="output",
           overwrite=False, check=True):
    """Trace ``model`` on ``example_input`` (a Tensor or array, N x C x H x W) and write an ONNX file.

    ``opset`` is the ONNX operator set (13 to 21); the file's IR version is set to match it. Returns the
    ``onnx.ModelProto``. Outputs are named ``output`` (or ``output_0``, ``output_1``, ... when the model
    returns a tuple). ``check=True`` runs ``onnx.checker.check_model(full_check=True)`` before writing.
    An existing file is not overwritten unless ``overwrite=True``.
    """
    onnx = _import_onnx()
    from minidl.onnx.graph import GraphBuilder
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"minidl.onnx.export: opset must be an int from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"minidl.onnx.export: {path} exists; pass overwrite=True to replace it")
    x = _example_tensor(example_input)
    outputs = trace(model, x)
    builder = GraphBuilder(opset, _names_of(model))
    builder.add_input(x, input_name)
    builder.discover(outputs)
    out_names = [output_name] if len(outputs) == 1 else [f"{output_name}_{i}" for i in range(len(outputs))]
    for t, name in zip(outputs, out_names):
        builder.add_output(t, name)
    graph = onnx.helper.make_graph(builder.nodes, type(model).__name__, builder.inputs, builder.outputs,
                                   builder.initializers)
    proto = onnx.helper.make_model(graph, producer_name="minidl",
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    # The lowest IR version that carries the opset: onnx 1.23's default, IR 14, is refused by onnxruntime 1.30+.
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    data = proto.SerializeToString()  # once: the checker reads the bytes too (AlexNet's are 240 MB)
    if check:
        onnx.checker.check_model(data, full_check=True)
    atomic_write(path, lambda f: f.write(data))
    return proto


def trace(model, x):
    """Run ``model(x)`` in eval mode with recording on; returns the output tensors (a list)."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with autograd.enable_grad():
            out = model(x)
    finally:
        if was_training:
            model.train()
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        raise ExportError(f"minidl.onnx.export: the model must return a Tensor or a tuple of Tensors, got "
                          f"{type(out).__name__}")
    return outputs


def _example_tensor(example_input):
    data = example_input.data if isinstance(example_input, Tensor) else np.asarray(example_input)
    if not isinstance(data, np.ndarray):
        raise ExportError("minidl.onnx.export: example_input must be on the CPU (call .to('cpu'))")
    if data.dtype.kind != "f":
        raise ExportError(f"minidl.onnx.export: example_input must be a floating-point tensor, got dtype {data.dtype}")
    return Tensor(data.copy(), requires_grad=True)  # requires_grad: every op on it is recorded


def _names_of(model):
    """id(array) -> state_dict name, so initializers carry the names PyTorch users know."""
    if not hasattr(model, "state_dict"):
        return {}
    return {id(t.data): name for name, t in model.state_dict(keep_vars=True).items()}


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("minidl.onnx.export needs the onnx package: pip install onnx "
                          "(or pip install \"minidl[onnx]\")") from None
    return onnx


__all__ = ["export", "trace", "ExportError", "DEFAULT_OPSET"]
