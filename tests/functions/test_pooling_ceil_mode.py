"""max_pool2d and avg_pool2d with ceil_mode and a kernel larger than the padded input, which PyTorch
allows while the one window overhangs by less than the stride: the issue's example, PyTorch over generated
configurations (output size, values, gradients and refusals, float64), boundary cases and gradient checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functions as F
import minidl.nn as nn
from tests.helpers import check_grad, t64, tie_free, to_torch, torch_or_skip


def test_issue_max_pool2d_kernel_larger_than_the_input_with_ceil_mode():
    # The issue's example: PyTorch gives [6, 7]; minidl refused the 3x3 kernel on 2 rows.
    x = t64(np.arange(8.0).reshape(1, 1, 2, 4))
    y, indices = F.max_pool2d(x, 3, 2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y.data, [[[[6.0, 7.0]]]])
    np.testing.assert_array_equal(indices.data, [[[[6, 7]]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data[0, 0], [[0, 0, 0, 0], [0, 0, 1, 1]])


def test_avg_pool2d_kernel_larger_than_the_input_divides_as_pytorch():
    # A 3x3/2 window over 2x4: it reaches row 3 of a 2-row input. Past the padded input (no padding here)
    # nothing counts, with or without count_include_pad: windows of 2x3 and 2x2 values.
    x = t64(np.arange(8.0).reshape(1, 1, 2, 4))
    expected = [[[[(0 + 1 + 2 + 4 + 5 + 6) / 6, (2 + 3 + 6 + 7) / 4]]]]
    for count_include_pad in (True, False):
        y = F.avg_pool2d(x, 3, 2, ceil_mode=True, count_include_pad=count_include_pad)
        np.testing.assert_allclose(y.data, expected, rtol=1e-14)
    # One row padded to 3 under a 4x4/3 window: the divisor counts the padding (3 rows) but not the
    # overhang past the padded input (PyTorch's rule); without count_include_pad only the real values.
    x = t64(np.arange(4.0).reshape(1, 1, 1, 4))
    y = F.avg_pool2d(x, 4, 3, padding=1, ceil_mode=True)
    np.testing.assert_allclose(y.data, [[[[(0 + 1 + 2) / (3 * 4), (2 + 3) / (3 * 3)]]]], rtol=1e-14)
    y = F.avg_pool2d(x, 4, 3, padding=1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y.data, [[[[(0 + 1 + 2) / 3, (2 + 3) / 2]]]], rtol=1e-14)


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((1, 2, 2, 4), 3, 2, 0),        # the issue's
    ((2, 1, 1, 1), 3, 3, 1),        # one pixel, padded to 3: a 3x3 window just fits, stride 3
    ((1, 1, 1, 1), 2, 2, 0),        # one pixel, a 2x2 window overhanging by 1 (GoogLeNet-style maxpool4)
    ((1, 2, 3, 2), (5, 4), (4, 3), (2, 0)),
    ((1, 1, 5, 4), 4, 3, (1, 2)),
])
def test_oversized_windows_gradcheck(shape, kernel, stride, padding):
    x = tie_free(shape)
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=True)
    check_grad(lambda t: F.max_pool2d(t, **args), x, eps=1e-6)
    for count_include_pad in (True, False):
        check_grad(lambda t: F.avg_pool2d(t, **args, count_include_pad=count_include_pad), x)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("shape, kernel, stride, ceil_mode", [
    ((1, 1, 1, 1), 3, 2, True),     # overhangs by 2, the stride: no window starts inside
    ((1, 1, 2, 4), 3, 2, False),    # without ceil_mode the kernel must fit
    ((1, 1, 2, 2), 5, 2, True),
])
def test_windows_pytorch_refuses_are_refused_in_words(pool, shape, kernel, stride, ceil_mode):
    with pytest.raises(ValueError, match=rf"{pool.__name__}: kernel \({kernel}, {kernel}\) is larger than the "
                                         rf"padded input {shape[2]}x{shape[3]}"):
        pool(t64(shape), kernel, stride, ceil_mode=ceil_mode)


@st.composite
def pool_configs(draw):
    """Inputs from a stride smaller than the padded kernel to a few pixels larger, so that with ceil_mode the
    kernel often exceeds the padded input; some of these PyTorch refuses (an overhang of the stride or more,
    or any overhang without ceil_mode)."""
    kernel = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = tuple(draw(st.sampled_from([0, 0, k // 2])) for k in kernel)
    # How far the kernel overhangs the padded input: up to the stride (refused), or negative (it fits).
    overhang = [draw(st.integers(-2, s)) for s in stride]
    H, W = (max(1, k - 2 * p - o) for k, p, o in zip(kernel, padding, overhang))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W)
    return dict(shape=shape, kernel_size=kernel, stride=stride, padding=padding,
                ceil_mode=draw(st.sampled_from([True, True, False])))


@settings(max_examples=150)
@given(pool_configs(), st.booleans())
def test_pooling_matches_torch(cfg, count_include_pad):
    torch = torch_or_skip()
    x = tie_free(cfg["shape"], np.random.default_rng(0))
    args = {k: v for k, v in cfg.items() if k != "shape"}
    avg_args = dict(count_include_pad=count_include_pad)
    for ours, theirs, extra in [(F.max_pool2d, torch.nn.functional.max_pool2d, {}),
                                (F.avg_pool2d, torch.nn.functional.avg_pool2d, avg_args)]:
        xt = to_torch(torch, x, requires_grad=True)
        try:
            y_torch = theirs(xt, **args, **extra)
        except RuntimeError:
            with pytest.raises(ValueError, match=ours.__name__):
                ours(t64(x), **args, **extra)
            continue
        g = np.random.default_rng(1).standard_normal(tuple(y_torch.shape))
        y_torch.backward(torch.tensor(g))
        xm = t64(x)
        y = ours(xm, **args, **extra)
        assert y.shape == tuple(y_torch.shape)
        np.testing.assert_allclose(y.data, y_torch.detach().numpy(), rtol=1e-12, atol=1e-12)
        y.backward(minidl.Tensor(g))
        np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", [nn.MaxPool2d(3, 2, ceil_mode=True), nn.AvgPool2d(3, 2, ceil_mode=True)])
def test_layers_take_the_oversized_window_in_float32(layer):
    y = layer(minidl.randn(2, 3, 2, 4))
    assert y.shape == (2, 3, 1, 2) and y.dtype == np.float32
