import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.data.transforms import (CenterCrop, Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip, Resize,
                                    ToFloat, augmentation_rng, resize_bilinear, resized_crop)


def image(c=3, h=6, w=8, seed=0):
    return np.random.default_rng(seed).random((c, h, w), dtype=np.float32)


def test_flip_twice_is_identity():
    x = image()
    flip = RandomHorizontalFlip(p=1.0)
    np.testing.assert_array_equal(flip(x), x[:, :, ::-1])
    np.testing.assert_array_equal(flip(flip(x)), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)


def test_flip_on_a_batch_flips_each_image_or_leaves_it():
    batch = np.stack([image(seed=i) for i in range(16)])
    out = RandomHorizontalFlip(p=0.5, seed=3)(batch)
    flipped = [np.array_equal(o, b[:, :, ::-1]) for o, b in zip(out, batch)]
    kept = [np.array_equal(o, b) for o, b in zip(out, batch)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 16


def test_random_crop_with_padding_keeps_size_and_cuts_a_window():
    x = image(h=8, w=8)
    crop = RandomCrop(8, padding=2, seed=0)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    for _ in range(10):
        out = crop(x)
        assert out.shape == x.shape
        windows = [padded[:, t:t + 8, l:l + 8] for t in range(5) for l in range(5)]
        assert any(np.array_equal(out, w) for w in windows)


def test_random_crop_on_a_batch_gives_each_image_its_own_window():
    batch = np.stack([np.arange(100, dtype=np.float32).reshape(1, 10, 10) + 1000 * i for i in range(32)])
    out = RandomCrop(4, seed=1)(batch)
    assert out.shape == (32, 1, 4, 4)
    corners = set()
    for i, o in enumerate(out):
        top, left = divmod(int(o[0, 0, 0] - 1000 * i), 10)
        np.testing.assert_array_equal(o, batch[i, :, top:top + 4, left:left + 4])
        corners.add((top, left))
    assert len(corners) > 1


def test_random_crop_too_big_is_a_clear_error():
    with pytest.raises(ValueError, match="RandomCrop: crop"):
        RandomCrop(10)(image(h=6, w=8))


def test_seeded_transforms_repeat_and_global_ones_follow_manual_seed():
    x = np.stack([image(seed=i) for i in range(8)])
    assert np.array_equal(RandomCrop(4, seed=5)(x), RandomCrop(4, seed=5)(x))
    minidl.manual_seed(11)
    first = RandomCrop(4)(x)
    minidl.manual_seed(11)
    assert np.array_equal(RandomCrop(4)(x), first)


def test_augmentation_rng_overrides_the_transforms_own_generator():
    x = np.stack([image(seed=i) for i in range(8)])
    crop = RandomCrop(4, seed=5)
    with augmentation_rng(np.random.default_rng(99)):
        a = crop(x)
    with augmentation_rng(np.random.default_rng(99)):
        b = RandomCrop(4, seed=123)(x)
    np.testing.assert_array_equal(a, b)


def test_normalize_arithmetic():
    x = np.stack([np.full((2, 2), 0.5), np.full((2, 2), 1.0)]).astype(np.float32)
    out = Normalize(mean=(0.5, 0.25), std=(0.5, 0.25))(x)
    np.testing.assert_allclose(out[0], 0.0)
    np.testing.assert_allclose(out[1], 3.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(Normalize((0.5, 0.25), (0.5, 0.25))(x[None])[0], out)


def test_normalize_checks_channels_and_std():
    with pytest.raises(ValueError, match="3 channels but mean/std have 1"):
        Normalize((0.1,), (0.3,))(image())
    with pytest.raises(ValueError, match="positive"):
        Normalize((0.1,), (0.0,))


def test_resize_of_a_constant_image_stays_constant():
    x = np.full((3, 7, 5), 0.3, dtype=np.float32)
    for size in [(14, 10), (3, 2), (7, 5), (9, 13)]:
        out = Resize(size)(x)
        assert out.shape == (3, *size)
        np.testing.assert_allclose(out, 0.3, rtol=1e-6)


def test_bilinear_upscale_matches_hand_computed_values():
    x = np.array([[[0.0, 1.0], [2.0, 3.0]]], dtype=np.float32)
    # output pixel i samples input (i + 0.5) / 2 - 0.5, clamped: 0, 0.25, 0.75, 1
    expected = np.array([[0.00, 0.25, 0.75, 1.00],
                         [0.50, 0.75, 1.25, 1.50],
                         [1.50, 1.75, 2.25, 2.50],
                         [2.00, 2.25, 2.75, 3.00]])
    np.testing.assert_allclose(resize_bilinear(x, 4, 4)[0], expected)


def test_bilinear_halving_averages_pixel_pairs():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    # output pixel i samples input 2 i + 0.5: halfway between pixels 2i and 2i + 1 on both axes
    expected = (x[0, 0::2, 0::2] + x[0, 0::2, 1::2] + x[0, 1::2, 0::2] + x[0, 1::2, 1::2]) / 4
    np.testing.assert_allclose(resize_bilinear(x, 2, 2)[0], expected)


def test_bilinear_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((2, 3, 7, 11), dtype=np.float32)
    for size in [(5, 4), (13, 20), (7, 3)]:
        ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode="bilinear",
                                              align_corners=False, antialias=False).numpy()
        np.testing.assert_allclose(resize_bilinear(x, *size), ref, atol=1e-5)


def test_resize_int_sets_the_shorter_side():
    assert Resize(256)(np.zeros((3, 300, 400), np.float32)).shape == (3, 256, 341)
    assert Resize(256)(np.zeros((3, 400, 300), np.float32)).shape == (3, 341, 256)
    assert Resize(8)(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 3, 8, 8)


def test_center_crop_takes_the_middle():
    x = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    np.testing.assert_array_equal(CenterCrop(2)(x)[0], [[14, 15], [20, 21]])
    assert CenterCrop((3, 4))(np.zeros((5, 1, 7, 9), np.float32)).shape == (5, 1, 3, 4)
    with pytest.raises(ValueError, match="Resize first"):
        CenterCrop(8)(x)


def test_pad_forms_and_modes():
    x = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    assert Pad(1)(x).shape == (1, 4, 4)
    assert Pad((1, 2))(x).shape == (1, 6, 4)            # (left/right, top/bottom)
    assert Pad((1, 0, 0, 3))(x).shape == (1, 5, 3)      # (left, top, right, bottom)
    np.testing.assert_array_equal(Pad(1, fill=9)(x)[0, 0], [9, 9, 9, 9])
    np.testing.assert_array_equal(Pad(1, mode="edge")(x)[0, 0], [0, 0, 1, 1])
    np.testing.assert_array_equal(Pad(1, mode="reflect")(x)[0, 1], [1, 0, 1, 0])
    with pytest.raises(ValueError, match="mode"):
        Pad(1, mode="wrap-around")


def test_to_float_converts_pillow_layouts():
    grey = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    out = ToFloat()(grey)
    assert out.shape == (1, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], [[0, 1], [0.2, 0.4]])
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 2] = 255
    out = ToFloat()(rgb)
    assert out.shape == (3, 4, 5) and out[2].min() == 1 and out[:2].max() == 0
    with pytest.raises(ValueError, match="already CHW"):
        ToFloat()(np.zeros((3, 8, 8), np.float32))


