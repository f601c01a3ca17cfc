"""LeNet-1 and LeNet-5: per-layer parameters as the papers and the notes (003) count them, C3's connection
table, the fixed RBF output, and a short training run showing the faithful LeNet-5 learns with
cross-entropy on its outputs.
"""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl.models import get_model
from minidl.models.lenet import PartialConv2d, digit_prototypes, lenet5_map_loss
from minidl.summary import summary

# Table I of LeCun et al. 1998: rows are S2's 6 maps, columns C3's 16 maps, X = connected.
TABLE_I = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


@pytest.mark.parametrize("name, shape, params, source", [
    ("lenet1", (2, 1, 28, 28), 2_578, "LeCun et al. 1990: '2,578 independent parameters' (notes: under 3,000)"),
    ("lenet5", (2, 1, 32, 32), 60_000, "LeCun et al. 1998 and notes 003: 156+12+1516+32+48120+10164 = 60,000"),
    ("lenet5_modern", (2, 1, 32, 32), 61_706, "full C3 2,416 and a Linear(84, 10) 850 instead of the RBF layer"),
])
def test_parameter_count_forward_and_backward(name, shape, params, source):
    minidl.manual_seed(0)
    model = get_model(name)
    assert model.num_parameters() == params, source
    x = minidl.tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    out = model(x)
    assert out.shape == (shape[0], 10)
    F.cross_entropy(out, minidl.tensor([3, 7])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), pname


def test_lenet5_per_layer_parameters_and_shapes_match_the_paper():
    s = summary(get_model("lenet5"), (1, 32, 32))
    got = {n: (s.row(n).params, s.row(n).output_shape[1:]) for n in ("c1", "s2", "c3", "s4", "c5", "f6", "output")}
    assert got == {"c1": (156, (6, 28, 28)), "s2": (12, (6, 14, 14)), "c3": (1516, (16, 10, 10)),
                   "s4": (32, (16, 5, 5)), "c5": (48120, (120, 1, 1)), "f6": (10164, (84,)), "output": (0, (10,))}
    # the paper's connection counts are these multiply-adds plus one per unit for its bias
    assert s.row("c1").macs + 6 * 28 * 28 == 122_304
    assert s.row("c3").macs + 16 * 10 * 10 == 151_600


def test_lenet1_per_layer_parameters_add_up_to_the_1990_paper():
    s = summary(get_model("lenet1"), (1, 28, 28))
    got = {n: (s.row(n).params, s.row(n).output_shape[1:]) for n in ("h1", "h2", "h3", "h4", "output")}
    assert got == {"h1": (104, (4, 24, 24)), "h2": (8, (4, 12, 12)), "h3": (512, (12, 8, 8)),
                   "h4": (24, (12, 4, 4)), "output": (1930, (10,))}
    units = 28 * 28 + sum(int(np.prod(s.row(n).output_shape[1:])) for n in ("h1", "h2", "h3", "h4", "output"))
    assert units + 1 == 4_635                    # the paper's count includes the bias unit
    connections = sum(s.row(n).macs for n in ("h1", "h3", "output")) + 4 * s.row("h2").macs + 4 * s.row("h4").macs
    connections += sum(int(np.prod(s.row(n).output_shape[1:])) for n in ("h1", "h2", "h3", "h4", "output"))
    assert connections == 98_442                 # weights + the 4 inputs of each averaging unit + biases


def test_c3_reads_the_maps_of_table_i():
    expected = np.array([[ch == "X" for ch in row] for row in TABLE_I.split()])
    model = get_model("lenet5")
    np.testing.assert_array_equal(model.c3.connection_matrix(), expected)
    assert [tuple(c.weight.shape) for c in model.c3.convs] == [(6, 3, 5, 5), (9, 4, 5, 5), (1, 6, 5, 5)]


