"""Bad input raises an error that names the op, what it expected and what it got."""
import pytest

import minidl
import minidl.functions as F


def x4(*shape):
    return minidl.ones(*shape)


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(x4(1, 3, 8, 8), x4(6, 1, 5, 5)), r"conv2d: x has 3 channels but W \(6, 1, 5, 5\) with groups=1 expects 1"),
    (lambda: F.conv2d(x4(3, 8, 8), x4(6, 3, 5, 5)), r"conv2d: x must be 4-D \(N x C x H x W\), got shape \(3, 8, 8\)"),
    (lambda: F.conv2d(x4(1, 3, 4, 4), x4(6, 3, 7, 7)), r"conv2d: kernel height 7 .* larger than the padded input height 4"),
    (lambda: F.conv2d(x4(1, 3, 8, 8), x4(6, 3, 3, 3), stride=0), r"conv2d: stride must be positive, got 0"),
    (lambda: F.conv2d(x4(1, 3, 8, 8), x4(6, 3, 3, 3), padding=-1), r"conv2d: padding must be >= 0, got -1"),
    (lambda: F.conv2d(x4(1, 4, 8, 8), x4(6, 2, 3, 3), groups=4), r"conv2d: x has 4 channels but W .* groups=4 expects 8"),
    (lambda: F.conv2d(x4(1, 4, 8, 8), x4(5, 2, 3, 3), groups=2), r"conv2d: 5 filters cannot be split into 2 groups"),
    (lambda: F.conv2d(x4(1, 3, 8, 8), x4(6, 3, 3, 3), x4(5)), r"conv2d: b must have shape \(6,\), got \(5,\)"),
    (lambda: F.max_pool2d(x4(1, 1, 2, 2), 3), r"max_pool2d: kernel \(3, 3\) is larger than the padded input"),
    (lambda: F.max_pool2d(x4(1, 1, 8, 8), 2, padding=2), r"max_pool2d: padding \(2, 2\) must be at most half"),
    (lambda: F.avg_pool2d(x4(1, 1, 8, 8), 2, stride=-1), r"avg_pool2d: stride must be positive"),
    (lambda: F.avg_pool2d(x4(8, 8), 2), r"avg_pool2d: x must be 4-D"),
    (lambda: F.linear(x4(2, 3), x4(4, 5)), r"linear: x has 3 features .* expects 5"),
    (lambda: F.batch_norm(x4(2, 3, 4, 4), x4(4), x4(4)), r"batch_norm: running_mean must have shape \(3,\)"),
    (lambda: F.batch_norm(x4(1, 3, 1, 1), None, None, training=True), r"batch_norm: training needs more than one"),
    (lambda: F.local_response_norm(x4(2, 3), 5), r"local_response_norm: x must be 4-D"),
    (lambda: F.cross_entropy(x4(2, 3), [0, 3]), r"cross_entropy: class indices must be in \[0, 2\] for 3 classes"),
    (lambda: F.cross_entropy(x4(2, 3), [0.0, 1.0]), r"cross_entropy: probability targets must have the input's shape"),
    (lambda: F.cross_entropy(x4(2, 3), [0, 1, 2]), r"cross_entropy: target must have shape \(2,\)"),
    (lambda: F.mse_loss(x4(2, 3), x4(3, 2)), r"mse_loss: input shape \(2, 3\) and target shape \(3, 2\) differ"),
    (lambda: F.cat([x4(2, 3), x4(3, 3)], dim=1), r"cat: tensor 1 has shape \(3, 3\)"),
    (lambda: F.dropout(x4(2), 1.5), r"dropout: drop probability must be in \[0, 1\]"),
    (lambda: F.reshape(x4(2, 3), (4, 2)), r"reshape: cannot reshape a tensor of shape \(2, 3\)"),
    (lambda: F.matmul(x4(2, 3), x4(2, 3)), r"matmul: inner dimensions differ"),
    (lambda: x4(2, 3)[5], r"getitem: index 5 is out of range"),
    (lambda: F.conv_transpose2d(x4(1, 3, 4, 4), x4(2, 3, 3, 3)), r"conv_transpose2d: x has 3 channels but W"),
])
def test_bad_input_message(call, message):
    with pytest.raises((ValueError, TypeError, IndexError, RuntimeError), match=message):
        call()
