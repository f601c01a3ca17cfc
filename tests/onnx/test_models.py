"""Every registered model exports to ONNX, passes onnx.checker's full check, and onnxruntime computes
minidl's outputs to 1e-4 relative (float32, eval mode), at the smallest input each architecture allows
(SENet-154 at 32 x 32: with random weights its float32 result is only good to ~6e-5 against float64, in
minidl and onnxruntime alike, and 1 x 1 maps at 16 x 16 make that worse).

The models marked heavy (tens of millions of parameters, or hundreds of layers: 5-60 s each on two
cores) run only with ``MINIDL_TEST_ALL_MODELS=1``; the rest run always (about a minute on two cores).
A model registered but missing from INPUTS fails, so a new model cannot slip past the export check.
Skipped without onnx / onnxruntime.
"""
import os

import numpy as np
import pytest

import minidl
from minidl.models import get_model, list_models
from tests.models.residual_checks import build
from tests.onnx.helpers import RTOL, export_and_run, relative_error

ALL = os.environ.get("MINIDL_TEST_ALL_MODELS") == "1"

# name: (channels, height = width): the smallest input each architecture takes (a batch of 2)
INPUTS = {
    "lenet1": (1, 28), "lenet5": (1, 32), "lenet5_modern": (1, 32),
    "alphago_policy": (48, 19), "alphago_value": (49, 19),
    "alexnet": (3, 227), "zfnet": (3, 224), "zfnet_wide": (3, 224), "nin": (3, 48), "nin_cifar": (3, 16),
    "googlenet": (3, 32), "squeezenet1_0": (3, 28), "squeezenet1_1": (3, 28), "xception": (3, 16),
    "densenet_bc_100_12": (3, 16), "fractalnet_cifar_small": (3, 16), "senet154": (3, 32),
    "fractalnet_cifar": (3, 32), "fractalnet40_cifar": (3, 32),
    **{name: (3, 32) for name in ("densenet121", "densenet161", "densenet169", "densenet201")},
    **{name: (3, 32) for name in list_models() if name.startswith("vgg")},
    **{name: (3, 16) for name in list_models() if name.startswith(("resnet", "preact_resnet", "resnext", "wrn",
                                                                    "wide_resnet", "se_resnet"))},
}

HEAVY = {
    "alexnet", "zfnet", "zfnet_wide", "xception", "senet154", "fractalnet_cifar", "fractalnet40_cifar",
    "densenet161", "densenet169", "densenet201", "densenet_bc_100_12",
    "vgg11", "vgg11_bn", "vgg11_lrn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg16_c", "vgg19", "vgg19_bn",
    "resnet50", "resnet101", "resnet152", "resnet110", "resnet110_stochastic_depth", "resnet56", "resnet44",
    "preact_resnet50", "preact_resnet101", "preact_resnet152", "preact_resnet110", "preact_resnet164",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "resnext29_8x64d", "resnext29_16x64d",
    "wide_resnet50_2", "wide_resnet101_2", "wrn28_10", "wrn40_4", "wrn16_8", "se_resnet50",
    "resnet34", "resnet34_a", "preact_resnet34",
}


def _params():
    for name in list_models():
        marks = [pytest.mark.skipif(not ALL, reason="heavy: set MINIDL_TEST_ALL_MODELS=1")] if name in HEAVY else []
        yield pytest.param(name, marks=marks, id=name)


def calibrate_batch_norm(model, channels, size, batch=32):
    """Running statistics from one training-mode pass over ``batch`` random inputs (momentum 1), so that
    activations stay near unit scale at every depth, as in a trained net.

    With random weights and made-up statistics a deep net's activations grow by orders of magnitude
    (1e5-1e17 here) and it becomes so sensitive that float32 rounding differences between any two
    implementations are amplified past 1e-4: SENet-154 reached 5e-2 while each of its blocks alone agreed
    to 1e-4. Statistics from a small batch are no better where feature maps are 1 x 1 (SE-ResNet-50 at a
    16 x 16 input: 4 values per channel gave 0.5).
    """
    model.eval()   # only the batch norms train: no dropout, no auxiliary classifiers (GoogLeNet)
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None:
            m.momentum = 1.0
            m.train()
    x = np.random.default_rng(1).standard_normal((batch, channels, size, size)).astype(np.float32)
    with minidl.no_grad():
        model(minidl.tensor(x))
    model.eval()


@pytest.mark.parametrize("name", list(_params()))
def test_model_exports_and_onnxruntime_agrees(tmp_path, name):
    assert name in INPUTS, f"{name} is registered but has no input size in INPUTS: add its smallest input"
    channels, size = INPUTS[name]
    # the small nets with their own initialisation; the rest with build()'s cheap random weights
    model = get_model(name) if name.startswith(("lenet", "alphago")) else build(name)
    calibrate_batch_norm(model, channels, size)
    x = np.random.default_rng(0).standard_normal((2, channels, size, size)).astype(np.float32)
    got, expected = export_and_run(model, x, tmp_path / f"{name}.onnx")
    error = relative_error(got[0], expected[0])
    print(f"{name}: onnxruntime max relative error {error:.2e}")
    assert error <= RTOL


def test_lenet5_keeps_its_c3_table_and_rbf_prototypes_in_the_graph(tmp_path):
    """The C3 weight is gathered from the table's 1,516 parameters by the graph (the dense 16 x 6 x 5 x 5
    weight is not an initializer), and the RBF output is (x - w)^2 summed, from the fixed prototypes."""
    import onnx
    model = get_model("lenet5")
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    got, expected = export_and_run(model, x, tmp_path / "lenet5.onnx")
    assert relative_error(got[0], expected[0]) <= RTOL
    graph = onnx.load(str(tmp_path / "lenet5.onnx")).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    assert {shapes[f"c3.convs.{i}.weight"] for i in range(3)} == {(6, 3, 5, 5), (9, 4, 5, 5), (1, 6, 5, 5)}
    assert (16, 6, 5, 5) in shapes.values()   # the table: the Gather's flat indices
    index = next(onnx.numpy_helper.to_array(t) for t in graph.initializer if tuple(t.dims) == (16, 6, 5, 5))
    assert index.dtype == np.int64
    connected = (index != index.max()).any(axis=(2, 3))   # absent connections point at the padded zero
    np.testing.assert_array_equal(connected.T, model.c3.connection_matrix())
    ops = [n.op_type for n in graph.node]
    assert "Gather" in ops and ops[-5:-1] == ["Sub", "Mul", "ReduceSum", "Mul"]   # RBF: sum (x - w)^2, / -8
    prototypes = model.output.prototypes.numpy()
    assert any(onnx.numpy_helper.to_array(t).reshape(-1).tolist() == prototypes.reshape(-1).tolist()
               for t in graph.initializer if np.prod(t.dims) == prototypes.size)
