"""The GPU tests' one comparison: run the same computation on the CPU and on a device, compare outputs and
gradients. Used by tests/gpu/test_*_gpu.py with device 'gpu', and by tests/gpu/test_harness_on_cpu.py with
device 'cpu' (CI: the harness and the case tables are exercised before any GPU session runs them).

Random ops (dropout, drop-path, FractalNet's joins) draw from minidl's NumPy generator on the CPU, also for
GPU tensors, so reseeding before each run gives both devices the same masks.
"""
import numpy as np

import minidl
import minidl.functions as F
from minidl import backend

FLOAT32_TOL = {"forward": 1e-4, "grad": 1e-3}   # relative to the largest CPU value of the same array
FLOAT64_TOL = {"forward": 1e-10, "grad": 1e-9}


def host(a):
    """A NumPy copy of an array or a tensor's data, from either device."""
    return backend.as_device_array(a.data if isinstance(a, minidl.Tensor) else a, "cpu")


def relative_error(got, expected, floor=0.0):
    """max |got - expected| / max(max |expected|, floor): 0 for two empty arrays."""
    got, expected = np.asarray(host(got), np.float64), np.asarray(host(expected), np.float64)
    assert got.shape == expected.shape, f"shapes differ: {got.shape} vs {expected.shape}"
    if expected.size == 0:
        return 0.0
    scale = max(float(np.abs(expected).max()), floor, 1e-30)
    return float(np.abs(got - expected).max()) / scale


def as_outputs(result):
    """A function's or a model's result as a flat list of tensors (GoogLeNet's aux heads, split's pieces)."""
    if isinstance(result, minidl.Tensor):
        return [result]
    outputs = []
    for r in result:
        outputs += as_outputs(r)
    return outputs


def run(fn, arrays, device, grad, seed=0):
    """``fn(*tensors)`` on ``device`` with leaves made from ``arrays``; backpropagate a fixed random cotangent.

    Float arrays whose position is in ``grad`` require gradients. Returns (outputs, input gradients), all
    as NumPy arrays (a gradient that never arrived is None).
    """
    leaves = [minidl.tensor(a, device=device, requires_grad=i in grad and a.dtype.kind == "f")
              for i, a in enumerate(arrays)]
    minidl.manual_seed(seed)
    outputs = as_outputs(fn(*leaves))
    differentiable = [y for y in outputs if y.requires_grad]
    if differentiable:
        rng = np.random.default_rng(seed + 1)
        total = None
        for y in differentiable:
            cotangent = minidl.tensor(rng.standard_normal(y.shape).astype(y.dtype), device=device)
            term = (y * cotangent).sum()
            total = term if total is None else total + term
        total.backward()
    grads = [None if t.grad is None else host(t.grad) for t in leaves]
    return [host(y) for y in outputs], grads


def assert_same_on_devices(fn, arrays, device, grad=None, name="", tol=None):
    """``fn`` gives the same outputs and input gradients on ``device`` as on the CPU, within ``tol``."""
    grad = range(len(arrays)) if grad is None else grad
    dtype = next((a.dtype for a in arrays if a.dtype.kind == "f"), np.dtype(np.float32))
    tol = tol or (FLOAT64_TOL if dtype == np.float64 else FLOAT32_TOL)
    expected_out, expected_grads = run(fn, arrays, "cpu", grad)
    got_out, got_grads = run(fn, arrays, device, grad)
    assert len(got_out) == len(expected_out), f"{name}: {len(got_out)} outputs on {device}, {len(expected_out)} on cpu"
    for i, (g, e) in enumerate(zip(got_out, expected_out)):
        assert g.dtype == e.dtype, f"{name}: output {i} is {g.dtype} on {device}, {e.dtype} on cpu"
        err = relative_error(g, e)
        assert err <= tol["forward"], f"{name}: output {i} differs by {err:.2e} (relative) on {device}"
    for i, (g, e) in enumerate(zip(got_grads, expected_grads)):
        assert (g is None) == (e is None), f"{name}: input {i} has a gradient on one device only"
        if e is not None:
            err = relative_error(g, e)
            assert err <= tol["grad"], f"{name}: gradient of input {i} differs by {err:.2e} (relative) on {device}"


def assert_case_same_on_devices(case, dtype, device):
    """An op table case (tests/functions/op_cases.py) in ``dtype``: the same on ``device`` as on the CPU."""
    arrays = case.arrays(dtype)
    grad = [i for i, a in enumerate(arrays) if case.requires_grad(i, a)]
    assert_same_on_devices(lambda *tensors: case.call(F, *tensors), arrays, device, grad, name=case.id)


def model_step(model, x, device, seed=0):
    """Forward ``x`` through ``model`` (already on ``device``), backpropagate a fixed random cotangent.

    Returns (outputs, {parameter name: gradient}) as NumPy arrays.
    """
    for p in model.parameters():
        p.grad = None
    minidl.manual_seed(seed)
    outputs, _ = run(lambda t: model(t), [x], device, grad=())
    grads = {name: None if p.grad is None else host(p.grad) for name, p in model.named_parameters()}
    return outputs, grads


def assert_model_same_on_devices(build, x, device, tol=FLOAT32_TOL, train=True):
    """A model built twice by ``build()`` (same weights) agrees on the CPU and on ``device``.

    Outputs within ``tol['forward']`` of the largest logit; each parameter's gradient within ``tol['grad']``
    of its largest CPU entry, floored at 1e-3 of the largest gradient entry in the whole model (parameters
    whose gradient nearly cancels would otherwise compare rounding noise with rounding noise).
    """
    cpu_model, device_model = build(), build()
    device_model.load_state_dict(cpu_model.state_dict())
    device_model.to(device)
    cpu_model.train(train)
    device_model.train(train)
    expected_out, expected_grads = model_step(cpu_model, x, "cpu")
    got_out, got_grads = model_step(device_model, x, device)
    for i, (g, e) in enumerate(zip(got_out, expected_out)):
        err = relative_error(g, e)
        assert err <= tol["forward"], f"output {i} differs by {err:.2e} (relative) on {device}"
    missing = sorted(n for n in expected_grads if (expected_grads[n] is None) != (got_grads[n] is None))
    assert not missing, f"gradients present on one device only: {missing}"
    largest = max((float(np.abs(g).max()) for g in expected_grads.values() if g is not None and g.size), default=0.0)
    worst = max(((relative_error(got_grads[n], e, floor=1e-3 * largest), n)
                 for n, e in expected_grads.items() if e is not None), default=(0.0, ""))
    assert worst[0] <= tol["grad"], f"gradient of {worst[1]} differs by {worst[0]:.2e} (relative) on {device}"
    for name, buffer in cpu_model.named_buffers():      # BatchNorm's running statistics, updated in place
        err = relative_error(dict(device_model.named_buffers())[name], buffer)
        assert err <= tol["forward"], f"buffer {name} differs by {err:.2e} (relative) on {device}"
