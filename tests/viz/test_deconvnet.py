"""viz.deconv (Zeiler & Fergus's deconvnet) beyond ZFNet, and its refusal of what it cannot invert."""
import numpy as np
import pytest

import minidl
from minidl import nn, viz
from minidl.models import get_model
from minidl.models.vgg import VGG_CONFIGS, make_layers
from minidl.models.zfnet import deconv


class VGGFeatures(nn.Module):
    """VGG's feature layers (Table 1, column A-LRN) without the 100M-weight classifier: quick to build."""

    def __init__(self):
        super().__init__()
        self.features = make_layers(VGG_CONFIGS["A-LRN"])

    def forward(self, x):
        return self.features(x)


def test_without_relus_the_projection_is_the_activation_times_its_input_gradient():
    # transposed convolution and unpooling with the switches are the backward passes of conv and max pool
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1))
    model.features = nn.Sequential(*model)
    x = minidl.randn(1, 3, 16, 16, dtype="float64")
    model.to(dtype="float64")
    projection = deconv(model, x, layer=2, channel=3).numpy()
    image = minidl.tensor(x.numpy(), requires_grad=True)
    top = model.features(image)
    a = top.numpy()[0, 3]
    i, j = np.unravel_index(a.argmax(), a.shape)
    top[0, 3, int(i), int(j)].backward()
    np.testing.assert_allclose(projection, a[i, j] * image.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_vgg_projects_to_pixels_and_resnet_and_squeezenet_are_refused_by_name():
    x = minidl.randn(1, 3, 32, 32)
    y = deconv(VGGFeatures(), x, layer=3)
    assert y.shape == (1, 3, 32, 32) and np.abs(y.numpy()).sum() > 0
    with pytest.raises(ValueError, match=r"deconv: cannot invert layer 'bn1' \(BatchNorm2d\) of ResNet"):
        deconv(get_model("resnet18"), x, layer=1)
    with pytest.raises(ValueError, match=r"cannot invert layer 'features.3' \(Fire\) of SqueezeNet"):
        deconv(get_model("squeezenet1_0"), minidl.randn(1, 3, 64, 64), layer=2)
    assert deconv(get_model("squeezenet1_0"), minidl.randn(1, 3, 64, 64), layer=1).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"deconv: channel must be 0..63 for conv layer 1, got 64"):
        deconv(VGGFeatures(), x, layer=1, channel=64)


def test_deconv_figure_draws_each_layers_projection():
    pytest.importorskip("matplotlib")
    model, x = VGGFeatures(), minidl.randn(1, 3, 32, 32)
    figure = viz.deconv(model, x, layers=(1, 2))
    projection = deconv(model, x, layer=2).numpy()[0]
    np.testing.assert_array_equal(figure.maps[2][0], projection)
    rows, cols = np.nonzero(np.abs(projection).sum(axis=0))
    patch = projection[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]   # cropped to its footprint
    shown = figure.axes[2].images[0].get_array()
    np.testing.assert_allclose(shown, (patch - patch.min()).transpose(1, 2, 0) / np.ptp(patch), rtol=1e-6)
    assert figure.axes[2].get_title() == f"conv 2: {patch.shape[1]}x{patch.shape[2]} px patch"
    assert len(figure.axes) == 3
    with pytest.raises(ValueError, match="'bn1'"):
        viz.deconv(get_model("resnet18"), x)
