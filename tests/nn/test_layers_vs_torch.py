"""Every layer's forward equals torch.nn's, with the same weights, in float64 (skipped without torch)."""
import numpy as np
import pytest

import minidl
from minidl import nn
from tests.helpers import tie_free, torch_or_skip

torch = torch_or_skip()
tnn = torch.nn


def same_weights(ours, theirs):
    """Copy torch's parameters and buffers into ours; both in float64."""
    theirs.double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours.double(), theirs


def run_both(ours, theirs, *arrays):
    outs = ours(*[minidl.Tensor(a) for a in arrays])
    with torch.no_grad():
        expected = theirs(*[torch.from_numpy(np.asarray(a)) for a in arrays])
    return outs, expected


def assert_forward_equal(ours, theirs, x, rtol=1e-10, atol=1e-12):
    ours, theirs = same_weights(ours, theirs)
    out, expected = run_both(ours, theirs, x)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=rtol, atol=atol)


def randn(*shape):
    return np.random.default_rng(sum(shape)).standard_normal(shape)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    assert_forward_equal(nn.Linear(5, 3, bias=bias), tnn.Linear(5, 3, bias=bias), randn(4, 5))


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(0, 2), dilation=2, bias=False),
    dict(groups=2, padding=1),
])
def test_conv2d(kwargs):
    assert_forward_equal(nn.Conv2d(4, 6, 3, **kwargs), tnn.Conv2d(4, 6, 3, **kwargs), randn(2, 4, 7, 8))


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=2, groups=2, bias=False),
    dict(stride=3, dilation=2, padding=1),
])
def test_conv_transpose2d(kwargs):
    assert_forward_equal(nn.ConvTranspose2d(4, 6, 3, **kwargs), tnn.ConvTranspose2d(4, 6, 3, **kwargs),
                         randn(2, 4, 5, 6))


def test_conv_transpose2d_output_size():
    ours, theirs = same_weights(nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1),
                                tnn.ConvTranspose2d(3, 2, 3, stride=2, padding=1))
    x = randn(1, 3, 4, 4)
    out = ours(minidl.Tensor(x), output_size=(8, 8))
    expected = theirs(torch.from_numpy(x), output_size=[8, 8]).detach()
    assert out.shape == (1, 2, 8, 8)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="ConvTranspose2d: requested an output size of"):
        ours(minidl.Tensor(x), output_size=(10, 10))


@pytest.mark.parametrize("layer, cls", [(nn.BatchNorm2d, tnn.BatchNorm2d), (nn.BatchNorm1d, tnn.BatchNorm1d)])
@pytest.mark.parametrize("shape_tail", [(), (5,)])
def test_batch_norm_train_and_eval(layer, cls, shape_tail):
    shape = (6, 3) + ((4, 5) if layer is nn.BatchNorm2d else shape_tail)
    ours, theirs = same_weights(layer(3), cls(3))
    for p in theirs.parameters():  # weight 1, bias 0 would hide a mix-up
        p.data.uniform_(0.5, 1.5)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for step in range(3):
        x = randn(*shape) * (step + 1) + step
        out, expected = run_both(ours, theirs, x)
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-9, atol=1e-10)
    ours.eval(), theirs.eval()
    out, expected = run_both(ours, theirs, randn(*shape))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_running_stats_follow_torch(momentum):
    ours, theirs = same_weights(nn.BatchNorm2d(3, momentum=momentum), tnn.BatchNorm2d(3, momentum=momentum))
    for step in range(5):
        run_both(ours, theirs, randn(4, 3, 2, 3 + step) * (step + 1) + step)
        for name in ("running_mean", "running_var"):
            np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-10)
        assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item() == step + 1
    ours.eval(), theirs.eval()
    run_both(ours, theirs, randn(4, 3, 2, 2))
    assert ours.num_batches_tracked.item() == 5  # eval does not count batches


def test_batch_norm_without_running_stats_or_affine():
    for kwargs in (dict(track_running_stats=False), dict(affine=False)):
        ours, theirs = same_weights(nn.BatchNorm2d(3, **kwargs), tnn.BatchNorm2d(3, **kwargs))
        for mode in (True, False):
            ours.train(mode), theirs.train(mode)
            out, expected = run_both(ours, theirs, randn(4, 3, 2, 2) + 1)
            np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("size", [5, 4])
def test_local_response_norm_pytorch_convention(size):
    ours = nn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=1.0, alpha_over_size=True)
    assert_forward_equal(ours, tnn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=1.0), randn(2, 7, 3, 3) * 3)


def test_local_response_norm_defaults_are_pytorchs():
    assert_forward_equal(nn.LocalResponseNorm(5), tnn.LocalResponseNorm(5), randn(2, 8, 3, 3) * 10)


