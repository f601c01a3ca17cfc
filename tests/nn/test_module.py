"""nn.Module mechanics: registration, iteration, modes, hooks, devices/dtypes, state dicts, repr."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn, optim
from tests.helpers import torch_or_skip


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("scale", minidl.ones(4))
        self.register_buffer("cache", minidl.zeros(2), persistent=False)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Block(), nn.MaxPool2d(2))
        self.head = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        return self.head(F.flatten(self.features(x), 1))


def test_attribute_assignment_registers_parameters_modules_and_buffers():
    net = Net()
    block = net.features[0]
    assert list(block._parameters) == []
    assert list(block._modules) == ["conv", "bn"]
    assert list(block._buffers) == ["scale", "cache"]
    assert [name for name, _ in net.named_parameters()] == [
        "features.0.conv.weight", "features.0.bn.weight", "features.0.bn.bias", "head.weight", "head.bias"]
    assert [name for name, _ in net.named_buffers()] == [
        "features.0.scale", "features.0.cache", "features.0.bn.running_mean", "features.0.bn.running_var",
        "features.0.bn.num_batches_tracked"]
    assert [name for name, _ in net.named_modules()] == [
        "", "features", "features.0", "features.0.conv", "features.0.bn", "features.1", "head"]
    assert [name for name, _ in net.named_children()] == ["features", "head"]
    assert len(list(net.modules())) == 7
    assert len(list(net.parameters(recurse=False))) == 0
    assert net.num_parameters() == 3 * 4 * 9 + 4 + 4 + 16 * 3 + 3


def test_reassignment_moves_a_name_between_registries():
    m = nn.Module()
    m.w = minidl.Parameter(np.zeros(2))
    m.w = None  # allowed for a parameter, like a layer built with bias=False
    assert m._parameters == {"w": None} and m.w is None
    with pytest.raises(TypeError, match="expected a minidl.Parameter or None"):
        m.w = minidl.zeros(2)
    m.sub = nn.ReLU()
    del m.sub
    assert "sub" not in m._modules and not hasattr(m, "sub")
    m.x = 3
    m.x = nn.Tanh()
    assert list(m._modules) == ["x"]


def test_shared_parameters_are_listed_once():
    a = nn.Linear(2, 2)
    m = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(m.parameters())) == 2
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_assignment_before_init_fails_in_words():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Broken()


def test_train_and_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.features.train()
    assert net.features[0].bn.training and not net.training and not net.head.training


def test_zero_grad_sets_grads_to_none():
    net = Net()
    net(minidl.randn(2, 3, 4, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_forward_hooks_fire_replace_and_remove():
    net = Net()
    shapes = []
    handle = net.features.register_forward_hook(lambda m, inputs, out: shapes.append(out.shape))
    net(minidl.randn(2, 3, 4, 4))
    assert shapes == [(2, 4, 2, 2)]
    handle.remove()
    net(minidl.randn(2, 3, 4, 4))
    assert len(shapes) == 1

    fc = nn.Linear(2, 2)
    with fc.register_forward_hook(lambda m, inputs, out: out * 0):
        assert np.all(fc(minidl.randn(3, 2)).numpy() == 0)
    assert np.any(fc(minidl.randn(3, 2)).numpy() != 0)


def test_forward_pre_hook_sees_and_can_replace_inputs():
    seen = []
    fc = nn.Linear(2, 2)

    def pre_hook(module, inputs):
        seen.append(inputs[0].shape)
        return inputs[0] * 0

    handle = fc.register_forward_pre_hook(pre_hook)
    np.testing.assert_allclose(fc(minidl.randn(3, 2)).numpy(), np.broadcast_to(fc.bias.numpy(), (3, 2)))
    handle.remove()
    fc(minidl.randn(3, 2))
    assert seen == [(3, 2)]


def test_apply_visits_children_then_self():
    order = []
    Net().apply(lambda m: order.append(type(m).__name__))
    assert order == ["Conv2d", "BatchNorm2d", "Block", "MaxPool2d", "Sequential", "Linear", "Net"]


def test_to_dtype_casts_in_place_and_keeps_optimizer_working():
    net = Net()
    params = list(net.parameters())
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = minidl.randn(2, 3, 4, 4)
    net(x).sum().backward()
    opt.step()
    assert net.double() is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.features[0].bn.running_mean.dtype == np.float64
    assert net.features[0].bn.num_batches_tracked.dtype == np.int64  # integer buffers are never cast
    before = net.head.weight.numpy().copy()
    opt.zero_grad()
    net(x.double()).sum().backward()
    opt.step()
    assert net.head.weight.dtype == np.float64 and not np.allclose(net.head.weight.numpy(), before)
    assert opt.state[net.head.weight]["momentum_buffer"].dtype == np.float64
    net.to("cpu", "float32")
    assert net.head.weight.dtype == np.float32
    net.to(minidl.float64)
    assert net.head.bias.dtype == np.float64
    with pytest.raises(TypeError, match="floating-point"):
        net.to("int64")


def test_state_dict_order_names_and_sharing():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == [
        "features.0.scale", "features.0.conv.weight", "features.0.bn.weight", "features.0.bn.bias",
        "features.0.bn.running_mean", "features.0.bn.running_var", "features.0.bn.num_batches_tracked",
        "head.weight", "head.bias"]  # a module's own entries before its children's; "cache" is not persistent
    assert sd["head.weight"].data is net.head.weight.data
    assert not isinstance(sd["head.weight"], minidl.Parameter)
    assert net.state_dict(keep_vars=True)["head.weight"] is net.head.weight


def test_state_dict_round_trip_copies_into_existing_arrays():
    a, b = Net(), Net()
    for p in a.parameters():
        p.data[...] = minidl.randn(*p.shape).numpy()
    a.features[0].bn.num_batches_tracked.data[...] = 7
    arrays = [p.data for p in b.parameters()]
    sd = {k: v.numpy().astype(np.float64) for k, v in a.state_dict().items()}  # ndarrays, other dtype
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(p.data is arr for p, arr in zip(b.parameters(), arrays))
    assert all(p.dtype == np.float32 for p in b.parameters())
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key].numpy(), value.numpy())
    assert b.features[0].bn.num_batches_tracked.item() == 7


def test_load_state_dict_strict_errors_list_every_problem():
    net = Net()
    sd = net.state_dict()
    del sd["head.bias"]
    sd["head.extra"] = np.zeros(3)
    sd["features.0.conv.weight"] = np.zeros((4, 3, 5, 5))
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    message = str(err.value)
    assert "features.0.conv.weight: expected (4, 3, 3, 3), got (4, 3, 5, 5)" in message
    assert "missing keys: head.bias" in message
    assert "unexpected keys: head.extra" in message


def test_load_state_dict_non_strict_returns_missing_and_unexpected():
    net = Net()
    sd = net.state_dict()
    del sd["head.bias"]
    sd["head.extra"] = np.zeros(3)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["head.bias"] and unexpected == ["head.extra"]
    sd["head.weight"] = np.zeros((1, 1))
    with pytest.raises(RuntimeError, match=r"head.weight: expected \(3, 16\), got \(1, 1\)"):
        net.load_state_dict(sd, strict=False)  # a wrong shape is an error even when not strict


def test_sequential_indexing_slicing_and_names():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and seq[1] is list(seq)[1]
    head = seq[1:]
    assert isinstance(head, nn.Sequential) and list(head._modules) == ["1", "2"]
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3"]
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and isinstance(seq[1], nn.Linear)
    assert seq(minidl.randn(4, 2)).shape == (4, 1)
    with pytest.raises(IndexError, match="out of range"):
        seq[5]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named.act is named[1]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_module_list_and_module_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    layers += [nn.Tanh()]
    assert len(layers) == 5 and isinstance(layers[-1], nn.Tanh)
    assert [k for k in layers.state_dict()][:2] == ["0.weight", "0.bias"]
    assert isinstance(layers[:2], nn.ModuleList) and len(layers[:2]) == 2
    layers.insert(0, nn.Sigmoid())
    assert isinstance(layers[0], nn.Sigmoid) and list(layers._modules)[-1] == "5"

    heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 2)})
    assert list(heads) == ["cls", "box"] and "cls" in heads and len(heads) == 2
    assert list(heads.state_dict()) == ["cls.weight", "cls.bias", "box.weight", "box.bias"]
    assert isinstance(heads.pop("cls"), nn.Linear) and list(heads.keys()) == ["box"]
    with pytest.raises(KeyError, match="already exists"):
        heads["keys"] = nn.ReLU()


def test_repr_nests_like_pytorch():
    net = Net()
    assert repr(net) == (
        "Net(\n"
        "  (features): Sequential(\n"
        "    (0): Block(\n"
        "      (conv): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "      (bn): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
        "    )\n"
        "    (1): MaxPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=False)\n"
        "  )\n"
        "  (head): Linear(in_features=16, out_features=3, bias=True)\n"
        ")")
    assert repr(nn.ReLU()) == "ReLU()"


def test_state_dict_keys_match_torch():
    torch = torch_or_skip()
    tnn = torch.nn

    ours = nn.Sequential(OrderedDict([
        ("features", nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(8, 8, 3, groups=2, bias=False), nn.BatchNorm2d(8, affine=False))),
        ("blocks", nn.ModuleList([nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False)])),
        ("heads", nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.ConvTranspose2d(4, 2, 2)})),
    ]))
    theirs = tnn.Sequential(OrderedDict([
        ("features", tnn.Sequential(tnn.Conv2d(3, 8, 3), tnn.BatchNorm2d(8), tnn.ReLU(), tnn.MaxPool2d(2),
                                    tnn.Conv2d(8, 8, 3, groups=2, bias=False), tnn.BatchNorm2d(8, affine=False))),
        ("blocks", tnn.ModuleList([tnn.Linear(4, 4), tnn.BatchNorm1d(4, track_running_stats=False)])),
        ("heads", tnn.ModuleDict({"a": tnn.Linear(4, 2), "b": tnn.ConvTranspose2d(4, 2, 2)})),
    ]))
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key in ours_sd:
        assert ours_sd[key].shape == tuple(theirs_sd[key].shape), key
        assert str(ours_sd[key].dtype) == str(theirs_sd[key].dtype).replace("torch.", ""), key
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    # and the torch weights load as they are
    ours.load_state_dict({k: v.numpy() for k, v in theirs_sd.items()})
    np.testing.assert_array_equal(ours.features[0].weight.numpy(), theirs.features[0].weight.detach().numpy())


@pytest.mark.skipif(not minidl.backend.gpu_available(), reason="needs CuPy and a CUDA device")
def test_to_gpu_trains_and_comes_back():
    net = Net()
    reference = Net()
    reference.load_state_dict(net.state_dict())
    opt = optim.Adam(net.parameters(), lr=0.01)
    net.to("gpu")
    assert all(p.device == "gpu" for p in net.parameters()) and net.features[0].bn.running_mean.device == "gpu"
    net(minidl.randn(2, 3, 4, 4).to("gpu")).sum().backward()
    opt.step()
    assert opt.state[net.head.weight]["exp_avg"].__class__.__module__.startswith("cupy")
    net.load_state_dict(reference.state_dict())  # NumPy values into GPU arrays
    assert net.head.weight.device == "gpu"
    net.cpu()
    np.testing.assert_array_equal(net.head.weight.numpy(), reference.head.weight.numpy())
    net(minidl.randn(2, 3, 4, 4)).sum().backward()
    opt.step()  # state arrays follow the parameters back to the CPU
    assert isinstance(opt.state[net.head.weight]["exp_avg"], np.ndarray)