def test_partial_conv_equals_a_full_conv_with_the_missing_kernels_zeroed():
    rng = np.random.default_rng(0)
    table = [(2, 0), (1,), (0, 1, 2), (2, 1)]     # unsorted fan-ins: exercises the reordering
    conv = PartialConv2d(3, table, kernel_size=3)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    full_w = np.zeros((4, 3, 3, 3), dtype=np.float32)
    full_b = np.zeros(4, dtype=np.float32)
    for grouped in conv.convs:
        maps = [k for k, inputs in enumerate(table) if len(inputs) == grouped.weight.shape[1]]
        w = grouped.weight.numpy()
        for g, k in enumerate(maps):
            for j, c in enumerate(table[k]):
                full_w[k, c] += w[g, j]
            full_b[k] = grouped.bias.numpy()[g]
    expected = F.conv2d(minidl.tensor(x), minidl.tensor(full_w), minidl.tensor(full_b)).numpy()
    np.testing.assert_allclose(conv(minidl.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_partial_conv_gradients_equal_those_of_its_grouped_convolutions():
    # The dense forward against the grouped convolutions run on the gathered input maps (repeats allowed),
    # which is what the parameters mean: same outputs, same gradient for every kernel, bias and input.
    table = [(2, 0), (1,), (0, 1, 2), (2, 1)]
    conv = PartialConv2d(3, table, kernel_size=3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6))
    g = rng.standard_normal((2, 4, 4, 4))
    grads = []
    for path in ("dense", "grouped"):
        conv.zero_grad()
        xt = minidl.tensor(x.astype(np.float32), requires_grad=True)
        if path == "dense":
            y = conv(xt)
        else:
            parts, order = [], []
            for grouped in conv.convs:
                n = grouped.weight.shape[1]
                maps = [k for k, inputs in enumerate(table) if len(inputs) == n]
                parts.append(grouped(xt[:, np.array([c for k in maps for c in table[k]])]))
                order += maps
            y = F.concat(parts, axis=1)[:, np.argsort(order)]
        (y * minidl.tensor(g.astype(np.float32))).sum().backward()
        grads.append([xt.grad.numpy()] + [p.grad.numpy() for p in conv.parameters()])
    for dense, grouped in zip(*grads):
        np.testing.assert_allclose(dense, grouped, rtol=1e-5, atol=1e-5)
    assert conv.macs((2, 3, 6, 6), (2, 4, 4, 4)) == (2 + 1 + 3 + 2) * 9 * 16


def test_rbf_output_is_minus_the_squared_distance_to_fixed_prototypes():
    model = get_model("lenet5")
    prototypes = digit_prototypes()
    assert prototypes.shape == (10, 84) and set(np.unique(prototypes)) == {-1.0, 1.0}
    assert "output.prototypes" in model.state_dict()
    assert all("prototypes" not in n for n, _ in model.named_parameters())
    f6 = np.random.default_rng(0).uniform(-1.7, 1.7, (3, 84)).astype(np.float32)
    got = model.output(minidl.tensor(f6)).numpy()
    np.testing.assert_allclose(got, ((f6[:, None, :] - prototypes[None]) ** 2).sum(-1), rtol=1e-5)
    # F6 drawing exactly digit 4's bitmap gives penalty 0 for class 4: the prediction
    assert model.output(minidl.tensor(prototypes[4:5])).numpy().argmin() == 4


def test_map_loss_is_cross_entropy_plus_a_rubbish_class():
    logits = minidl.tensor(np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32) * 5)
    target = minidl.tensor([0, 3, 5, 9])
    assert np.isclose(lenet5_map_loss(logits, target, j=1e4).item(), F.cross_entropy(logits, target).item())
    y = -logits.numpy()
    expected = np.mean(y[np.arange(4), target.numpy()] + np.log(np.exp(-1.0) + np.exp(-y).sum(1)))
    assert np.isclose(lenet5_map_loss(logits, target, j=1.0).item(), expected, rtol=1e-5)


def test_lenet5_learns_mnist_digits_with_cross_entropy_on_its_rbf_outputs():
    """32 digits of the MNIST sample, 20 full-batch SGD steps at the MNIST recipe's momentum."""
    from minidl.data import load_mnist_sample
    from minidl.optim import SGD
    images, labels = load_mnist_sample(train=True)
    pick = np.random.default_rng(0).permutation(len(labels))[:32]
    x = np.pad((images[pick] / 255.0 - 0.1307) / 0.3081, ((0, 0), (2, 2), (2, 2)))[:, None].astype(np.float32)
    x, y = minidl.tensor(x), minidl.tensor(labels[pick].astype(np.int64))
    minidl.manual_seed(0)
    model = get_model("lenet5")
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with minidl.no_grad():
        accuracy = (model.eval()(x).numpy().argmax(1) == y.numpy()).mean()
    assert losses[-1] < 0.5 * losses[0] and accuracy > 0.75, (losses, accuracy)


def test_lenet5_logits_are_negated_penalties_over_the_temperature():
    x = minidl.tensor(np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32))
    minidl.manual_seed(0)
    paper = get_model("lenet5", temperature=1.0)
    minidl.manual_seed(0)
    default = get_model("lenet5")
    with minidl.no_grad():
        y = paper(x).numpy()
        assert (y <= 0).all()                                   # -y: penalties are squared distances
        np.testing.assert_allclose(default(x).numpy(), y / 8.0, rtol=1e-5)


def test_lenet5_modern_options():
    relu_max = get_model("lenet5_modern")
    tanh_avg = get_model("lenet5_modern", activation="tanh", pooling="avg")
    assert type(relu_max.features[1]).__name__ == "ReLU" and type(relu_max.features[2]).__name__ == "MaxPool2d"
    assert type(tanh_avg.features[1]).__name__ == "Tanh" and type(tanh_avg.features[2]).__name__ == "AvgPool2d"
    with pytest.raises(ValueError, match="activation"):
        get_model("lenet5_modern", activation="sigmoid")
