"""AlphaGo's policy and value networks: parameters counted by hand from the paper's layers, the 19 x 19
board kept through every layer, the bias per board point, gradients in float64, and PyTorch parity."""
import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn
from minidl.gradcheck import gradcheck
from minidl.models import get_model
from minidl.models.alphago import AlphaGoPolicy, AlphaGoValue, PositionBias
from minidl.summary import summary
from tests.helpers import to_torch, torch_or_skip
from tests.models.fast_init import fast_init

BOARD = 19
POINTS = BOARD * BOARD


def policy_params(k, planes):
    """Silver et al. 2016, Methods, layer by layer: 5x5 conv, eleven 3x3 convs, 1x1 conv, 361 point biases."""
    return (5 * 5 * planes + 1) * k + 11 * (3 * 3 * k + 1) * k + k + POINTS


def value_params(k, planes, hidden=256):
    """Layers 1-12 as the policy's, a 1x1 conv with its bias, FC 361 -> 256, FC 256 -> 1."""
    return (5 * 5 * planes + 1) * k + 11 * (3 * 3 * k + 1) * k + (k + 1) + (POINTS + 1) * hidden + hidden + 1


def board(n, planes=48, seed=0):
    return minidl.tensor(np.random.default_rng(seed).standard_normal((n, planes, BOARD, BOARD)).astype(np.float32))


@pytest.fixture(scope="module")
def policy_summary():
    """The match version (k = 192) as the issue asks: summary(get_model("alphago_policy"), (48, 19, 19))."""
    with fast_init():
        model = get_model("alphago_policy")
    return summary(model, (48, BOARD, BOARD))


def test_parameter_counts_equal_the_hand_count(policy_summary):
    assert policy_params(192, 48) == 3_882_793                      # the module docstring's table
    assert policy_summary.total_params == 3_882_793
    rows = [r for r in policy_summary.rows if r.type == "Conv2d"]
    assert [r.params for r in rows] == [230_592] + [331_968] * 11 + [192]
    assert policy_summary.row("position_bias").params == 361
    with fast_init():
        assert get_model("alphago_policy", k=128).num_parameters() == policy_params(128, 48) == 1_777_641
        assert get_model("alphago_value").num_parameters() == value_params(192, 49) == 3_980_162


