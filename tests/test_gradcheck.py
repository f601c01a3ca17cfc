"""minidl.gradcheck must catch wrong gradients, not only pass right ones."""
import numpy as np
import pytest

import minidl
from minidl.gradcheck import GradcheckError, gradcheck
from minidl.tensor import Function


class WrongSquare(Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * 2.1 * self.x   # off by 5%


def test_catches_a_wrong_gradient_and_names_the_element():
    x = minidl.Tensor(np.linspace(0.5, 1.5, 6).reshape(2, 3), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 \(2, 3\), element"):
        gradcheck(lambda t: WrongSquare()(t), [x])
    assert not gradcheck(lambda t: WrongSquare()(t), [x], mode="random", raise_exception=False)


def test_passes_a_right_gradient_in_both_modes():
    x = minidl.Tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    assert gradcheck(lambda t: (t * t * t).sum(axis=1), [x], mode="full")
    assert gradcheck(lambda t: (t * t * t).sum(axis=1), [x], mode="random")


def test_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2, [minidl.randn(3, requires_grad=True)])


def test_gradcheck_nudges_non_contiguous_inputs():
    # a transposed array: the checker must perturb the elements the function reads, not a copy of them
    data = np.random.default_rng(3).standard_normal((3, 4)).T
    x = minidl.Tensor(data, requires_grad=True)
    assert gradcheck(lambda t: (t * t).sum(dim=0), [x])