def test_local_response_norm_paper_convention_is_alpha_times_size():
    # paper: alpha as written, k=2  ==  PyTorch's form with alpha * size
    ours = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, alpha_over_size=False)  # AlexNet's
    theirs = tnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    assert_forward_equal(ours, theirs, randn(2, 8, 3, 3) * 10)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_max_pool2d(kwargs):
    assert_forward_equal(nn.MaxPool2d(**kwargs), tnn.MaxPool2d(**kwargs), tie_free((2, 3, 7, 8)))


def test_max_pool2d_indices_and_unpool():
    x = tie_free((2, 3, 6, 6))
    pool, tpool = nn.MaxPool2d(2, return_indices=True), tnn.MaxPool2d(2, return_indices=True)
    (y, idx), (ty, tidx) = run_both(pool, tpool, x)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    out, expected = run_both(nn.MaxUnpool2d(2), tnn.MaxUnpool2d(2), y.numpy(), tidx.numpy())
    np.testing.assert_allclose(out.numpy(), expected.numpy())
    out = nn.MaxUnpool2d(2)(y, idx, output_size=(7, 7))
    expected = tnn.MaxUnpool2d(2)(ty, tidx, output_size=[7, 7])
    np.testing.assert_allclose(out.numpy(), expected.numpy())


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                    dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_avg_pool2d(kwargs):
    assert_forward_equal(nn.AvgPool2d(**kwargs), tnn.AvgPool2d(**kwargs), randn(2, 3, 7, 8))


@pytest.mark.parametrize("size", [1, (3, 2), 5])
def test_adaptive_avg_pool2d(size):
    assert_forward_equal(nn.AdaptiveAvgPool2d(size), tnn.AdaptiveAvgPool2d(size), randn(2, 3, 7, 8))


@pytest.mark.parametrize("ours, theirs", [
    (nn.ReLU(), tnn.ReLU()), (nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2)), (nn.Tanh(), tnn.Tanh()),
    (nn.Sigmoid(), tnn.Sigmoid()), (nn.Softmax(dim=1), tnn.Softmax(dim=1)),
    (nn.LogSoftmax(dim=-1), tnn.LogSoftmax(dim=-1)), (nn.Flatten(), tnn.Flatten()),
    (nn.Flatten(0, 2), tnn.Flatten(0, 2)), (nn.Identity(7, x=2), tnn.Identity(7, x=2)),
])
def test_parameter_free_layers(ours, theirs):
    assert_forward_equal(ours, theirs, randn(2, 3, 4, 5))


def test_dropout_is_identity_in_eval_and_masks_in_training():
    x = randn(200, 50)
    drop = nn.Dropout(0.3).eval()
    np.testing.assert_array_equal(drop(minidl.Tensor(x)).numpy(), x)
    y = drop.train()(minidl.Tensor(x)).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)
    path = nn.DropPath(0.5)
    y = path(minidl.Tensor(x)).numpy()
    rows_kept = np.all(y != 0, axis=1)
    assert np.all(rows_kept | np.all(y == 0, axis=1))  # whole samples are dropped
    np.testing.assert_allclose(y[rows_kept], x[rows_kept] * 2)
    np.testing.assert_array_equal(path.eval()(minidl.Tensor(x)).numpy(), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_loss(reduction, smoothing):
    logits, target = randn(6, 4), np.array([0, 3, 1, 1, 2, 0])
    ours = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    theirs = tnn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    out, expected = run_both(ours, theirs, logits, target)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    out, expected = run_both(nn.MSELoss(reduction), tnn.MSELoss(reduction=reduction), randn(3, 4), randn(4, 3).T)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-10)


def test_small_network_gradients_match_torch():
    """Layers hand their parameters to the functions correctly: parameter gradients equal torch's."""
    def build(m):
        return m.Sequential(m.Conv2d(2, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2),
                            m.Flatten(), m.Linear(16, 3))
    ours, theirs = same_weights(build(nn), build(tnn))
    x, target = randn(3, 2, 4, 4), np.array([0, 2, 1])
    nn.CrossEntropyLoss()(ours(minidl.Tensor(x)), minidl.Tensor(target)).backward()
    tnn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(target)).backward()
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-7, atol=1e-10, err_msg=name)


def test_repr_matches_torch_for_common_layers():
    for ours, theirs in [(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
                          tnn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)),
                         (nn.Linear(4, 2), tnn.Linear(4, 2)),
                         (nn.ConvTranspose2d(4, 2, 2, stride=2, groups=2),
                          tnn.ConvTranspose2d(4, 2, 2, stride=2, groups=2)),
                         (nn.AdaptiveAvgPool2d((1, 1)), tnn.AdaptiveAvgPool2d((1, 1))),
                         (nn.Flatten(), tnn.Flatten()), (nn.Softmax(dim=1), tnn.Softmax(dim=1))]:
        assert repr(ours) == repr(theirs)
