"""The classic CNNs (AlexNet, ZFNet, VGG, GoogLeNet, NiN, SqueezeNet): parameter counts against the papers
and torchvision, forward and backward on every registered model, stage shapes at ImageNet size,
GoogLeNet's auxiliary heads, ZFNet's deconvnet. LeNet has its own file; torchvision weight loading is in
test_classic_torchvision.py; the notes' cost figures are in tests/test_summary.py.
"""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn
from minidl.models import get_model, list_models
from minidl.summary import summary
from tests.models.fast_init import fast_init

# name, input for the forward/backward check, parameters at the default num_classes, source of the figure
CASES = [
    ("alexnet", (1, 3, 227, 227), 60_965_224, "Caffe's bvlc_alexnet, the paper's net with its two towers: 60,965,224"),
    ("zfnet", (1, 3, 224, 224), 62_357_608,
     "AlexNet's 60,965,224 - conv1 (34,944 - 14,208) - conv2 (307,456 - 614,656) + conv4, conv5 without groups "
     "(+663,552, +442,368); the paper gives no total"),
    ("zfnet_wide", (1, 3, 224, 224), 107_627_624,
     "conv 14,208 + 614,656 + 1,180,160 + 4,719,616 + 4,719,104; fc 512*36*4096 + 4096 + 16,781,312 + 4,097,000"),
    ("vgg11", (1, 3, 32, 32), 132_863_336, "torchvision vgg11: 132,863,336 (paper Table 2: 133M)"),
    ("vgg11_lrn", (1, 3, 32, 32), 132_863_336, "as vgg11: LRN has no parameters (paper Table 2: 133M)"),
    ("vgg13", (1, 3, 32, 32), 133_047_848, "torchvision vgg13: 133,047,848 (paper: 133M)"),
    ("vgg16_c", (1, 3, 32, 32), 133_638_952,
     "torchvision vgg16 138,357,544 - 3 convs 3x3 -> 1x1: (589,824 - 65,536) + 2 * (2,359,296 - 262,144); paper: 134M"),
    ("vgg16", (1, 3, 32, 32), 138_357_544, "torchvision vgg16: 138,357,544 (paper: 138M, notes: 138M)"),
    ("vgg19", (1, 3, 32, 32), 143_667_240, "torchvision vgg19: 143,667,240 (paper: 144M)"),
    ("vgg11_bn", (1, 3, 32, 32), 132_868_840, "torchvision vgg11_bn: 132,868,840"),
    ("vgg13_bn", (1, 3, 32, 32), 133_053_736, "torchvision vgg13_bn: 133,053,736"),
    ("vgg16_bn", (1, 3, 32, 32), 138_365_992, "torchvision vgg16_bn: 138,365,992"),
    ("vgg19_bn", (1, 3, 32, 32), 143_678_248, "torchvision vgg19_bn: 143,678,248"),
    ("vgg11_bn_cifar", (2, 3, 32, 32), 9_231_114,
     "torchvision vgg11_bn's features 132,868,840 - 123,642,856 (classifier) + Linear(512, 10) 5,130"),
    ("vgg16_bn_cifar", (2, 3, 32, 32), 14_728_266,
     "torchvision vgg16_bn's features 138,365,992 - 123,642,856 + Linear(512, 10) 5,130"),
    ("googlenet", (1, 3, 224, 224), 13_378_280,
     "6,998,552 main network (torchvision googlenet without aux 6,624,904 + 380,928 for true 5x5 kernels - 7,280 "
     "for bias instead of BN, see test_classic_torchvision) + aux heads 3,188,840 and 3,190,888"),
    ("nin_cifar", (2, 3, 32, 32), 966_986, "the authors' Caffe cifar10_nin: conv 14,592 + 460,992 + 331,968, "
     "cccp 30,880 + 15,456 + 37,056 * 3 + 1,930"),
    ("nin", (1, 3, 64, 64), 7_595_176, "Caffe Model Zoo nin_imagenet: 34,944 + 614,656 + 885,120 + 3,539,968 "
     "(conv) + 2 * 9,312 + 2 * 65,792 + 2 * 147,840 + 1,049,600 + 1,025,000 (cccp)"),
    ("squeezenet1_0", (2, 3, 64, 64), 1_248_424, "torchvision squeezenet1_0: 1,248,424 (paper: 1.2M)"),
    ("squeezenet1_1", (2, 3, 64, 64), 1_235_496, "torchvision squeezenet1_1: 1,235,496"),
]
BIG = {"alexnet", "zfnet", "zfnet_wide", "vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19", "vgg11_bn",
       "vgg13_bn", "vgg16_bn", "vgg19_bn", "nin"}


