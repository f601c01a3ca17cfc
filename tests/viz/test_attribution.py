"""viz.saliency and viz.grad_cam: the maps equal gradients computed by hand and a float64 recomputation."""
import numpy as np
import pytest

import minidl
from minidl import nn, viz
from minidl.models import get_model


def small_cnn(dtype="float32"):
    minidl.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    for m in model.modules():                       # running statistics that differ from a batch's
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[:] = np.linspace(-0.2, 0.2, 4).astype(m.running_mean.dtype)
            m.running_var.data[:] = np.linspace(0.5, 2.0, 4).astype(m.running_var.dtype)
    return model.to(dtype=dtype)


def test_saliency_of_a_linear_classifier_is_its_weight_row_max_over_channels():
    minidl.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 5, 7))
    x = minidl.randn(2, 3, 4, 5)
    maps = viz.saliency_map(model, x, [6, 2])
    W = model[1].weight.numpy().reshape(7, 3, 4, 5)         # d score_t / d x = W[t], by hand
    np.testing.assert_array_equal(maps[0], np.abs(W[6]).max(axis=0))
    np.testing.assert_array_equal(maps[1], np.abs(W[2]).max(axis=0))
    assert maps.shape == (2, 4, 5)


def test_saliency_equals_central_differences_on_a_small_cnn_in_float64():
    model = small_cnn("float64")
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 6))
    target = 4
    maps = viz.saliency_map(model, minidl.tensor(x), target)
    model.eval()

    def score(image):
        with minidl.no_grad():
            return model(minidl.tensor(image)).numpy()[0, target]

    grad, eps = np.zeros_like(x), 1e-6
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (score(x + step) - score(x - step)) / (2 * eps)
    np.testing.assert_allclose(maps[0], np.abs(grad[0]).max(axis=0), rtol=1e-5, atol=1e-8)


def test_pictures_leave_the_model_as_they_found_it():
    model = small_cnn().train()
    model[3].weight.grad = minidl.ones(*model[3].weight.shape)
    viz.saliency_map(model, minidl.randn(2, 3, 6, 6), 1)
    viz.grad_cam_map(model, minidl.randn(2, 3, 6, 6), 1, layer="3")
    assert model.training and model[1].training
    assert all(p.requires_grad for p in model.parameters())
    assert model[0].weight.grad is None and np.all(model[3].weight.grad.numpy() == 1)


def test_grad_cam_equals_a_float64_recomputation_from_the_layers_activations_and_gradients():
    model = small_cnn()
    x = minidl.randn(2, 3, 7, 7)
    targets = [1, 3]
    cam = viz.grad_cam_map(model, x, targets, layer="3")        # the second conv, before its ReLU

    reference = small_cnn("float64").eval()                    # same weights, float64
    with minidl.no_grad():
        A = reference[:4](x.double())                           # N x 6 x 5 x 5
    A = minidl.tensor(A.numpy(), requires_grad=True)
    scores = reference[4:](A)
    onehot = np.zeros((2, 5))
    onehot[[0, 1], targets] = 1
    (scores * minidl.tensor(onehot)).sum().backward()
    alpha = A.grad.numpy().mean(axis=(2, 3))                    # N x 6, Eq. 1
    expected = np.maximum(np.einsum("nk,nkij->nij", alpha, A.numpy()), 0)   # Eq. 2
    assert cam.shape == (2, 5, 5) and cam.dtype == np.float64
    np.testing.assert_allclose(cam, expected, rtol=1e-4, atol=1e-6)
    assert cam.max() > 0


def test_grad_cam_default_layer_is_the_last_spatial_one_for_a_zoo_model():
    model = get_model("resnet20")
    x = minidl.randn(1, 3, 32, 32)
    cam = viz.grad_cam_map(model, x, 3)
    assert cam.shape == (1, 8, 8)                              # layer3: 64 x 8 x 8
    np.testing.assert_allclose(cam, viz.grad_cam_map(model, x, 3, layer=model.layer3), rtol=1e-6)


def test_bad_targets_and_layers_are_named():
    model = small_cnn()
    x = minidl.randn(1, 3, 6, 6)
    with pytest.raises(ValueError, match=r"viz.saliency: target must be a class 0..4, got 5"):
        viz.saliency_map(model, x, 5)
    with pytest.raises(ValueError, match=r"viz.grad_cam: Sequential has no layer 'conv9'"):
        viz.grad_cam_map(model, x, 0, layer="conv9")
    with pytest.raises(ValueError, match=r"viz.grad_cam: layer '7' gives shape \(1, 5\)"):
        viz.grad_cam_map(model, x, 0, layer="7")
    with pytest.raises(ValueError, match=r"viz.saliency: expected an image batch N x C x H x W"):
        viz.saliency_map(model, minidl.randn(6, 6), 0)


def test_figures_draw_the_maps():
    pytest.importorskip("matplotlib")
    model = small_cnn()
    x = minidl.randn(2, 3, 6, 6)
    figure = viz.saliency(model, x, 2)
    np.testing.assert_array_equal(figure.axes[1].images[0].get_array(), viz.saliency_map(model, x, 2)[0])
    figure = viz.grad_cam(model, x, 2, layer="3")
    np.testing.assert_allclose(figure.axes[3].images[1].get_array(), viz.grad_cam_map(model, x, 2, layer="3")[1])
    assert len(figure.axes) == 4


@pytest.mark.parametrize("name, shape, layer, cam_shape", [
    ("lenet5", (1, 32, 32), "s4", (5, 5)),                     # the paper's LeNet-5, RBF output
    ("squeezenet1_1", (3, 64, 64), "classifier.2", (3, 3)),    # class maps of the last 1x1 conv
    ("nin_cifar", (3, 32, 32), "features.6", (8, 8)),
    ("googlenet", (3, 64, 64), "inception5b", (2, 2)),         # eval mode: no auxiliary outputs
])
def test_zoo_models_get_maps_with_the_default_layer(name, shape, layer, cam_shape):
    from minidl.viz._hooks import last_spatial_layer
    model = get_model(name).train()
    x = minidl.randn(2, *shape)
    assert last_spatial_layer(model.eval(), x, "test") == layer
    model.train()
    cam = viz.grad_cam_map(model, x, [0, 1])
    assert cam.shape == (2,) + cam_shape and np.all(cam >= 0)
    np.testing.assert_array_equal(cam, viz.grad_cam_map(model, x, [0, 1], layer=layer))
    assert viz.saliency_map(model, x, 1).shape == (2,) + shape[1:]
    assert model.training
