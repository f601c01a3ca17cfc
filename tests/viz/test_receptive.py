"""viz.receptive_field: paths from each input pixel to one unit; support equals minidl.receptive_field."""
import numpy as np
import pytest

import minidl
from minidl import nn, viz


def conv(k, **kw):
    return nn.Conv2d(1, 1, k, **kw)


def test_three_3x3_convolutions_give_the_pyramid_and_one_7x7_a_flat_square():
    counts = viz.path_count_map([conv(3, padding=1)] * 3, input_size=15)
    row = np.array([1, 3, 6, 7, 6, 3, 1], dtype=float)          # box * box * box, by hand
    expected = np.zeros((15, 15))
    expected[4:11, 4:11] = np.outer(row, row)
    np.testing.assert_array_equal(counts, expected)
    flat = viz.path_count_map([conv(7, padding=3)], input_size=15)
    assert (flat[4:11, 4:11] == 1).all() and flat.sum() == 49


def test_support_equals_the_receptive_field_arithmetic_with_strides_pooling_and_dilation():
    layers = [conv(3), conv(3, dilation=2), nn.MaxPool2d(2), conv(5, stride=2), nn.MaxPool2d(3, stride=2)]
    counts = viz.path_count_map(layers, input_size=(61, 61))
    rows, cols = np.nonzero(counts)
    rf = minidl.receptive_field(nn.Sequential(*layers), (1, 61, 61)).receptive_field
    assert (np.ptp(rows) + 1, np.ptp(cols) + 1) == rf == (24, 24)         # 3, 7, 8, 16, 24 by hand


def test_too_small_an_input_or_no_kernel_is_said_in_words():
    with pytest.raises(ValueError, match="leaves no output unit"):
        viz.path_count_map([conv(7)], input_size=5)
    with pytest.raises(ValueError, match="no layer with a kernel_size"):
        viz.path_count_map([nn.ReLU()])


def test_figure_draws_the_counts():
    pytest.importorskip("matplotlib")
    figure = viz.receptive_field()
    assert [a.get_title().split("\n")[0] for a in figure.axes] == ["one 3x3", "two 3x3", "three 3x3", "one 7x7"]
    assert figure.axes[2].get_title().endswith("field 7x7, 27 weights")
    assert figure.axes[3].get_title().endswith("field 7x7, 49 weights")
    np.testing.assert_array_equal(np.ma.filled(figure.axes[2].images[0].get_array(), 0), figure.maps["three 3x3"])
