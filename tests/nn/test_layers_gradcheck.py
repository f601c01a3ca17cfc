"""Every nn layer gradient-checked in float64, with respect to its input and its parameters."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.gradcheck import gradcheck
from tests.helpers import tie_free

rng = np.random.default_rng(0)


def normal(*shape):
    return rng.standard_normal(shape)


LAYERS = [
    ("linear", lambda: nn.Linear(5, 3), normal(4, 5)),
    ("conv2d", lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), normal(2, 4, 5, 5)),
    ("conv2d_dilated", lambda: nn.Conv2d(2, 3, 3, padding=2, dilation=2), normal(1, 2, 5, 6)),
    ("conv_transpose2d", lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), normal(2, 4, 3, 3)),
    ("batch_norm2d_train", lambda: nn.BatchNorm2d(3), normal(4, 3, 2, 2)),
    ("batch_norm2d_eval", lambda: nn.BatchNorm2d(3).eval(), normal(4, 3, 2, 2)),
    ("batch_norm1d_train", lambda: nn.BatchNorm1d(3), normal(6, 3)),
    ("local_response_norm", lambda: nn.LocalResponseNorm(3, alpha=0.5), normal(2, 5, 2, 2)),
    ("max_pool2d", lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), tie_free((2, 2, 5, 5))),
    ("avg_pool2d", lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), normal(2, 2, 5, 5)),
    ("adaptive_avg_pool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), normal(2, 2, 5, 7)),
    ("relu", lambda: nn.ReLU(), normal(3, 4) + np.sign(normal(3, 4)) * 0.1),
    ("leaky_relu", lambda: nn.LeakyReLU(0.2), normal(3, 4) + np.sign(normal(3, 4)) * 0.1),
    ("tanh", lambda: nn.Tanh(), normal(3, 4)),
    ("sigmoid", lambda: nn.Sigmoid(), normal(3, 4)),
    ("softmax", lambda: nn.Softmax(1), normal(3, 4)),
    ("log_softmax", lambda: nn.LogSoftmax(1), normal(3, 4)),
    ("flatten", lambda: nn.Flatten(), normal(2, 3, 2, 2)),
    ("identity", lambda: nn.Identity(), normal(2, 3)),
    ("sequential", lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(),
                                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 2)), normal(2, 2, 4, 4)),
]


@pytest.mark.parametrize("name, make, x", LAYERS, ids=[entry[0] for entry in LAYERS])
def test_layer_gradients(name, make, x):
    minidl.manual_seed(0)
    layer = make().double()
    inputs = [minidl.Tensor(x, requires_grad=True)] + list(layer.parameters())
    assert gradcheck(lambda t, *params: layer(t), inputs)


@pytest.mark.parametrize("p", [0.3])
@pytest.mark.parametrize("layer_type", [nn.Dropout, nn.DropPath])
def test_dropout_layers(layer_type, p):
    layer = layer_type(p).double()

    def seeded(t):
        minidl.manual_seed(1)
        return layer(t)
    assert gradcheck(seeded, [minidl.Tensor(normal(4, 3, 2, 2), requires_grad=True)])
    layer.eval()
    x = minidl.Tensor(normal(4, 3))
    np.testing.assert_array_equal(layer(x).data, x.data)


def test_max_unpool_layer():
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, idx = pool(minidl.Tensor(tie_free((1, 2, 4, 4))))
    assert gradcheck(lambda t: unpool(t, idx), [minidl.Tensor(y.data, requires_grad=True)])


@pytest.mark.parametrize("loss, target", [(nn.CrossEntropyLoss(label_smoothing=0.1), np.array([0, 2, 1, 2])),
                                          (nn.MSELoss(), normal(4, 3))])
def test_loss_layers(loss, target):
    assert gradcheck(lambda t: loss(t, minidl.Tensor(target)), [minidl.Tensor(normal(4, 3), requires_grad=True)])
