"""One parser of kernel sizes, strides, paddings and dilations (minidl.functions._checks.pair) for the
functions and the layers: the same errors, with the same types, from F.conv2d and nn.Conv2d."""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn
from minidl.functions._checks import pair


def test_ints_and_pairs():
    assert pair(3, "op", "stride") == (3, 3)
    assert pair((2, 5), "op", "stride") == (2, 5)
    assert pair([np.int64(2), 1], "op", "stride") == (2, 1)
    assert all(type(v) is int for v in pair(np.int32(4), "op", "stride"))


@pytest.mark.parametrize("value", [2.0, (2.5, 1), (1, 2, 3), (1,), "12", ("a", 1)])
def test_not_an_int_or_a_pair_is_a_type_error_everywhere(value):
    x, W = minidl.randn(1, 1, 8, 8), minidl.randn(1, 1, 3, 3)
    for call, op in ((lambda: F.conv2d(x, W, stride=value), "conv2d"),
                     (lambda: nn.Conv2d(1, 1, 3, stride=value), "Conv2d"),
                     (lambda: F.max_pool2d(x, 2, stride=value), "max_pool2d"),
                     (lambda: nn.MaxPool2d(2, stride=value), "MaxPool2d")):
        with pytest.raises(TypeError, match=rf"^{op}: stride must be an int or a pair of ints, got "):
            call()


@pytest.mark.parametrize("value, shown", [(0, "0"), ((1, 0), r"\(1, 0\)"), (-2, "-2")])
def test_below_the_minimum_is_a_value_error_everywhere(value, shown):
    x, W = minidl.randn(1, 1, 8, 8), minidl.randn(1, 1, 3, 3)
    for call, op in ((lambda: F.conv2d(x, W, dilation=value), "conv2d"),
                     (lambda: nn.Conv2d(1, 1, 3, dilation=value), "Conv2d")):
        with pytest.raises(ValueError, match=rf"^{op}: dilation must be positive, got {shown}$"):
            call()
    with pytest.raises(ValueError, match=r"^Conv2d: padding must be >= 0, got -1$"):
        nn.Conv2d(1, 1, 3, padding=-1)
