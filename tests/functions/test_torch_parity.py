"""Forward values and gradients against PyTorch (CPU) on random inputs. Skipped without torch."""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from tests.helpers import tie_free

torch = pytest.importorskip("torch")
TF = torch.nn.functional
rng = np.random.default_rng(0)


def compare(ours, theirs, arrays, rtol=1e-5, atol=1e-5):
    """Run both on float32 copies of ``arrays``, backprop the same random cotangent, compare all."""
    mine = [minidl.Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    ref = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    y, ty = ours(*mine), theirs(*ref)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=rtol, atol=atol)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    ty.backward(torch.tensor(g))
    for m, t in zip(mine, ref):
        np.testing.assert_allclose(m.grad.data, t.grad.numpy(), rtol=rtol * 10, atol=atol * 10)


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1),
                                                              (2, 1, 1, 2), (1, 1, 1, 4), (3, 0, 1, 1)])
def test_conv2d(stride, padding, dilation, groups):
    x, W, b = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal((8, 4 // groups, 3, 3)), rng.standard_normal(8)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    compare(lambda *t: F.conv2d(*t, **args), lambda *t: TF.conv2d(*t, **args), [x, W, b])


def test_conv2d_pointwise_strided():
    x, W = rng.standard_normal((2, 6, 7, 7)), rng.standard_normal((5, 6, 1, 1))
    compare(lambda *t: F.conv2d(*t, stride=2), lambda *t: TF.conv2d(*t, stride=2), [x, W])


@pytest.mark.parametrize("stride, padding, output_padding, groups", [(1, 0, 0, 1), (2, 1, 1, 1), (2, 0, 0, 2)])
def test_conv_transpose2d(stride, padding, output_padding, groups):
    x, W, b = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3 * groups)
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups)
    compare(lambda *t: F.conv_transpose2d(*t, **args), lambda *t: TF.conv_transpose2d(*t, **args), [x, W, b])


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode", [(2, 2, 0, False), (3, 2, 1, False), (3, 2, 0, True),
                                                                (2, 2, 1, True), (3, 1, 1, False)])
def test_max_pool2d(kernel, stride, padding, ceil_mode):
    x = tie_free((2, 3, 9, 8), scale=0.01)
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    compare(lambda t: F.max_pool2d(t, **args), lambda t: TF.max_pool2d(t, **args), [x])
    _, ours = F.max_pool2d(minidl.tensor(x), return_indices=True, **args)
    _, theirs = TF.max_pool2d(torch.tensor(x), return_indices=True, **args)
    np.testing.assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode, count_include_pad",
                         [(2, 2, 0, False, True), (3, 2, 1, False, True), (3, 2, 1, True, False),
                          (3, 2, 1, True, True), (2, 3, 1, True, False)])
def test_avg_pool2d(kernel, stride, padding, ceil_mode, count_include_pad):
    x = rng.standard_normal((2, 3, 9, 8))
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                count_include_pad=count_include_pad)
    compare(lambda t: F.avg_pool2d(t, **args), lambda t: TF.avg_pool2d(t, **args), [x])


@pytest.mark.parametrize("out", [1, 3, (2, 5)])
def test_adaptive_avg_pool2d(out):
    compare(lambda t: F.adaptive_avg_pool2d(t, out), lambda t: TF.adaptive_avg_pool2d(t, out),
            [rng.standard_normal((2, 3, 7, 10))])


def test_max_unpool2d():
    x = tie_free((2, 3, 8, 8))
    y, idx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    ours = F.max_unpool2d(minidl.tensor(y.numpy()), minidl.tensor(idx.numpy()), 2).data
    np.testing.assert_array_equal(ours, TF.max_unpool2d(y, idx, 2).numpy())


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 3)])
def test_batch_norm_training_and_running_stats(shape):
    x, g, b = rng.standard_normal(shape) * 2 + 1, rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    rm, rv = minidl.zeros(3), minidl.ones(3)
    trm, trv = torch.zeros(3), torch.ones(3)
    compare(lambda *t: F.batch_norm(t[0], rm, rv, t[1], t[2], training=True, momentum=0.2),
            lambda *t: TF.batch_norm(t[0], trm, trv, t[1], t[2], training=True, momentum=0.2), [x, g, b], rtol=1e-4)
    np.testing.assert_allclose(rm.data, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.data, trv.numpy(), rtol=1e-5)
    compare(lambda *t: F.batch_norm(t[0], rm, rv, t[1], t[2]),
            lambda *t: TF.batch_norm(t[0], trm, trv, t[1], t[2]), [x, g, b])


@pytest.mark.parametrize("size", [2, 3, 5])
def test_local_response_norm_pytorch_convention(size):
    x = rng.standard_normal((2, 7, 4, 4)) * 3
    compare(lambda t: F.local_response_norm(t, size, alpha=1e-2, beta=0.75, k=1.0, alpha_over_size=True),
            lambda t: TF.local_response_norm(t, size, alpha=1e-2, beta=0.75, k=1.0), [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy(reduction, label_smoothing):
    x, labels = rng.standard_normal((8, 5)) * 3, rng.integers(0, 5, 8)
    args = dict(reduction=reduction, label_smoothing=label_smoothing)
    compare(lambda t: F.cross_entropy(t, labels, **args),
            lambda t: TF.cross_entropy(t, torch.tensor(labels), **args), [x])


@pytest.mark.parametrize("ours, theirs", [(F.relu, torch.relu), (F.tanh, torch.tanh), (F.sigmoid, torch.sigmoid),
                                          (lambda t: F.softmax(t, 1), lambda t: torch.softmax(t, 1)),
                                          (lambda t: F.log_softmax(t, 1), lambda t: torch.log_softmax(t, 1)),
                                          (lambda t: F.leaky_relu(t, 0.1), lambda t: TF.leaky_relu(t, 0.1))])
def test_activations(ours, theirs):
    compare(ours, theirs, [rng.standard_normal((4, 6)) * 3])