def test_summary_keeps_the_board_19x19_through_every_layer(policy_summary):
    """P = (F - 1) / 2 pads layer 1 to 23 x 23 and layers 2-12 to 21 x 21; every output is 19 x 19."""
    model_convs = [r for r in policy_summary.rows if r.type == "Conv2d"]
    assert len(model_convs) == 13
    for row in model_convs:
        conv = row.module
        (kh, kw), (ph, pw) = conv.kernel_size, conv.padding
        assert (ph, pw) == ((kh - 1) // 2, (kw - 1) // 2)
        assert row.output_shape[2:] == (BOARD, BOARD), row.name
    assert [BOARD + 2 * r.module.padding[0] for r in model_convs] == [23] + [21] * 11 + [19]
    assert all(r.output_shape[1:] == (192, BOARD, BOARD) for r in model_convs[:12])
    assert model_convs[12].output_shape[1:] == (1, BOARD, BOARD)
    assert policy_summary.output_shape == (1, POINTS)
    # multiply-adds per board: K * C * KH * KW * 361 for each conv
    assert policy_summary.total_macs == (192 * 48 * 25 + 11 * 192 * 192 * 9 + 192) * POINTS
    text = str(policy_summary)
    assert "192x19x19" in text and "1x19x19" in text and "PositionBias" in text


def test_output_shapes_and_the_move_probability_map():
    minidl.manual_seed(0)
    policy, value = AlphaGoPolicy(k=8).eval(), AlphaGoValue(k=8).eval()
    x = board(3)
    with minidl.no_grad():
        logits = policy(x)
        probs = policy.move_probabilities(x)
        v = value(board(3, planes=49))
    assert logits.shape == (3, POINTS) and probs.shape == (3, BOARD, BOARD)
    np.testing.assert_allclose(probs.numpy().sum(axis=(1, 2)), 1.0, rtol=1e-5)
    # point (row, col) is logit row * 19 + col: the map is the softmax laid out row by row
    e = np.exp(logits.numpy() - logits.numpy().max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs.numpy()[:, 4, 7], (e / e.sum(axis=1, keepdims=True))[:, 4 * 19 + 7], rtol=1e-5)
    assert v.shape == (3, 1) and np.all(np.abs(v.numpy()) <= 1.0)


def test_equal_inputs_at_two_points_get_different_logits_from_their_own_biases():
    """The final layer sees the same feature vector at two points; only the per-point bias tells them apart."""
    minidl.manual_seed(0)
    policy = AlphaGoPolicy(k=4)
    policy.position_bias.bias.data[...] = np.random.default_rng(1).standard_normal((1, BOARD, BOARD))
    vector = np.float32([1, -2, 3, 0.5])[:, None, None]                    # the same 4 features at every point
    features = minidl.tensor(np.ones((2, 4, BOARD, BOARD), dtype=np.float32) * vector)
    with minidl.no_grad():
        logits = policy.position_bias(policy.head(features)).flatten(1).numpy()
        shared = nn.Conv2d(4, 1, 1)(features).flatten(1).numpy()   # a convolution's one shared bias
    p, q = 3 * 19 + 3, 15 * 19 + 10
    bias = policy.position_bias.bias.numpy().reshape(-1)
    assert abs(logits[0, p] - logits[0, q]) > 0.1
    np.testing.assert_allclose(logits[:, p] - logits[:, q], bias[p] - bias[q], rtol=1e-5)
    np.testing.assert_allclose(shared[:, p], shared[:, q])              # without it: equal logits


def test_the_whole_network_scores_a_uniform_board_by_its_point_biases():
    """Trunk weights zeroed (biases kept): every point's features are equal, so logits differ by the biases alone."""
    minidl.manual_seed(0)
    policy = AlphaGoPolicy(k=4).eval()
    for m in policy.features:
        if isinstance(m, nn.Conv2d):
            m.weight.data[...] = 0.0
            m.bias.data[...] = 0.5
    policy.head.weight.data[...] = 1.0
    bias = np.random.default_rng(2).standard_normal(POINTS).astype(np.float32)
    policy.position_bias.bias.data[...] = bias.reshape(1, BOARD, BOARD)
    with minidl.no_grad():
        logits = policy(board(2)).numpy()
    np.testing.assert_allclose(logits - logits[:, :1], np.broadcast_to(bias - bias[0], logits.shape), atol=1e-5)
    assert logits.std(axis=1).min() > 0.5


def test_position_bias_gradients_float64():
    rng = np.random.default_rng(0)
    layer = PositionBias(2, 3, 4).double()
    layer.bias.data[...] = rng.standard_normal((2, 3, 4))
    x = minidl.Tensor(rng.standard_normal((3, 2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda t, b: layer(t), [x, layer.bias], mode="full")
    # through the network: a small policy on a 5 x 5 board, random directions over input and every parameter
    minidl.manual_seed(0)
    policy = AlphaGoPolicy(k=3, planes=2, board_size=5).double()
    policy.position_bias.bias.data[...] = rng.standard_normal((1, 5, 5))
    x = minidl.Tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=True)
    params = list(policy.parameters())
    assert gradcheck(lambda t, *ps: policy(t), [x] + params, mode="random", num_directions=6)
    assert gradcheck(lambda b: policy(x.detach()), [policy.position_bias.bias], mode="full")


def test_position_bias_boundaries_and_errors():
    layer = PositionBias(1, 19, 19)
    assert layer(minidl.zeros(0, 1, 19, 19)).shape == (0, 1, 19, 19)     # an empty batch
    assert layer.num_parameters() == 361 and not layer.bias.numpy().any()
    with pytest.raises(ValueError, match=r"PositionBias: expected N x 1 x 19 x 19 inputs, got shape \(2, 1, 9, 9\)"):
        layer(minidl.zeros(2, 1, 9, 9))
    with pytest.raises(ValueError, match="PositionBias: height must be a positive int, got 0"):
        PositionBias(1, 0, 19)


def test_bad_boards_and_class_counts_are_clear_errors():
    policy = AlphaGoPolicy(k=4)
    expected = r"AlphaGoPolicy: expected N x 48 x 19 x 19 board features, got shape \(1, 3, 32, 32\)"
    with pytest.raises(ValueError, match=expected):
        policy(minidl.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="AlphaGoValue: expected N x 49 x 19 x 19"):
        AlphaGoValue(k=4)(minidl.zeros(1, 48, 19, 19))
    with pytest.raises(ValueError, match="alphago_policy: one class per point of the 19x19 board: num_classes must "
                                         "be 361, got num_classes=10"):
        get_model("alphago_policy", k=4, num_classes=10)
    with pytest.raises(ValueError, match="alphago_value: it outputs one value in"):
        get_model("alphago_value", k=4, num_classes=2)
    assert get_model("alphago_policy", k=4, num_classes=361).num_parameters() == policy_params(4, 48)


def test_he_initialisation_keeps_the_signal_through_thirteen_layers():
    """The named deviation (the paper gives no initialisation): He-normal weights, zero biases."""
    minidl.manual_seed(0)
    policy = AlphaGoPolicy(k=64)
    convs = [m for m in policy.features if isinstance(m, nn.Conv2d)]
    for conv in convs:
        fan_in = int(np.prod(conv.weight.shape[1:]))
        assert conv.weight.numpy().std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)
        assert not conv.bias.numpy().any()
    h, stds = board(2), []
    with minidl.no_grad():
        for layer in policy.features:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                stds.append(float(h.numpy().std()))
    assert 0.3 < stds[-1] / stds[0] < 3, stds


def test_the_policy_learns_to_point_at_a_marked_point():
    """A toy task: plane 0 marks the move. A small policy (a 7 x 7 board: the same layers, cheaper) gets
    well above chance (1/49) in 30 steps."""
    minidl.manual_seed(0)
    rng = np.random.default_rng(0)
    size = 7
    policy = AlphaGoPolicy(k=8, planes=2, board_size=size)
    optimizer = minidl.optim.Adam(policy.parameters(), lr=1e-2)

    def batch(n):
        moves = rng.integers(0, size * size, n)
        x = rng.standard_normal((n, 2, size, size)).astype(np.float32) * 0.1
        x[np.arange(n), 0, moves // size, moves % size] = 1.0
        return minidl.tensor(x), minidl.tensor(moves)

    for _ in range(30):
        x, y = batch(32)
        optimizer.zero_grad()
        F.cross_entropy(policy(x), y).backward()
        optimizer.step()
    x, y = batch(100)
    with minidl.no_grad():
        accuracy = (policy(x).numpy().argmax(axis=1) == y.numpy()).mean()
    assert accuracy > 0.5


def torch_twin(torch, layers):
    """The same layers in PyTorch, with our weights copied in."""
    twin = []
    for m in layers:
        if isinstance(m, nn.Conv2d):
            t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding,
                                bias=m.bias is not None)
        elif isinstance(m, nn.Linear):
            t = torch.nn.Linear(m.in_features, m.out_features)
        else:
            t = {nn.ReLU: torch.nn.ReLU, nn.Tanh: torch.nn.Tanh, nn.Flatten: torch.nn.Flatten}[type(m)]()
        for name, param in m.named_parameters():
            getattr(t, name).data = to_torch(torch, param.numpy())
        twin.append(t)
    return torch.nn.Sequential(*twin)


def test_policy_matches_pytorch():
    torch = torch_or_skip()
    minidl.manual_seed(0)
    policy = AlphaGoPolicy(k=8)
    policy.position_bias.bias.data[...] = np.random.default_rng(3).standard_normal((1, BOARD, BOARD))
    trunk = torch_twin(torch, list(policy.features) + [policy.head])
    bias = to_torch(torch, policy.position_bias.bias.numpy(), requires_grad=True)
    x = board(2).numpy()
    tx = to_torch(torch, x, requires_grad=True)
    expected = (trunk(tx) + bias).flatten(1)
    mx = minidl.Tensor(x, requires_grad=True)
    ours = policy(mx)
    np.testing.assert_allclose(ours.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    target = np.array([5, 300])
    F.cross_entropy(ours, minidl.tensor(target)).backward()
    torch.nn.functional.cross_entropy(expected, torch.tensor(target)).backward()
    for ours_grad, expected_grad in ((mx.grad, tx.grad), (policy.position_bias.bias.grad, bias.grad)):
        expected_grad = expected_grad.numpy()
        np.testing.assert_allclose(ours_grad.numpy(), expected_grad, rtol=1e-3, atol=1e-4 * np.abs(expected_grad).max())


def test_value_matches_pytorch():
    torch = torch_or_skip()
    minidl.manual_seed(0)
    value = AlphaGoValue(k=8)
    for m in value.modules():   # non-zero biases, so that every one of them is compared
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.bias.data[...] = np.random.default_rng(m.bias.numel()).uniform(0.0, 0.1, m.bias.shape)
    twin = torch_twin(torch, list(value.features) + list(value.head))
    x = board(3, planes=49).numpy()
    ours = value(minidl.tensor(x))
    expected = twin(to_torch(torch, x))
    np.testing.assert_allclose(ours.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    ours.sum().backward()
    expected.sum().backward()
    for (name, p), t in zip(value.named_parameters(), twin.parameters()):   # float32 sums in another order
        expected = t.grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max(),
                                   err_msg=name)
