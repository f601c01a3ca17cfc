"""Every zoo model on the GPU against the CPU, and a few training steps of LeNet-5 and ResNet-20 (float32).

Forward outputs within 1e-4 and parameter gradients within 1e-3 (relative, see harness.py), in training
mode (batch statistics, dropout and drop-path with the same masks on both devices). Skipped without CuPy
and a CUDA device.
"""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import optim
from minidl.backend import gpu_available
from minidl.models import list_models
from tests.gpu.harness import assert_model_same_on_devices, host, relative_error
from tests.gpu.model_cases import builder, input_for

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")


@pytest.mark.parametrize("name", list_models())
def test_model_matches_cpu(name):
    assert_model_same_on_devices(builder(name), input_for(name), "gpu")


@pytest.mark.parametrize("name", ["lenet5", "googlenet"])
def test_model_matches_cpu_in_eval_mode(name):
    assert_model_same_on_devices(builder(name), input_for(name), "gpu", train=False)


def train(name, device, steps, seed=0):
    """``steps`` SGD steps (momentum 0.9, weight decay) on one fixed batch; returns (losses, parameters)."""
    model = builder(name)().to(device)
    rng = np.random.default_rng(seed)
    x = minidl.tensor(input_for(name, seed).repeat(8, axis=0), device=device)
    target = minidl.tensor(rng.integers(0, 10, x.shape[0]), device=device)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    losses = []
    for _ in range(steps):
        minidl.manual_seed(seed)
        loss = F.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {n: host(p) for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_training_steps_match_cpu(name):
    steps = 8
    gpu_losses, gpu_params = train(name, "gpu", steps)
    cpu_losses, cpu_params = train(name, "cpu", steps)
    _, start = train(name, "cpu", 0)
    assert gpu_losses[-1] < gpu_losses[0], f"{name}: loss did not decrease on the GPU: {gpu_losses}"
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-3)
    for n in cpu_params:   # compare the updates, which are small next to the weights themselves
        err = relative_error(gpu_params[n] - start[n], cpu_params[n] - start[n])
        assert err <= 1e-2, f"{name}: update of {n} differs by {err:.2e} (relative) after {steps} steps"
