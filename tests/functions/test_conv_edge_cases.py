"""conv_transpose2d with output_padding >= stride (allowed while it is smaller than the dilation), and
conv2d's padding="same" / "valid": the issue's examples, PyTorch over generated configurations (forward
and backward in float64, refusals included), and float64 gradient checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functions as F
from tests.helpers import check_grad, t64, to_torch, torch_or_skip


def _torch_result(torch, fn, arrays):
    """fn on float64 torch copies of arrays: (output, gradients of sum(output * g)), or None if torch refuses."""
    tensors = [to_torch(torch, a, requires_grad=True) for a in arrays]
    try:
        y = fn(*tensors)
    except (RuntimeError, ValueError):
        return None
    g = np.random.default_rng(1).standard_normal(tuple(y.shape))
    y.backward(torch.tensor(g))
    return y.detach().numpy(), g, [t.grad.numpy() for t in tensors]


def _assert_matches_torch(torch, ours, theirs, arrays, op):
    """ours/theirs: functions of the tensors; both refuse, or both give the same output and gradients."""
    expected = _torch_result(torch, theirs, arrays)
    if expected is None:
        with pytest.raises(ValueError, match=op):
            ours(*[t64(a) for a in arrays])
        return
    y_torch, g, grads_torch = expected
    tensors = [t64(a) for a in arrays]
    y = ours(*tensors)
    assert y.shape == y_torch.shape
    np.testing.assert_allclose(y.data, y_torch, rtol=1e-10, atol=1e-10)
    y.backward(minidl.Tensor(g))
    for t, grad in zip(tensors, grads_torch):
        np.testing.assert_allclose(t.grad.data, grad, rtol=1e-10, atol=1e-10)


def test_issue_conv_transpose2d_dilation_2_output_padding_1():
    # The issue's example: stride 1, dilation 2, output_padding 1 raised an internal col2im error.
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((1, 1, 3, 3)), rng.standard_normal((1, 1, 3, 3))
    y = F.conv_transpose2d(t64(x), t64(W), dilation=2, output_padding=1)
    assert y.shape == (1, 1, 8, 8)   # PyTorch's shape: (3 - 1) + 2 (3 - 1) + 1 + 1
    # The last row and column lie past every window: nothing but zeros (no bias).
    np.testing.assert_array_equal(y.data[0, 0, 7], 0)
    np.testing.assert_array_equal(y.data[0, 0, :, 7], 0)
    # The rest is the output without output_padding.
    np.testing.assert_allclose(y.data[..., :7, :7], F.conv_transpose2d(t64(x), t64(W), dilation=2).data, rtol=1e-14)
    check_grad(lambda a, w: F.conv_transpose2d(a, w, dilation=2, output_padding=1), x, W)


@pytest.mark.parametrize("stride, padding, dilation, output_padding", [
    (1, 0, 2, 1),        # the issue's
    (1, 2, 3, 2),        # output_padding 2 >= stride, past padding 2: the output's last rows hold windows
    (2, 1, 3, (2, 1)),   # output_padding == stride in one dimension only
    (1, 3, 2, 1),        # padding larger than output_padding: the canvas is cut on both sides
    ((1, 2), 0, (4, 1), (3, 1)),
])
def test_conv_transpose2d_output_padding_past_the_stride_gradchecks(stride, padding, dilation, output_padding):
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(6)
    args = dict(stride=stride, padding=padding, dilation=dilation, output_padding=output_padding, groups=2)
    check_grad(lambda *t: F.conv_transpose2d(*t, **args), x, W, b)


@st.composite
def transpose_configs(draw):
    """(shapes of x, W and maybe b; keyword arguments) of small configurations, including output_padding up to
    max(stride, dilation) and paddings larger than the output, which PyTorch refuses: so must minidl."""
    groups = draw(st.sampled_from([1, 1, 2]))
    C, Kg = draw(st.integers(1, 2)) * groups, draw(st.integers(1, 2))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    refused = draw(st.integers(0, 5)) == 0    # now and then an output_padding PyTorch refuses
    output_padding = tuple(draw(st.integers(0, max(s, d) - (0 if refused else 1))) for s, d in zip(stride, dilation))
    shapes = [(draw(st.integers(1, 2)), C, draw(st.integers(1, 4)), draw(st.integers(1, 4))), (C, Kg, KH, KW)]
    if draw(st.booleans()):
        shapes.append((Kg * groups,))
    return shapes, dict(stride=stride, padding=padding, dilation=dilation, output_padding=output_padding,
                        groups=groups)


def _compare_with_torch(op, shapes, args, seed):
    """F.<op> against torch.nn.functional.<op> on random float64 arrays of these shapes."""
    torch = torch_or_skip()
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for shape in shapes]
    ours, theirs = getattr(F, op), getattr(torch.nn.functional, op)
    _assert_matches_torch(torch, lambda *t: ours(*t, **args), lambda *t: theirs(*t, **args), arrays, op)


@settings(max_examples=150)
@given(transpose_configs())
def test_conv_transpose2d_matches_torch(cfg):
    _compare_with_torch("conv_transpose2d", *cfg, seed=3)


def test_output_padding_not_smaller_than_stride_or_dilation_is_refused():
    x, W = t64((1, 1, 3, 3)), t64((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding \(2, 2\) must be smaller than either "
                                         r"stride \(2, 2\) or dilation \(1, 1\)"):
        F.conv_transpose2d(x, W, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="conv_transpose2d: output_padding"):
        F.conv_transpose2d(x, W, dilation=2, output_padding=(0, 2))


def test_conv_transpose2d_refuses_padding_strings():
    with pytest.raises(TypeError, match="conv_transpose2d: padding must be an int or a pair of ints, got 'same'"):
        F.conv_transpose2d(t64((1, 1, 3, 3)), t64((1, 1, 3, 3)), padding="same")


def test_issue_conv2d_padding_same():
    # The issue's example: padding="same" failed with "invalid literal for int() with base 10: 's'".
    rng = np.random.default_rng(4)
    x, W = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(t64(x), t64(W), padding="same")
    assert y.shape == (2, 4, 7, 6)
    np.testing.assert_allclose(y.data, F.conv2d(t64(x), t64(W), padding=1).data, rtol=1e-14)
    np.testing.assert_allclose(F.conv2d(t64(x), t64(W), padding="valid").data, F.conv2d(t64(x), t64(W)).data,
                               rtol=1e-14)


@pytest.mark.parametrize("kernel, dilation, groups", [
    ((4, 4), 1, 1),        # even: 3 rows of padding, 1 at the top and 2 at the bottom
    ((2, 3), (1, 2), 1),
    ((4, 2), (3, 1), 3),   # even span, grouped
    ((5, 4), 2, 3),        # odd kernel with an odd span, dilated
    ((3, 3), (2, 3), 1),
    ((4, 4), 1, 6),        # depthwise
])
def test_conv2d_padding_same_gradchecks_and_matches_explicit_padding(kernel, dilation, groups):
    rng = np.random.default_rng(5)
    x, W, b = rng.standard_normal((2, 6, 5, 6)), rng.standard_normal((6, 6 // groups) + kernel), rng.standard_normal(6)
    args = dict(padding="same", dilation=dilation, groups=groups)
    y = F.conv2d(t64(x), t64(W), t64(b), **args).data
    assert y.shape == (2, 6, 5, 6)
    # PyTorch's rule, written out: d (k - 1) rows of zeros in all, the odd one at the bottom/right.
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    total = [di * (k - 1) for k, di in zip(kernel, d)]
    padded = np.pad(x, ((0, 0), (0, 0), (total[0] // 2, total[0] - total[0] // 2),
                        (total[1] // 2, total[1] - total[1] // 2)))
    expected = F.conv2d(t64(padded), t64(W), t64(b), dilation=dilation, groups=groups).data
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    check_grad(lambda *t: F.conv2d(*t, **args), x, W, b)


def test_conv2d_padding_same_first_layer_gives_no_input_gradient():
    # x without requires_grad: the padded convolution's backward has no dX to cut back.
    rng = np.random.default_rng(6)
    x, W = minidl.Tensor(rng.standard_normal((1, 2, 4, 4))), t64(rng.standard_normal((3, 2, 2, 2)))
    F.conv2d(x, W, padding="same").sum().backward()
    assert x.grad is None and W.grad.shape == (3, 2, 2, 2)
    check_grad(lambda w: F.conv2d(x, w, padding="same"), W.data)


@st.composite
def same_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    C = draw(st.integers(1, 2)) * groups
    shape = (draw(st.integers(1, 2)), C, draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    K = draw(st.integers(1, 2)) * groups
    padding = draw(st.sampled_from(["same", "valid"]))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    shapes = [shape, (K, shape[1] // groups) + kernel] + ([(K,)] if draw(st.booleans()) else [])
    return shapes, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@settings(max_examples=100)
@given(same_configs())
def test_conv2d_padding_strings_match_torch(cfg):
    _compare_with_torch("conv2d", *cfg, seed=7)


def test_conv2d_padding_same_in_float32_runs_in_float32():
    y = F.conv2d(minidl.randn(2, 3, 8, 8), minidl.randn(4, 3, 4, 4), padding="same")
    assert y.shape == (2, 4, 8, 8) and y.dtype == np.float32


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.conv2d(t64((1, 1, 5, 5)), t64((1, 1, 3, 3)), padding="same", stride=2), ValueError,
     r"conv2d: padding='same' needs stride 1 .* got stride \(2, 2\)"),
    (lambda: F.conv2d(t64((1, 1, 5, 5)), t64((1, 1, 3, 3)), padding="same", stride=(1, 2)), ValueError,
     r"conv2d: padding='same' needs stride 1"),
    (lambda: F.conv2d(t64((1, 1, 5, 5)), t64((1, 1, 3, 3)), padding="full"), ValueError,
     r"conv2d: padding must be an int, a pair of ints, 'same' or 'valid', got 'full'"),
    (lambda: F.conv2d(t64((1, 1, 5, 5)), t64((1, 1, 3, 3)), padding="12"), ValueError,
     r"conv2d: padding must be .* got '12'"),
    (lambda: F.conv2d(t64((1, 1, 2, 2)), t64((1, 1, 3, 3)), padding="valid"), ValueError,
     r"conv2d: kernel height 3 .* larger than the padded input height 2"),
    (lambda: F.conv2d(t64((1, 1, 5, 5)), t64((1, 1, 3, 3)), padding=("a", 1)), TypeError,
     r"conv2d: padding must be an int or a pair of ints, got \('a', 1\)"),
])
def test_bad_padding_fails_in_words(call, error, message):
    with pytest.raises(error, match=message):
        call()