def build(name, **kwargs):
    if name in BIG:
        with fast_init():
            return get_model(name, **kwargs)
    return get_model(name, **kwargs)


def test_every_classic_model_is_registered_with_a_description_and_a_paper():
    names = {case[0] for case in CASES} | {"lenet1", "lenet5", "lenet5_modern"}
    entries = list_models(with_descriptions=True)
    assert names <= set(entries)
    for name in names:
        assert entries[name].description and entries[name].paper


@pytest.mark.parametrize("name, shape, params, source", CASES, ids=[c[0] for c in CASES])
def test_parameter_count_forward_and_backward(name, shape, params, source):
    minidl.manual_seed(0)
    model = build(name)
    assert model.num_parameters() == params, source
    model.train()
    x = minidl.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    out = model(x)
    target = minidl.tensor(np.arange(shape[0]) % 7)
    if isinstance(out, tuple):                   # GoogLeNet in training: logits, aux1, aux2
        assert [o.shape for o in out] == [(shape[0], 1000)] * 3
        from minidl.models.googlenet import googlenet_loss
        loss = googlenet_loss(out, target)
    else:
        num_classes = 10 if name.endswith("cifar") else 1000
        assert out.shape == (shape[0], num_classes)
        loss = F.cross_entropy(out, target)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert p.grad.shape == p.shape and np.isfinite(p.grad.numpy()).all(), pname


def _shapes(model, input_shape, names):
    s = summary(model, input_shape)
    return {n: s.row(n).output_shape[1:] for n in names}


def test_alexnet_stage_shapes_and_towers():
    model = build("alexnet")
    got = _shapes(model, (3, 227, 227), ["features.0", "features.3", "features.4", "features.7", "features.8",
                                          "features.10", "features.12", "features.14", "classifier.1",
                                          "classifier.6"])
    assert got == {"features.0": (96, 55, 55), "features.3": (96, 27, 27),      # conv1, pool1 (notes 001)
                   "features.4": (256, 27, 27), "features.7": (256, 13, 13),    # conv2, pool2
                   "features.8": (384, 13, 13), "features.10": (384, 13, 13),   # conv3, conv4
                   "features.12": (256, 13, 13), "features.14": (256, 6, 6),    # conv5, pool5
                   "classifier.1": (4096,), "classifier.6": (1000,)}
    # the two GPU towers: 5x5x48 and 3x3x192 filters (notes 003)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(96, 3, 11, 11), (256, 48, 5, 5), (384, 256, 3, 3),
                                                      (384, 192, 3, 3), (256, 192, 3, 3)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    lrn = model.features[2]
    assert isinstance(lrn, nn.LocalResponseNorm)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k, lrn.alpha_over_size) == (5, 1e-4, 0.75, 2.0, False)


def test_alexnet_initialisation_follows_the_paper():
    minidl.manual_seed(0)
    model = get_model("alexnet", num_classes=10)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    biases = [float(np.unique(m.bias.numpy())[0]) for m in convs + linears]
    assert biases == [0, 1, 0, 1, 1, 1, 1, 0]     # 1 in conv2, conv4, conv5 and the hidden FC layers
    assert abs(float(convs[2].weight.numpy().std()) - 0.01) < 1e-3


