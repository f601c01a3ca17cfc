"""The engine: accumulation, graph freeing, no_grad, detach, retain_graph, deep graphs, errors."""
import gc
import weakref

import numpy as np
import pytest

import minidl
import minidl.functions as F


def test_gradients_accumulate_across_backward_calls_and_reset():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 4])
    x.zero_grad()
    assert x.grad is None


def test_a_tensor_used_twice_gets_both_contributions():
    x = minidl.tensor([3.0], requires_grad=True)
    y = x * x + x          # dy/dx = 2x + 1
    y.backward()
    assert x.grad.item() == 7.0


def test_second_backward_through_a_freed_graph_fails_clearly():
    x = minidl.tensor([1.0], requires_grad=True)
    y = F.exp(x * 2)
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = minidl.tensor([1.0], requires_grad=True)
    y = F.exp(x * 2)
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == pytest.approx(4 * np.exp(2), rel=1e-6)


def test_graph_is_freed_after_backward():
    """No memory growth over a training loop: saved arrays are released once backward has run."""
    x = minidl.randn(64, 64, requires_grad=True)
    hidden = F.relu(x @ x)
    function = weakref.ref(hidden.creator)
    loss = F.tanh(hidden).sum()
    loss.backward()
    assert function().inputs is None and not hasattr(function(), "mask")
    del hidden, loss
    gc.collect()
    assert function() is None


def test_no_grad_builds_no_graph():
    x = minidl.randn(3, requires_grad=True)
    with minidl.no_grad():
        y = x * 2
    assert y.creator is None and not y.requires_grad
    assert minidl.is_grad_enabled()


def test_detach_cuts_the_graph():
    x = minidl.randn(3, requires_grad=True)
    y = (x * 2).detach()
    assert y.creator is None and not y.requires_grad
    np.testing.assert_array_equal(y.data, x.data * 2)


def test_retain_grad_on_intermediate():
    x = minidl.tensor([2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).backward()
    assert h.grad.item() == 12.0 and x.grad.item() == 36.0


def test_deep_graph_has_no_recursion_limit():
    x = minidl.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 5000, rel=1e-4)


def test_backward_needs_a_scalar_or_a_gradient():
    x = minidl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="single-element"):
        (x * 2).backward()
    (x * 2).backward(np.ones(3, dtype=np.float32))
    np.testing.assert_allclose(x.grad.data, 2)


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        minidl.tensor([1, 2, 3], requires_grad=True)


def test_integer_inputs_to_float_ops_fail_in_words():
    with pytest.raises(TypeError, match=r"conv2d: expected a floating-point tensor, got dtype int64"):
        F.conv2d(minidl.tensor(np.ones((1, 1, 3, 3), dtype=np.int64)), minidl.ones(1, 1, 3, 3))
    with pytest.raises(TypeError, match="exp: expected a floating-point"):
        F.exp(minidl.tensor([1, 2]))


def test_dtypes_and_factories():
    assert minidl.tensor([1.0, 2.0]).dtype == np.float32
    assert minidl.tensor(np.zeros(2)).dtype == np.float64
    assert minidl.tensor([1, 2]).dtype == np.int64
    assert minidl.zeros(2, 3).shape == (2, 3) and minidl.ones((4,)).dtype == np.float32
    assert minidl.arange(5).dtype == np.int64 and minidl.arange(0.0, 1.0, 0.25).dtype == np.float32
    minidl.manual_seed(7)
    a = minidl.randn(3, 3).numpy()
    minidl.manual_seed(7)
    np.testing.assert_array_equal(a, minidl.randn(3, 3).numpy())
    assert 0 <= minidl.rand(100).numpy().min() and minidl.rand(100).numpy().max() < 1


def test_item_numpy_and_repr():
    x = minidl.tensor([[1.5]], requires_grad=True)
    assert x.item() == 1.5 and isinstance(x.numpy(), np.ndarray) and x.device == "cpu"
    assert "requires_grad=True" in repr(x) and "grad_fn=<Mul>" in repr(x * 2)
    with pytest.raises(ValueError, match="single-element"):
        minidl.ones(2).item()


def test_to_dtype_is_differentiable():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [2, 4])


def test_gpu_device_without_cupy_fails_clearly():
    if minidl.backend.gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="gpu"):
        minidl.ones(2).to("gpu")
    with pytest.raises(ValueError, match="unknown device"):
        minidl.ones(2).to("tpu")
