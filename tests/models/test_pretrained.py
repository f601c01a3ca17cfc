"""``get_model(name, weights=path)``: the known naming differences mapped, the unfaithful files refused;
ImageNet preprocessing; one real photo's top-1 class with torchvision's real weights (when present).

Files are written with torch.save where torch is installed (skipped otherwise); minidl reads them with its
own reader. The real-weights test looks for the file and skips without it (no network here).
"""
import os
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl.models import get_model
from minidl.models.pretrained import PretrainedWeightsError, imagenet_eval_transform
from tests.helpers import outputs_on_one_input, randomise_torch_batchnorm, torchvision_reference
from tests.models.fast_init import fast_init


def _outputs_equal(ours, reference, size):
    got, expected = outputs_on_one_input(ours, reference, size)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_densenet_files_with_torchvisions_old_names_load(tmp_path):
    torch = pytest.importorskip("torch")
    reference = torchvision_reference("densenet121")
    # torchvision's published densenet files predate its module names ("norm.1" for "norm1": its own loader
    # renames them with the same pattern) and BN's num_batches_tracked (PyTorch 0.4.1)
    old = {}
    for key, value in reference.state_dict().items():
        for layer in ("norm1", "conv1", "norm2", "conv2"):
            key = key.replace(f".{layer}.", f".{layer[:-1]}.{layer[-1]}.")
        if not key.endswith("num_batches_tracked"):
            old[key] = value
    assert any(".norm.1." in k for k in old) and any(".conv.2." in k for k in old)
    torch.save(old, tmp_path / "densenet121-old.pth")
    with fast_init():
        ours = get_model("densenet121", weights=tmp_path / "densenet121-old.pth")
    _outputs_equal(ours, reference, 32)


def test_cadene_xception_names_load(tmp_path):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model("legacy_xception", pretrained=False).eval()
    randomise_torch_batchnorm(reference, 0)
    cadene = {k.replace("fc.", "last_linear.") if k.startswith("fc.") else k: v
              for k, v in reference.state_dict().items()}
    torch.save({"state_dict": cadene}, tmp_path / "xception.pth")   # wrapped, as training checkpoints are
    with fast_init():
        ours = get_model("xception", weights=tmp_path / "xception.pth")
    _outputs_equal(ours, reference, 71)


def test_data_parallel_prefix_is_dropped(tmp_path):
    source = get_model("lenet5")
    np.savez(tmp_path / "dp.npz", **{"module." + k: v.numpy() for k, v in source.state_dict().items()})
    loaded = get_model("lenet5", weights=tmp_path / "dp.npz")
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key].numpy(), value.numpy())


@pytest.mark.parametrize("name, key, shape, reason", [
    ("alexnet", "features.0.weight", (64, 3, 11, 11), "One weird trick"),
    ("googlenet", "conv1.bn.weight", (64,), "batch norm after every convolution"),
    ("se_resnet50", "layer0.conv1.weight", (64, 3, 7, 7), "strides the first 1x1 conv"),
])
def test_files_of_other_networks_are_refused_with_the_reason(tmp_path, name, key, shape, reason):
    path = tmp_path / f"{name}.npz"
    np.savez(path, **{key: np.zeros(shape, dtype=np.float32)})
    with pytest.raises(PretrainedWeightsError, match=reason) as info:
        get_model(name, weights=path)
    assert "\n" not in str(info.value)


def test_mismatched_file_names_every_problem(tmp_path):
    np.savez(tmp_path / "w.npz", **{"C1.weight": np.zeros((2, 2), dtype=np.float32)})
    with pytest.raises(RuntimeError, match="missing keys"):
        get_model("lenet5", weights=tmp_path / "w.npz")


def test_imagenet_transform_matches_torchvisions_preprocessing():
    """On an image whose shorter side is already 256 (no resampling, where the two would differ by
    antialiasing), the crop and normalisation equal torchvision's to float32 rounding."""
    pytest.importorskip("torchvision")
    from PIL import Image
    from torchvision import transforms
    image = np.random.default_rng(0).integers(0, 256, (256, 300, 3), dtype=np.uint8)
    theirs = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                 transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    expected = theirs(Image.fromarray(image)).numpy()
    got = imagenet_eval_transform()(image)
    assert got.shape == (3, 224, 224) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


RESNET18_WEIGHTS = Path(os.environ.get("MINIDL_RESNET18_WEIGHTS",
                                       Path.home() / ".cache/torch/hub/checkpoints/resnet18-f37072fd.pth"))


@pytest.mark.skipif(not RESNET18_WEIGHTS.is_file(),
                    reason=f"torchvision's ResNet-18 weights not found at {RESNET18_WEIGHTS} (set "
                           f"MINIDL_RESNET18_WEIGHTS); no network here to download them")
def test_real_photo_top1_with_torchvisions_resnet18_weights():
    """Grace Hopper in uniform (matplotlib's sample photo): ImageNet class 652, "military uniform"."""
    matplotlib = pytest.importorskip("matplotlib")
    from PIL import Image
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = np.asarray(Image.open(photo).convert("RGB"))
    model = get_model("resnet18", weights=RESNET18_WEIGHTS).eval()
    with minidl.no_grad():
        logits = model(minidl.tensor(imagenet_eval_transform()(image)[None])).numpy()[0]
    assert int(np.argmax(logits)) == 652
