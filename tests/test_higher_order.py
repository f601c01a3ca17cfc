"""Higher-order gradients (issue 17): backward(create_graph=True), minidl.grad, gradgradcheck."""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
import minidl.functions as F
from minidl import Function, GradcheckError, gradgradcheck


def leaf(shape, low=-2.0, high=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return minidl.tensor(rng.uniform(low, high, size=shape), dtype="float64", requires_grad=True)


shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
few = settings(max_examples=4, deadline=None)


# -- the mechanism ------------------------------------------------------------------------------------
def test_backward_with_create_graph_gives_a_differentiable_grad():
    x = minidl.tensor([1.5, -2.0], dtype="float64", requires_grad=True)
    (x * x * x).sum().backward(create_graph=True)
    g = x.grad
    assert g.creator is not None and g.requires_grad            # PyTorch: x.grad.grad_fn is not None
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    x.grad = None
    g.sum().backward()                                           # d/dx sum(3 x^2) = 6 x
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_second_order_accumulates_out_of_place_and_first_order_is_unchanged():
    x = minidl.tensor([2.0], dtype="float64", requires_grad=True)
    (x * x).sum().backward(create_graph=True)
    first = x.grad
    (x * x * x).sum().backward(create_graph=True)
    assert x.grad is not first and first.item() == 4.0          # out of place: the first grad is intact
    assert x.grad.item() == 4.0 + 12.0


def test_grad_returns_a_tuple_and_leaves_dot_grad_alone():
    x = leaf((3,))
    y = leaf((3,), seed=1)
    out = (F.exp(x) * y).sum()
    gx, gy = minidl.grad(out, [x, y])
    assert x.grad is None and y.grad is None
    np.testing.assert_allclose(gx.data, np.exp(x.data) * y.data)
    np.testing.assert_allclose(gy.data, np.exp(x.data))
    assert gx.creator is None and not gx.requires_grad           # no create_graph: a plain tensor


def test_grad_with_grad_outputs_and_several_outputs():
    x = leaf((2, 3))
    a, b = x * 2.0, F.exp(x)
    u, v = leaf((2, 3), seed=2), leaf((2, 3), seed=3)
    (g,) = minidl.grad([a, b], [x], grad_outputs=[u, v])
    np.testing.assert_allclose(g.data, 2 * u.data + np.exp(x.data) * v.data)


def test_grad_allow_unused():
    x, z = leaf((2,)), leaf((2,), seed=1)
    out = (x * x).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        minidl.grad(out, [x, z], retain_graph=True)
    gx, gz = minidl.grad(out, [x, z], allow_unused=True)
    assert gz is None
    np.testing.assert_allclose(gx.data, 2 * x.data)


def test_grad_with_respect_to_an_intermediate_tensor():
    x = leaf((3,))
    h = F.exp(x)
    out = (h * h).sum()
    (gh,) = minidl.grad(out, h)
    np.testing.assert_allclose(gh.data, 2 * h.data)


def test_differentiating_a_gradient_computed_without_create_graph_fails_clearly():
    x = leaf((3,))
    (x * x).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad.*create_graph=True"):
        x.grad.sum().backward()
    (g,) = minidl.grad((x * x).sum(), x)
    with pytest.raises(RuntimeError, match="element 0 .* does not require grad"):
        minidl.grad(g.sum(), x)


def test_retain_graph_defaults_to_create_graph():
    x = leaf((2,))
    y = F.exp(x).sum()
    y.backward(create_graph=True)      # retains the graph: a second backward works
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_an_op_without_backward_graph_names_itself():
    class Square(Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return 2 * gy * self.x

    x = leaf((2,))
    with pytest.raises(NotImplementedError, match="Square: second-order gradients .* not implemented"):
        Square()(x).sum().backward(create_graph=True)


def test_second_order_graph_is_freed_after_use():
    x = leaf((4,))
    (g,) = minidl.grad(F.exp(x).sum(), x, create_graph=True)
    node = weakref.ref(g.creator)
    (h,) = minidl.grad(g.sum(), x)
    np.testing.assert_allclose(h.data, np.exp(x.data))
    assert node().inputs is None                    # released by the backward that used it
    del g
    gc.collect()
    assert node() is None


# -- gradgradcheck ------------------------------------------------------------------------------------
class _Square(Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return 2 * gy * self.inputs[0].data


def test_gradgradcheck_catches_a_backward_graph_that_disagrees_with_backward():
    class BadSquare(_Square):
        def backward_graph(self, gy):
            return gy * self.inputs[0] * 3.0      # wrong: should be 2

    with pytest.raises(GradcheckError, match=r"input 0 at element \(0,\) .* with create_graph=True"):
        gradgradcheck(lambda x: BadSquare()(x), [leaf((3,))])


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class DetachedSquare(_Square):
        def backward_graph(self, gy):
            return gy * self.inputs[0].detach() * 2.0      # right values, but not differentiable in x

    with pytest.raises(GradcheckError, match=r"gradgradcheck failed at input 0 \(3,\), element"):
        gradgradcheck(lambda x: DetachedSquare()(x), [leaf((3,))])


@few
@given(shapes, st.booleans())
def test_gradgradcheck_add_mul(shape, broadcast):
    a = leaf(shape)
    b = leaf(shape[-1:] if broadcast else shape, seed=1)
    assert gradgradcheck(lambda a, b: a + b * a - b, [a, b])


@few
@given(shapes)
def test_gradgradcheck_exp_sum(shape):
    x = leaf(shape, -1, 1)
    assert gradgradcheck(lambda x: F.exp(x).sum(0) * F.exp(x).sum(), [x])
    assert gradgradcheck(lambda x: (x * x).sum(-1, keepdim=True) * x, [x])
