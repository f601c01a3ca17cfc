"""minidl.summary and minidl.receptive_field: the counting rules, and the figures the notes work through,
computed from the models themselves (examples/notes_figures.py prints them beside the notes' numbers).
"""
import pytest

from minidl import nn
from minidl.models import get_model
from minidl.models.googlenet import Inception, NaiveInception
from minidl.summary import layer_macs, receptive_field, summary
from tests.models.fast_init import fast_init


@pytest.fixture(scope="module")
def vgg16():
    with fast_init():
        return get_model("vgg16")


@pytest.fixture(scope="module")
def vgg16_summary(vgg16):
    """One VGG16 forward at 224 x 224 (15.5 G multiply-adds), shared by the VGG16 tests."""
    return summary(vgg16, (3, 224, 224))


def fast_alexnet():
    with fast_init():
        return get_model("alexnet")


def test_counting_rules_per_layer_type():
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=2)
    assert layer_macs(conv, (1, 8, 10, 10), (1, 16, 10, 10)) == 16 * 4 * 9 * 100   # K * C/groups * KH*KW * OH*OW
    assert layer_macs(nn.Linear(20, 30), (1, 20), (1, 30)) == 600
    up = nn.ConvTranspose2d(8, 4, 2, stride=2)
    assert layer_macs(up, (1, 8, 5, 5), (1, 4, 10, 10)) == 8 * 4 * 4 * 25            # every input pixel scatters
    bn = nn.BatchNorm2d(16)
    assert layer_macs(bn, (1, 16, 4, 4), (1, 16, 4, 4)) == 0
    assert layer_macs(bn, (1, 16, 4, 4), (1, 16, 4, 4), count_bn=True) == 256
    assert layer_macs(nn.MaxPool2d(2), (1, 16, 4, 4), (1, 16, 2, 2)) == 0


def test_summary_table_totals_and_mode_are_restored():
    model = get_model("lenet5_modern")
    model.train()
    s = summary(model, (1, 32, 32), depth=1)
    assert s.total_params == s.trainable_params == 61_706 and s.non_trainable_params == 0
    assert s.total_macs == 117_600 + 240_000 + 48_000 + 10_080 + 840            # convs and linears
    assert s.output_shape == (1, 10) and s.input_bytes == 32 * 32 * 4
    text = str(s)
    assert "features (Sequential)" in text and "61,706" in text and "(ReLU)" not in text    # depth=1 hides
    assert "(ReLU)" in str(summary(model, (1, 32, 32), depth=2))
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_frozen_parameters_and_views_are_counted_as_such():
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    s = summary(model, (4,))
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (23, 8, 15)
    # eval-mode dropout and flatten hand back their input: no new activation memory
    assert [r.activation_bytes for r in s.rows] == [12, 0, 0, 8]
    assert s.activation_bytes == 20


def test_lenet5_layer_by_layer_as_the_notes_count_it():
    s = summary(get_model("lenet5"), (1, 32, 32))
    assert [s.row(n).params for n in ("c1", "s2", "c3", "s4", "c5", "f6")] == [156, 12, 1516, 32, 48120, 10164]
    assert s.total_params == 60_000 and s.row("output").params == 0
    assert s.row("c1").output_shape == (1, 6, 28, 28) and s.row("s2").output_shape == (1, 6, 14, 14)


def test_alexnet_conv1_and_pool1_as_the_notes_compute_them():
    model = fast_alexnet()
    s = summary(nn.Sequential(*list(model.features)[:4]), (3, 227, 227))   # the model's own first layers
    conv1, pool1 = s.row("0"), s.row("3")
    assert conv1.output_shape == (1, 96, 55, 55)                  # (227 - 11) / 4 + 1 = 55
    assert model.features[0].weight.numel() == 34_848             # 11 * 11 * 3 * 96
    assert conv1.params == 34_848 + 96
    assert pool1.output_shape == (1, 96, 27, 27) and pool1.params == 0   # (55 - 3) / 2 + 1 = 27
    assert conv1.macs == 34_848 * 55 * 55


