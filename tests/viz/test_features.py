"""viz.filters and viz.activations: the arrays drawn are the weights and the layers' outputs."""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn, viz


def tile(grid, index, ncols, h, w):
    r, c = divmod(index, ncols)
    return grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w]


def test_first_layer_filters_are_rgb_tiles_each_scaled_to_its_own_range():
    conv = nn.Conv2d(3, 10, 5)
    grid = viz.filter_grid(conv)
    assert grid.shape == (3 * 6 - 1, 4 * 6 - 1, 3)             # 10 filters on a 4-wide grid
    W = conv.weight.numpy().astype(np.float64)
    for k in range(10):
        f = W[k].transpose(1, 2, 0)
        np.testing.assert_allclose(tile(grid, k, 4, 5, 5), (f - f.min()) / (f.max() - f.min()), rtol=1e-12)
    assert np.all(grid[5, :] == 1.0) and np.all(tile(grid, 11, 4, 5, 5) == 1.0)   # white gaps, empty slots


def test_deeper_filters_are_raw_weights_filter_by_channel():
    W = np.random.default_rng(0).standard_normal((4, 12, 3, 3))
    grid = viz.filter_grid(W, max_filters=3, max_channels=5)
    assert grid.shape == (3 * 4 - 1, 5 * 4 - 1)
    for k in range(3):
        for c in range(5):
            np.testing.assert_array_equal(tile(grid, k * 5 + c, 5, 3, 3), W[k, c])
    assert np.isnan(grid[3, :]).all()


def test_filters_refuse_what_is_not_a_conv_weight():
    with pytest.raises(ValueError, match=r"viz.filters: expected a Conv2d or a weight K x C x KH x KW, "
                                         r"got shape \(4, 3\)"):
        viz.filter_grid(nn.Linear(3, 4))


def test_activations_are_the_layers_outputs_in_eval_mode_for_the_first_image():
    pytest.importorskip("matplotlib")
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2)).train()
    model[1].running_var.data[:] = 4.0
    x = minidl.randn(2, 1, 8, 8)
    figure = viz.activations(model, x, ["0", model[3]])
    conv = F.conv2d(x[:1], model[0].weight, model[0].bias).numpy()[0]
    np.testing.assert_allclose(figure.maps["0"], conv, rtol=1e-6)
    bn = (conv - 0.0) / np.sqrt(4.0 + 1e-5)                          # running statistics: eval mode
    pooled = np.maximum(bn, 0).reshape(3, 3, 2, 3, 2).max(axis=(2, 4))
    np.testing.assert_allclose(figure.maps["3"], pooled, rtol=1e-5, atol=1e-6)
    assert model.training and len(figure.axes) == 2
    assert np.ma.getmaskarray(figure.axes[0].images[0].get_array()).sum() > 0  # NaN gaps between the maps


def test_filters_figure_shows_the_grid():
    pytest.importorskip("matplotlib")
    conv = nn.Conv2d(3, 8, 3)
    np.testing.assert_array_equal(viz.filters(conv).axes[0].images[0].get_array(), viz.filter_grid(conv))
    deep = nn.Conv2d(8, 4, 3)
    np.testing.assert_array_equal(np.ma.filled(viz.filters(deep).axes[0].images[0].get_array(), np.nan),
                                  viz.filter_grid(deep))


def test_grey_first_layer_filters_are_one_tile_each_on_a_square_grid():
    W = np.random.default_rng(1).standard_normal((6, 1, 5, 5))
    grid = viz.filter_grid(W)
    assert grid.shape == (2 * 6 - 1, 3 * 6 - 1)
    for k in range(6):
        np.testing.assert_array_equal(tile(grid, k, 3, 5, 5), W[k, 0])
