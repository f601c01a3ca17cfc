"""Layer construction: PyTorch's default initialisation, buffers, argument checks, shapes."""
import math

import numpy as np
import pytest

import minidl
from minidl import nn


@pytest.mark.parametrize("layer, fan_in", [
    (lambda: nn.Linear(200, 300), 200),
    (lambda: nn.Conv2d(16, 64, 3), 16 * 9),
    (lambda: nn.Conv2d(16, 64, (3, 5), groups=4), 4 * 15),
    (lambda: nn.ConvTranspose2d(16, 64, 3, groups=2), 32 * 9),  # weight (C, K/groups, KH, KW): fan_in = K/groups*KH*KW
])
def test_default_init_is_pytorchs(layer, fan_in):
    m = layer()
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) -> gain sqrt(1/3) -> sqrt(3)*gain/sqrt(fan_in)
    w, b = m.weight.numpy(), m.bias.numpy()
    assert w.dtype == np.float32 and b.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert np.abs(b).max() <= bound


def test_init_draws_from_minidls_generator():
    minidl.manual_seed(3)
    a = nn.Conv2d(3, 4, 3).weight.numpy()
    minidl.manual_seed(3)
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3).weight.numpy(), a)


def test_batch_norm_parameters_and_buffers():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(5))
    np.testing.assert_array_equal(bn.bias.numpy(), np.zeros(5))
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(5))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(5))
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    plain = nn.BatchNorm1d(5, affine=False, track_running_stats=False)
    assert list(plain.parameters()) == [] and list(plain.buffers()) == [] and plain.running_mean is None


def test_batch_norm_training_normalises_each_channel():
    x = minidl.randn(16, 3, 4, 4) * 5 + 2
    y = nn.BatchNorm2d(3)(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


@pytest.mark.parametrize("build, message", [
    (lambda: nn.Conv2d(6, 4, 3, groups=4), "in_channels \\(6\\) must be divisible by groups \\(4\\)"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), "out_channels \\(6\\) must be divisible by groups \\(4\\)"),
    (lambda: nn.Conv2d(4, 6, 0), "kernel_size must be positive"),
    (lambda: nn.Conv2d(4, 6, 3, padding=-1), "padding must be >= 0"),
    (lambda: nn.Conv2d(0, 6, 3), "in_channels must be a positive int"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2), "output_padding"),
    (lambda: nn.MaxPool2d(2, padding=2), "at most half the kernel size"),
    (lambda: nn.Dropout(1.5), "must be in \\[0, 1\\]"),
    (lambda: nn.BatchNorm2d(0), "num_features must be a positive int"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), "reduction must be one of"),
])
def test_bad_arguments_fail_in_words(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_bad_inputs_fail_in_words():
    with pytest.raises(ValueError, match="Conv2d: expected input \\(N, 3, H, W\\), got shape \\(2, 4, 5, 5\\)"):
        nn.Conv2d(3, 4, 3)(minidl.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="BatchNorm2d: expected 3 channels"):
        nn.BatchNorm2d(3)(minidl.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="BatchNorm2d: expected a 4-D"):
        nn.BatchNorm2d(3)(minidl.randn(2, 3))
    with pytest.raises(ValueError, match="Linear: expected inputs with 5 features"):
        nn.Linear(5, 2)(minidl.randn(2, 4))


def test_output_shapes_of_a_classic_stack():
    x = minidl.randn(1, 3, 67, 67)
    x = nn.Conv2d(3, 8, kernel_size=11, stride=4)(x)
    assert x.shape == (1, 8, 15, 15)
    x = nn.LocalResponseNorm(5)(x)
    x = nn.MaxPool2d(3, stride=2)(x)
    assert x.shape == (1, 8, 7, 7)
    x = nn.AdaptiveAvgPool2d(1)(x)
    assert nn.Flatten()(x).shape == (1, 8)