def test_vgg16_parameters_shapes_and_forward_memory(vgg16_summary):
    s = vgg16_summary
    assert s.total_params == 138_357_544                          # notes: 138M
    assert s.total_macs == 15_470_264_320                         # 15.5 G multiply-adds per image
    convs = [r for r in s.rows if r.type == "Conv2d"]
    pools = [r for r in s.rows if r.type == "MaxPool2d"]
    assert [r.output_shape[1:] for r in pools] == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14),
                                                   (512, 7, 7)]
    assert [r.output_shape[1] for r in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert s.row("classifier.0").params == 102_764_544            # the FC layer with 100M of the 138M
    # The slide's memory column: input + every CONV, POOL and FC output (ReLU done in place)
    slide_layers = [r for r in s.rows if r.type in ("Conv2d", "MaxPool2d", "Linear")]
    slide_count = 224 * 224 * 3 + sum(r.activations for r in slide_layers)
    assert slide_count == 15_237_608                              # not the slide's "24M" total
    # minidl keeps a separate array per ReLU output (and one for the adaptive pool), none for dropout
    assert s.total_activations == slide_count - 224 * 224 * 3 + 13_547_520 + 2 * 4096 + 25_088 == 28_667_880
    assert s.activation_bytes == 4 * 28_667_880


def test_naive_versus_bottleneck_inception_cost():
    naive = summary(NaiveInception(256, 128, 192, 96), (256, 28, 28))
    assert naive.output_shape == (1, 672, 28, 28)                 # notes: depth 256 -> 672
    assert naive.total_macs == 854_196_224                        # notes: 854M
    # CS231n's bottleneck version: 1x1 64 before the 3x3 and the 5x5, 1x1 64 after the pool
    bottleneck = summary(Inception(256, 128, 64, 192, 64, 96, 64), (256, 28, 28))
    assert bottleneck.output_shape == (1, 480, 28, 28)
    assert bottleneck.total_macs == 271_351_808                   # notes: 358M, which counts the 3x3 twice
    assert bottleneck.total_macs + bottleneck.row("branch2.1").macs == 358_055_936


def test_two_3x3_versus_one_5x5_and_three_3x3_versus_one_7x7():
    c = 128
    two_3x3 = [nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(2)]
    one_5x5 = [nn.Conv2d(c, c, 5, padding=2, bias=False)]
    assert summary(nn.Sequential(*two_3x3), (c, 16, 16)).total_params == 294_912    # notes 004
    assert summary(nn.Sequential(*one_5x5), (c, 16, 16)).total_params == 409_600
    assert receptive_field(two_3x3, (c, 16, 16)).receptive_field == (5, 5)
    assert receptive_field(one_5x5, (c, 16, 16)).receptive_field == (5, 5)
    c = 64
    three_3x3 = [nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)]
    one_7x7 = [nn.Conv2d(c, c, 7, padding=3, bias=False)]
    assert summary(nn.Sequential(*three_3x3), (c, 16, 16)).total_params == 3 * 9 * c * c    # 3 * (9 C^2)
    assert summary(nn.Sequential(*one_7x7), (c, 16, 16)).total_params == 49 * c * c
    rf = receptive_field(three_3x3, (c, 16, 16))
    assert [r["rf"] for r in rf.rows] == [(3, 3), (5, 5), (7, 7)] and rf.jump == (1, 1)
    assert receptive_field(one_7x7, (c, 16, 16)).receptive_field == (7, 7)


def test_receptive_fields_of_whole_networks(vgg16):
    rf = receptive_field(vgg16.features, (3, 32, 32))
    by_name = {r["name"]: r for r in rf.rows}
    assert by_name["28"]["rf"] == (196, 196) and by_name["30"]["rf"] == (212, 212)   # conv5_3, pool5
    assert by_name["30"]["jump"] == (32, 32)
    lenet = receptive_field(get_model("lenet5"), 32)
    assert [r["rf"][0] for r in lenet.rows] == [5, 6, 14, 16, 32]                    # C5 sees the whole 32x32
    alexnet = receptive_field(fast_alexnet().features, (3, 227, 227))
    assert alexnet.receptive_field == (195, 195) and alexnet.jump == (32, 32)


def test_receptive_field_refuses_branching_models():
    with pytest.raises(ValueError, match="branches"):
        receptive_field(Inception(16, 4, 4, 8, 2, 4, 4), (16, 8, 8))