def test_compose_applies_in_order_and_reports_batching():
    pipeline = Compose([Resize(8), CenterCrop(6), Normalize((0.5,) * 3, (0.5,) * 3)])
    assert pipeline.batched
    assert pipeline(image(h=16, w=16)).shape == (3, 6, 6)
    assert not Compose([ToFloat(), Normalize((0.5,), (0.5,))]).batched
    assert "CenterCrop(size=(6, 6))" in repr(pipeline)
    for t in [ToFloat(), RandomCrop(3, padding=1), RandomHorizontalFlip(), Pad(2)]:
        assert type(t).__name__ in repr(t)


def test_alexnet_style_crops():
    x = np.zeros((3, 300, 260), np.float32)
    assert resized_crop(train=True)(x).shape == (3, 224, 224)
    assert resized_crop(train=False)(x).shape == (3, 224, 224)


@given(h=st.integers(1, 12), w=st.integers(1, 12), out_h=st.integers(1, 12), out_w=st.integers(1, 12),
       value=st.floats(-5, 5))
def test_resize_property_shape_and_constant(h, w, out_h, out_w, value):
    out = resize_bilinear(np.full((2, h, w), value, np.float32), out_h, out_w)
    assert out.shape == (2, out_h, out_w)
    np.testing.assert_allclose(out, np.float32(value), rtol=1e-5, atol=1e-6)


@given(size=st.integers(1, 10), padding=st.integers(0, 3), n=st.integers(1, 4))
def test_random_crop_property_shape(size, padding, n):
    x = np.zeros((n, 2, 10, 10), np.float32)
    assert RandomCrop(size, padding=padding, seed=0)(x).shape == (n, 2, size, size)
