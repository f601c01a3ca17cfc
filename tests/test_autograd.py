"""The engine: accumulation, graph freeing, no_grad, detach, retain_graph, deep graphs, errors."""
import gc
import threading
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


def test_grad_mode_is_per_thread_and_each_thread_starts_with_it_on():
    """no_grad() in one thread leaves another thread's grad mode alone; a new thread starts in grad mode
    even while the thread that started it is inside no_grad()."""
    seen = []

    def worker():
        x = minidl.ones(2, requires_grad=True)
        seen.append((minidl.autograd.is_grad_enabled(), (x * 2).requires_grad))
        with minidl.no_grad():
            seen.append((minidl.autograd.is_grad_enabled(), (x * 2).requires_grad))
        seen.append((minidl.autograd.is_grad_enabled(), (x * 2).requires_grad))

    with minidl.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert not minidl.autograd.is_grad_enabled()
    assert seen == [(True, True), (False, False), (True, True)]
    assert minidl.autograd.is_grad_enabled()


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


def test_relu_and_add_do_not_keep_the_tensors_they_read():
    """An input made by another Function is held through that Function (issue 15: a ReLU kept the batch-norm
    output it read alive until backward, ~285 MB of ResNet-18's step at batch 128): the array is freed with
    the caller's last reference, and the gradients are the same."""
    x = minidl.tensor(np.array([[-1.5, 0.5, 2.0], [3.0, -0.25, 1.0]]), requires_grad=True)
    h = x * 2                      # made by Mul; read below by ReLU and by Add, then dropped
    h_ref, array_ref = weakref.ref(h), weakref.ref(h.data)
    y = F.relu(h) + h
    del h
    gc.collect()
    assert h_ref() is None and array_ref() is None
    relu = y.creator.inputs[0].creator
    assert relu.inputs[0] is y.creator.inputs[1]              # one stand-in for the freed output, shared
    standin = relu.inputs[0].data
    assert standin.strides == (0, 0) and standin.shape == (2, 3) and standin.dtype == x.dtype  # no memory behind it
    assert not standin.any() and not standin.flags.writeable
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * ((x.numpy() > 0) + 1.0))


def test_a_kept_input_is_the_tensor_itself():
    x = minidl.tensor(np.array([1.0, -2.0]), requires_grad=True)
    h = x * 3
    y = F.relu(h)
    assert y.creator.inputs[0] is h                           # alive: the same Tensor, not a stand-in
    h.retain_grad()
    y.sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [1.0, 0.0])


def test_second_order_through_a_freed_relu_input():
    x = minidl.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)

    def f(x):
        h = x * x                  # dropped after relu reads it
        return (F.relu(h) * x).sum()

    g, = minidl.grad(f(x), x, create_graph=True)              # d/dx (x^3) = 3x^2 where x^2 > 0
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def test_every_function_whose_backward_graph_reads_its_output_keeps_it():
    """A Function that reads no input arrays (keeps_inputs False) holds an input through its creator, so the
    input's Tensor may be freed; a creator whose backward_graph needs that Tensor (output_tensor) must say
    keeps_output, or second-order gradients through it fail once the Tensor is gone."""
    import inspect

    import minidl.functions  # noqa: F401  (every Function subclass defined)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    readers = [cls for cls in set(subclasses(minidl.Function)) if "backward_graph" in cls.__dict__
               and "output_tensor(" in inspect.getsource(cls.backward_graph)]
    assert len(readers) >= 7
    assert [cls.__name__ for cls in readers if not cls.keeps_output] == []


@pytest.mark.parametrize("op", ["mul", "div"])
def test_mul_and_div_make_no_gradient_for_an_input_that_needs_none(op):
    """A constant factor (or the images) needs no gradient: backward returns None for it, and the gradient
    of the other input is the same as when both need one."""
    from minidl import ops
    rng = np.random.default_rng(3)
    a = minidl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    const = minidl.tensor(rng.uniform(0.5, 2.0, (1, 3)))
    both = minidl.tensor(const.numpy(), requires_grad=True)
    gy = rng.standard_normal((4, 3))
    y = getattr(ops, op)(a, const)
    ga, gc = y.creator.backward(gy)
    assert gc is None
    y2 = getattr(ops, op)(a, both)
    ga2, gb2 = y2.creator.backward(gy)
    np.testing.assert_array_equal(ga, ga2)
    assert gb2.shape == (1, 3)
    y3 = getattr(ops, op)(const, a)                   # the other side
    assert y3.creator.backward(gy)[0] is None
    y.sum().backward()
    expected = np.ones((4, 3)) * (const.numpy() if op == "mul" else 1 / const.numpy())
    np.testing.assert_allclose(a.grad.numpy(), expected)
