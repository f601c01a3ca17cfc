"""SyncBatchNorm: gradient-checked in float64 (world of one), equal to BatchNorm (an independent kernel) in a
world of one, and over a fake 2-rank world equal to BatchNorm on the whole batch."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.distributed import SingleProcessCommunicator, SyncBatchNorm
from minidl.distributed.sync_batchnorm import SyncBatchNormTrain
from tests.distributed.fake import run_ranks
from tests.helpers import check_grad, t64


@pytest.mark.parametrize("shape", [(3, 2, 3, 3), (5, 3), (2, 2, 4)])
def test_gradcheck_float64(shape):
    rng = np.random.default_rng(1)
    x = t64(rng.standard_normal(shape) * 2 + 1)
    gamma, beta = t64(rng.uniform(0.5, 1.5, shape[1])), t64(rng.standard_normal(shape[1]))
    w = rng.standard_normal(shape)   # a weighted sum: a plain sum of a normalised x has zero gradient
    check_grad(lambda x, g, b: (SyncBatchNormTrain(SingleProcessCommunicator(), 1e-5)(x, g, b) * w).sum(),
               x, gamma, beta, mode="full")


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_world_of_one_equals_batchnorm(dtype, tol):
    rng = np.random.default_rng(2)
    x_data = (rng.standard_normal((4, 3, 5, 5)) * 3 + 2).astype(dtype)
    gy = rng.standard_normal(x_data.shape).astype(dtype)
    outputs = []
    for layer in (nn.BatchNorm2d(3), SyncBatchNorm(3)):
        layer = layer.to(dtype=dtype)
        layer.weight.data[...] = [0.5, 1.0, 2.0]
        layer.bias.data[...] = [0.1, -0.2, 0.3]
        x = minidl.Tensor(x_data.copy(), requires_grad=True)
        for _ in range(2):
            y = layer(x)
        y.backward(gy)
        outputs.append([y.numpy(), x.grad.numpy() / 2, layer.weight.grad.numpy() / 2, layer.bias.grad.numpy() / 2,
                        layer.running_mean.numpy(), layer.running_var.numpy(), layer.num_batches_tracked.numpy()])
        layer.eval()
        outputs[-1].append(layer(x).numpy())
    for got, want in zip(outputs[1], outputs[0]):
        np.testing.assert_allclose(got, want, atol=tol * 10, rtol=tol)


def test_two_ranks_equal_batchnorm_on_the_whole_batch():
    rng = np.random.default_rng(3)
    x_all = rng.standard_normal((6, 2, 3, 3)) * 2 - 1
    w_all = rng.standard_normal(x_all.shape)

    full = nn.BatchNorm2d(2).double()
    x = minidl.Tensor(x_all, requires_grad=True)
    (full(x) * minidl.Tensor(w_all)).sum().backward()

    def body(comm):
        layer = SyncBatchNorm(2, comm=comm).double()
        part = slice(3 * comm.rank, 3 * comm.rank + 3)
        xr = minidl.Tensor(x_all[part], requires_grad=True)
        y = layer(xr)
        (y * minidl.Tensor(w_all[part])).sum().backward()
        return y.numpy(), xr.grad.numpy(), layer.weight.grad.numpy(), layer.running_var.numpy()

    (y0, gx0, gw0, rv0), (y1, gx1, gw1, rv1) = run_ranks(body)
    np.testing.assert_allclose(np.concatenate([y0, y1]), _forward(x_all), atol=1e-12)
    np.testing.assert_allclose(np.concatenate([gx0, gx1]), x.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(gw0 + gw1, full.weight.grad.numpy(), atol=1e-12)   # summed by allreduce_gradients
    np.testing.assert_array_equal(rv0, rv1)
    np.testing.assert_allclose(rv0, full.running_var.numpy(), atol=1e-12)


def _forward(x_all):
    return nn.BatchNorm2d(2).double()(minidl.Tensor(x_all)).numpy()


def test_convert_sync_batchnorm_keeps_parameters_and_statistics():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Sequential(nn.BatchNorm2d(2)))
    model[1].running_mean.data[...] = 4.0
    model[1].weight.data[...] = 3.0
    model.eval()
    comm = SingleProcessCommunicator()
    converted = SyncBatchNorm.convert_sync_batchnorm(model, comm)
    assert isinstance(converted[1], SyncBatchNorm) and isinstance(converted[2][0], SyncBatchNorm)
    assert converted[1].comm is comm and not converted[1].training
    assert (converted[1].running_mean.numpy() == 4.0).all() and (converted[1].weight.numpy() == 3.0).all()


def test_bad_input_is_named():
    layer = SyncBatchNorm(3)
    with pytest.raises(ValueError, match="SyncBatchNorm: expected 3 channels \\(dim 1\\), got input of shape \\(2, 4\\)"):
        layer(minidl.ones(2, 4))
    with pytest.raises(ValueError, match="SyncBatchNorm: expected an \\(N, C, \\*\\) input of 2 or more dims"):
        layer(minidl.ones(3))
    with pytest.raises(ValueError, match="more than one value per channel over all ranks"):
        layer(minidl.ones(1, 3))


def test_nn_sync_batchnorm_is_pytorchs_name_for_it():
    from minidl import nn
    from minidl.distributed import SyncBatchNorm
    assert nn.SyncBatchNorm is SyncBatchNorm
    with pytest.raises(AttributeError, match="has no attribute 'SyncBatchNorn'"):
        nn.SyncBatchNorn
