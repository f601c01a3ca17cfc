"""nn.Conv2d with padding="same" / "valid" and nn.ConvTranspose2d's output_size, as torch.nn has them:
the issue's examples, the same outputs and gradients as torch.nn (float64), and the refusals in words."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.summary import receptive_field
from tests.helpers import check_grad, t64, torch_or_skip


def _torch_copy(torch, ours, theirs):
    """Give ours torch's float64 weights."""
    theirs.double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours.double()


def test_issue_conv2d_layer_takes_padding_same():
    # The issue's example: nn.Conv2d(..., padding="same") was refused.
    conv = nn.Conv2d(3, 4, 4, padding="same")
    assert conv.padding == "same"
    assert repr(conv) == "Conv2d(3, 4, kernel_size=(4, 4), stride=(1, 1), padding=same)"
    assert conv(minidl.randn(2, 3, 9, 7)).shape == (2, 4, 9, 7)
    assert nn.Conv2d(3, 4, 3, padding="valid")(minidl.randn(2, 3, 9, 7)).shape == (2, 4, 7, 5)


@pytest.mark.parametrize("kwargs", [
    dict(padding="same"),
    dict(padding="same", dilation=(2, 3)),
    dict(padding="same", groups=2, bias=False),
    dict(padding="valid", stride=2),
])
@pytest.mark.parametrize("kernel", [(3, 3), (4, 2)])
def test_conv2d_padding_strings_match_torch_nn(kwargs, kernel):
    torch = torch_or_skip()
    theirs = torch.nn.Conv2d(4, 6, kernel, **kwargs)
    ours = _torch_copy(torch, nn.Conv2d(4, 6, kernel, **kwargs), theirs)
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 8))
    xt, xm = torch.tensor(x, requires_grad=True), t64(x)
    y_torch, y = theirs(xt), ours(xm)
    assert y.shape == tuple(y_torch.shape)
    np.testing.assert_allclose(y.data, y_torch.detach().numpy(), rtol=1e-10, atol=1e-12)
    y_torch.sum().backward()
    y.sum().backward()
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv2d_layer_padding_same_gradchecks():
    conv = nn.Conv2d(2, 3, (2, 4), padding="same", dilation=(3, 1)).double()
    check_grad(lambda x: conv(x), np.random.default_rng(1).standard_normal((2, 2, 5, 4)))


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.Conv2d(1, 1, 3, padding="same", stride=2), ValueError,
     r"Conv2d: padding='same' needs stride 1 .* got stride \(2, 2\)"),
    (lambda: nn.Conv2d(1, 1, 3, padding="full"), ValueError,
     r"Conv2d: padding must be an int, a pair of ints, 'same' or 'valid', got 'full'"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, padding="same"), TypeError,
     r"ConvTranspose2d: padding must be an int or a pair of ints, got 'same'"),
])
def test_bad_padding_strings_are_refused_in_words(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_receptive_field_reads_padding_strings():
    # "same" with a 4x4 kernel pads 1 at the top/left: the first window, rows -1 to 2, is centred between
    # rows 0 and 1 (start 1.0; pixel i spans [i, i + 1))
    rows = receptive_field([nn.Conv2d(1, 1, 4, padding="same"), nn.Conv2d(1, 1, 3, padding="valid")], (1, 8, 8))
    assert [r["size"] for r in rows.rows] == [(8, 8), (6, 6)]
    assert [r["rf"] for r in rows.rows] == [(4, 4), (6, 6)]
    assert rows.rows[0]["start"] == (1.0, 1.0)


def test_issue_conv_transpose2d_output_size_with_dilation():
    # The issue's example: nn.ConvTranspose2d(1, 1, 3, dilation=3)(x, output_size=(10, 10)) raised an internal
    # col2im error. torch.nn takes output_size within stride - 1 of the smallest output, so from a 3x3 input
    # (smallest 9x9, stride 1) it refuses 10x10, and so does this layer, in words; from 4x4 it gives 10x10.
    layer = nn.ConvTranspose2d(1, 1, 3, dilation=3)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: requested an output size of \(10, 10\), but valid "
                                         r"sizes range from \(9, 9\) to \(9, 9\)"):
        layer(minidl.randn(1, 1, 3, 3), output_size=(10, 10))
    assert layer(minidl.randn(1, 1, 4, 4), output_size=(10, 10)).shape == (1, 1, 10, 10)


@pytest.mark.parametrize("stride, dilation, padding", [(1, 3, 0), (2, 3, 1), (3, 1, 2), ((2, 1), (1, 4), 0)])
def test_conv_transpose2d_output_size_range_matches_torch_nn(stride, dilation, padding):
    torch = torch_or_skip()
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=stride, dilation=dilation, padding=padding)
    ours = _torch_copy(torch, nn.ConvTranspose2d(2, 3, 3, stride=stride, dilation=dilation, padding=padding), theirs)
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 3))
    for OH in range(1, 20):
        for OW in (OH, OH + 1):
            try:
                expected = theirs(torch.tensor(x), output_size=(OH, OW)).detach().numpy()
            except ValueError:
                with pytest.raises(ValueError, match="ConvTranspose2d: requested an output size"):
                    ours(t64(x), output_size=(OH, OW))
                continue
            np.testing.assert_allclose(ours(t64(x), output_size=(OH, OW)).data, expected, rtol=1e-10, atol=1e-12)
