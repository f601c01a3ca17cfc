"""GoogLeNet and SqueezeNet on CIFAR-sized and smaller inputs, where their ceil_mode max pools meet maps
smaller than the 3x3 kernel (PyTorch keeps one window when it overhangs by less than the stride): the
same output shapes as torchvision, the same outputs with torchvision's SqueezeNet weights, and a training
step at 32 x 32. Needs torch and torchvision; skipped where they are not installed."""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl.models import get_model
from tests.models.fast_init import fast_init

torch = pytest.importorskip("torch")
tv_models = pytest.importorskip("torchvision.models")


def _images(size, batch=2):
    return np.random.default_rng(size).standard_normal((batch, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize("name, size", [
    ("squeezenet1_0", 32), ("squeezenet1_0", 21),   # 21: torchvision's smallest for 1.0 (1x1 under a 3x3/2 pool)
    ("squeezenet1_1", 32), ("squeezenet1_1", 17),   # 17: torchvision's smallest for 1.1
])
def test_squeezenet_on_small_inputs_matches_torchvision(name, size):
    torch.manual_seed(0)
    reference = getattr(tv_models, name)(weights=None).eval()
    with fast_init():
        ours = get_model(name)
    ours.load_state_dict(reference.state_dict())
    x = _images(size)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    with minidl.no_grad():
        got = ours.eval()(minidl.tensor(x)).numpy()
    assert got.shape == expected.shape == (2, 1000)
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name, size", [("squeezenet1_0", 20), ("squeezenet1_1", 16)])
def test_squeezenet_below_torchvisions_smallest_input_is_refused_in_words(name, size):
    with pytest.raises(RuntimeError):
        getattr(tv_models, name)(weights=None).eval()(torch.zeros(1, 3, size, size))
    with fast_init():
        ours = get_model(name).eval()
    with pytest.raises(ValueError, match="max_pool2d: kernel .* even with ceil_mode"):
        ours(minidl.zeros(1, 3, size, size))


@pytest.mark.parametrize("size", [32, 31, 46])
def test_googlenet_on_cifar_sizes_has_torchvisions_output_shape(size):
    # 32 x 32 failed before (a 2x2 map under maxpool3's 3x3/2 window); 31 is the smallest input the paper's
    # 3x3/2 maxpool4 takes (torchvision's 2x2/2 maxpool4 takes 15 and up: see models/googlenet.py).
    reference = tv_models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    x = _images(size, batch=1)
    with torch.no_grad():
        expected = tuple(reference(torch.from_numpy(x)).shape)
    with fast_init():
        ours = get_model("googlenet").eval()    # the auxiliary heads are not run in eval mode
    with minidl.no_grad():
        assert ours(minidl.tensor(x)).shape == expected == (1, 1000)


def test_googlenet_trains_on_cifar_images():
    minidl.manual_seed(0)
    model = get_model("googlenet", num_classes=10, aux_logits=False).train()
    x = minidl.tensor(_images(32))
    loss = F.cross_entropy(model(x), minidl.tensor(np.array([3, 7])))
    loss.backward()
    grads = [p.grad.data for p in model.parameters()]
    assert len(grads) == len(list(model.parameters()))
    assert all(np.isfinite(g).all() for g in grads)
    assert np.abs(model.conv1.conv.weight.grad.data).max() > 0