def test_zfnet_stage_shapes():
    model = build("zfnet")
    got = _shapes(model, (3, 224, 224), ["features.0", "features.2", "features.4", "features.6",
                                          "features.8", "features.10", "features.12", "features.14"])
    assert got == {"features.0": (96, 110, 110), "features.2": (96, 55, 55),    # 7x7/2 conv, 3x3/2 pool
                   "features.4": (256, 26, 26), "features.6": (256, 13, 13),    # 5x5/2 conv, pool
                   "features.8": (384, 13, 13), "features.10": (384, 13, 13),
                   "features.12": (256, 13, 13), "features.14": (256, 6, 6)}


def test_zfnet_deconv_projects_one_activation_back_to_a_patch_of_pixels():
    from minidl.models.zfnet import deconv
    model = build("zfnet").eval()
    x = minidl.tensor(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    with minidl.no_grad():
        logits, record = model(x, return_switches=True)
        assert logits.shape == (1, 1000)
        assert sum(switches is not None for _, _, switches in record) == 3
        layer1 = deconv(model, x, layer=1, channel=5).numpy()
        layer2 = deconv(model, x, layer=2).numpy()
    assert layer1.shape == layer2.shape == (1, 3, 224, 224)
    rows, cols = np.nonzero(np.abs(layer1[0]).sum(axis=0))
    assert np.ptp(rows) + 1 <= 7 and np.ptp(cols) + 1 <= 7      # one 7x7 filter, pasted where it fired
    rows, cols = np.nonzero(np.abs(layer2[0]).sum(axis=0))
    assert 0 < np.ptp(rows) + 1 <= 27 and 0 < np.ptp(cols) + 1 <= 27   # a layer-2 unit sees 27x27 pixels


def test_vgg_configurations_follow_table_1():
    from minidl.models.vgg import VGG_CONFIGS, make_layers
    weight_layers = {name: sum(e.startswith("conv") for e in cfg) + 3 for name, cfg in VGG_CONFIGS.items()}
    assert weight_layers == {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    c = make_layers(VGG_CONFIGS["C"])            # the features of vgg16_c
    kernels = [m.kernel_size[0] for m in c if isinstance(m, nn.Conv2d)]
    assert kernels == [3] * 6 + [1] + [3, 3, 1] + [3, 3, 1]
    lrn = make_layers(VGG_CONFIGS["A-LRN"])      # vgg11_lrn: LRN between the first ReLU and pooling
    assert isinstance(lrn[2], nn.LocalResponseNorm) and isinstance(lrn[3], nn.MaxPool2d)
    bn = make_layers(VGG_CONFIGS["D"], batch_norm=True)
    assert [type(m).__name__ for m in list(bn)[:4]] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]


def test_vgg_cifar_variant_maps_32x32_to_a_512_vector():
    model = get_model("vgg11_bn_cifar", num_classes=10)
    s = summary(model, (3, 32, 32))
    assert s.row("features").output_shape == (1, 512, 1, 1)
    assert s.row("classifier.0").output_shape == (1, 10)


def test_googlenet_stage_shapes_follow_table_1():
    model = get_model("googlenet").eval()
    got = _shapes(model, (3, 224, 224), ["conv1", "maxpool1", "conv3", "maxpool2", "inception3a", "inception3b",
                                          "maxpool3", "inception4a", "inception4d", "inception4e", "maxpool4",
                                          "inception5a", "inception5b", "avgpool", "fc"])
    assert got == {"conv1": (64, 112, 112), "maxpool1": (64, 56, 56), "conv3": (192, 56, 56),
                   "maxpool2": (192, 28, 28), "inception3a": (256, 28, 28), "inception3b": (480, 28, 28),
                   "maxpool3": (480, 14, 14), "inception4a": (512, 14, 14), "inception4d": (528, 14, 14),
                   "inception4e": (832, 14, 14), "maxpool4": (832, 7, 7), "inception5a": (832, 7, 7),
                   "inception5b": (1024, 7, 7), "avgpool": (1024, 1, 1), "fc": (1000,)}


def test_googlenet_true_5x5_branches_and_aux_heads():
    model = get_model("googlenet", num_classes=10)
    assert model.inception3a.branch3[1].conv.kernel_size == (5, 5)      # torchvision has 3x3 here
    aux = model.aux1
    assert (aux.avgpool.kernel_size, aux.avgpool.stride, aux.conv.conv.out_channels) == (5, 3, 128)
    assert (aux.fc1.out_features, aux.dropout.p, aux.fc2.out_features) == (1024, 0.7, 10)
    assert model.dropout.p == 0.4
    called = []
    handles = [m.register_forward_hook(lambda m, i, o: called.append(m)) for m in (model.aux1, model.aux2)]
    x = minidl.zeros(1, 3, 64, 64)              # the heads need 224 x 224, but eval mode never runs them
    model.eval()
    with minidl.no_grad():
        out = model(x)
    assert isinstance(out, minidl.Tensor) and out.shape == (1, 10) and called == []
    for h in handles:
        h.remove()
    no_aux = get_model("googlenet", num_classes=10, aux_logits=False)
    assert not hasattr(no_aux, "aux1") and isinstance(no_aux.train()(x), minidl.Tensor)   # no heads at all


def test_googlenet_loss_weights_the_auxiliary_losses_by_0_3():
    from minidl.models.googlenet import googlenet_loss
    rng = np.random.default_rng(0)
    logits, aux1, aux2 = (minidl.tensor(rng.standard_normal((4, 10)).astype(np.float32)) for _ in range(3))
    target = minidl.tensor([1, 2, 3, 4])
    expected = (F.cross_entropy(logits, target).item() + 0.3 * F.cross_entropy(aux1, target).item()
                + 0.3 * F.cross_entropy(aux2, target).item())
    assert np.isclose(googlenet_loss((logits, aux1, aux2), target).item(), expected, rtol=1e-6)
    assert np.isclose(googlenet_loss(logits, target).item(), F.cross_entropy(logits, target).item())


def test_nin_stage_shapes():
    cifar = _shapes(get_model("nin_cifar"), (3, 32, 32), ["features.0", "features.1", "features.3", "features.4",
                                                         "features.6", "features.7"])
    assert cifar == {"features.0": (96, 32, 32), "features.1": (96, 16, 16), "features.3": (192, 16, 16),
                     "features.4": (192, 8, 8), "features.6": (10, 8, 8), "features.7": (10, 1, 1)}
    imagenet = _shapes(build("nin"), (3, 224, 224), ["features.0", "features.1", "features.3", "features.5",
                                                      "features.7", "features.8"])
    assert imagenet == {"features.0": (96, 54, 54), "features.1": (96, 27, 27), "features.3": (256, 13, 13),
                        "features.5": (384, 6, 6), "features.7": (1000, 6, 6), "features.8": (1000, 1, 1)}


@pytest.mark.parametrize("name, stages", [
    ("squeezenet1_0", {"features.0": (96, 109, 109), "features.2": (96, 54, 54), "features.5": (256, 54, 54),
                       "features.6": (256, 27, 27), "features.10": (512, 27, 27), "features.11": (512, 13, 13),
                       "features.12": (512, 13, 13), "classifier.3": (1000, 1, 1)}),
    ("squeezenet1_1", {"features.0": (64, 111, 111), "features.2": (64, 55, 55), "features.5": (128, 27, 27),
                       "features.8": (256, 13, 13), "features.12": (512, 13, 13), "classifier.3": (1000, 1, 1)}),
])
def test_squeezenet_stage_shapes(name, stages):
    assert _shapes(get_model(name), (3, 224, 224), list(stages)) == stages
