"""Pooling ops: gradient checks over generated configurations (tie-free inputs for max pooling), the
output-size rule with ceil_mode, the tie rule, and the pooling switches round trip."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.functions as F
from tests.helpers import check_grad, t64, tie_free


@st.composite
def pool_configs(draw):
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2)))
    H = draw(st.integers(max(1, KH - 2 * padding[0]), 7))
    W = draw(st.integers(max(1, KW - 2 * padding[1]), 7))
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), kernel=(KH, KW), stride=stride,
                padding=padding, ceil_mode=draw(st.booleans()))


def _expected_size(size, k, s, p, ceil_mode):
    """Count window starts directly: the window inside the padded input, or, with ceil_mode, a last
    window that hangs over the end but still starts inside the input (PyTorch's rule)."""
    count = 0
    for start in range(-p, size + p):
        if (start + p) % s:
            continue
        if start + k <= size + p or (ceil_mode and start < size and start - s + k < size + p):
            count += 1
    return count


@given(pool_configs())
def test_max_pool2d(cfg):
    x = tie_free(cfg["shape"], scale=0.1)
    args = dict(kernel_size=cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"])
    y = F.max_pool2d(t64(x), **args)
    for axis in (0, 1):
        assert y.shape[2 + axis] == _expected_size(cfg["shape"][2 + axis], cfg["kernel"][axis], cfg["stride"][axis],
                                                   cfg["padding"][axis], cfg["ceil_mode"])
    check_grad(lambda t: F.max_pool2d(t, **args), x, eps=1e-6)


@given(pool_configs(), st.booleans())
def test_avg_pool2d(cfg, count_include_pad):
    x = np.random.default_rng(0).standard_normal(cfg["shape"])
    args = dict(kernel_size=cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"],
                count_include_pad=count_include_pad)
    check_grad(lambda t: F.avg_pool2d(t, **args), x)
    y = F.avg_pool2d(t64(x), **args)
    assert y.shape == F.max_pool2d(t64(x), cfg["kernel"], cfg["stride"], cfg["padding"], ceil_mode=cfg["ceil_mode"]).shape


def test_avg_pool2d_known_values():
    x = t64(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_allclose(F.avg_pool2d(x, 2).data[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    # padding 1, 3x3 windows at the corner: 4 real values out of 9
    corner = F.avg_pool2d(x, 3, stride=3, padding=1, count_include_pad=False).data[0, 0, 0, 0]
    assert corner == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert F.avg_pool2d(x, 3, stride=3, padding=1).data[0, 0, 0, 0] == pytest.approx((0 + 1 + 4 + 5) / 9)


def test_max_pool_ties_go_to_the_first_element_in_the_window():
    x = t64(np.ones((1, 1, 2, 2)))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.data.item() == 0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data[0, 0], [[1, 0], [0, 0]])


def test_overlapping_pool_windows_accumulate_gradient():
    # AlexNet's overlapping pooling: a 3x3/2 window; the centre max wins in several windows
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 10
    t = t64(x)
    F.max_pool2d(t, 3, stride=2).sum().backward()
    assert t.grad.data[0, 0, 2, 2] == 4


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (2, 1, 0)])
def test_max_unpool_puts_values_back_at_the_switches(kernel, stride, padding):
    x = tie_free((2, 3, 6, 6))
    y, idx = F.max_pool2d(t64(x), kernel, stride, padding, return_indices=True)
    up = F.max_unpool2d(y, idx, kernel, stride, padding, output_size=x.shape[2:]).data
    flat = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(up.reshape(2, 3, -1), idx.data.reshape(2, 3, -1), 2),
                                  np.take_along_axis(flat, idx.data.reshape(2, 3, -1), 2))
    assert np.count_nonzero(up) <= y.numel()
    check_grad(lambda t: F.max_unpool2d(t, idx, kernel, stride, padding, output_size=x.shape[2:]), y.data)


@pytest.mark.parametrize("out", [1, 2, 3, (2, 3)])
def test_adaptive_avg_pool2d(out):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    check_grad(lambda t: F.adaptive_avg_pool2d(t, out), x)
    if out == 1:
        np.testing.assert_allclose(F.adaptive_avg_pool2d(t64(x), 1).data[..., 0, 0], x.mean(axis=(2, 3)))


def test_global_avg_pool_of_divisible_size_uses_avg_pool():
    x = minidl.randn(2, 4, 6, 6)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 3).data, F.avg_pool2d(x, 2).data, rtol=1e-6)
