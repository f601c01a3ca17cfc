"""FractalNet: the expansion rule and its flattened joins, parameter counts, local and global drop-path."""
import numpy as np
import pytest

import minidl
from minidl.models.fractalnet import FractalBlock, FractalNet
from tests.models.residual_checks import build, count, forward_backward


def _expected_count(channels, columns, num_classes):
    """Per block, C convs read the block's input and 2^C - 1 - C read its width; each conv has a BN."""
    total, c_in = 0, 3
    convs_per_block = 2 ** columns - 1
    for c_out in channels:
        total += 9 * (columns * c_in * c_out + (convs_per_block - columns) * c_out ** 2)  # conv weights (no bias)
        total += 2 * c_out * convs_per_block                                             # BN weight and bias
        c_in = c_out
    return total + c_in * num_classes + num_classes


@pytest.mark.parametrize("name, channels, columns, expected", [
    # Larsson et al. 2017, Table 1 quote 38.6M for the 20-layer (C=3) net; its layers add up to 33.7M
    # (khanrc/pt.fractalnet reproduces 33.7M too). Conv weights alone: 33,698,880.
    ("fractalnet_cifar", (64, 128, 256, 512, 512), 3, 33_724_618),
    ("fractalnet40_cifar", (64, 128, 256, 512, 512), 4, 76_106_634),
    ("fractalnet_cifar_small", (16, 32, 64), 3, 266_170),
])
def test_parameter_count(name, channels, columns, expected):
    model = build(name)
    assert count(model) == _expected_count(channels, columns, 10) == expected
    convs = sum(p.numel() for n, p in model.named_parameters() if n.endswith("conv.weight"))
    if name == "fractalnet_cifar":
        assert convs == 33_698_880


@pytest.mark.parametrize("name", ["fractalnet_cifar", "fractalnet40_cifar", "fractalnet_cifar_small"])
def test_every_parameter_gets_a_gradient(name):
    model = build(name)
    model.drop_path = False  # with drop-path a global batch trains a single column
    forward_backward(model, minidl.randn(2, 3, 32, 32), 10)


def test_two_columns_follow_the_expansion_rule():
    """f_2(z) = join(f_1(f_1(z)), f_1(z)); the block's pool comes before the join, as in the authors' code."""
    block = FractalBlock(3, 4, num_columns=2).eval()
    x = minidl.randn(2, 3, 8, 8)
    with minidl.no_grad():
        deep = block.pool(block.columns[1][1](block.columns[1][0](x)))
        shallow = block.pool(block.columns[0][0](x))
        np.testing.assert_allclose(block(x).numpy(), ((deep + shallow) * 0.5).numpy(), rtol=1e-5, atol=1e-6)


def test_three_columns_merge_the_joins_that_end_together():
    """f_3(z) = join(f_2(f_2(z)), conv(z)): the inner f_2's last join and the outer join are one mean of three."""
    block = FractalBlock(3, 4, num_columns=3).eval()
    c0, c1, c2 = block.columns
    x = minidl.randn(2, 3, 8, 8)
    with minidl.no_grad():
        j = (c2[1](c2[0](x)) + c1[0](x)) * 0.5
        three = [block.pool(c2[3](c2[2](j))), block.pool(c1[1](j)), block.pool(c0[0](x))]
        expected = (three[0] + three[1] + three[2]) * (1 / 3)
        np.testing.assert_allclose(block(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_eval_is_deterministic_and_training_is_seeded():
    model = build("fractalnet_cifar_small")
    x = minidl.randn(2, 3, 16, 16)
    model.eval()
    with minidl.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
        model.train()
        outs = []
        for seed in (3, 3, 4, 5):
            minidl.manual_seed(seed)
            outs.append(model(x).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not all(np.allclose(outs[0], o) for o in outs[2:])


def _column_calls(model):
    calls = []
    for b, block in enumerate(model.blocks):
        for c, column in enumerate(block.columns):
            for conv in column:
                conv.register_forward_hook(lambda m, i, o, b=b, c=c: calls.append((b, c)))
    return calls


def test_global_drop_path_runs_one_column_through_every_block():
    model = FractalNet(channels=(4, 4), num_columns=3, dropout=None, global_ratio=1.0).train()
    calls = _column_calls(model)
    x = minidl.randn(2, 3, 8, 8)
    with minidl.no_grad():
        for _ in range(10):
            calls.clear()
            model(x)
            columns = {c for _, c in calls}
            assert len(columns) == 1
            (c,) = columns
            assert len(calls) == 2 * 2 ** c  # that column's convs, in both blocks


def test_local_and_global_batches_are_mixed_half_and_half():
    model = FractalNet(channels=(2,), num_columns=2, dropout=None).train()
    calls = _column_calls(model)
    x = minidl.randn(2, 3, 4, 4)
    global_batches = 0
    with minidl.no_grad():
        for _ in range(300):
            calls.clear()
            model(x)
            global_batches += len(calls) < 3  # a local batch computes all 3 convs of the block
    assert global_batches / 300 == pytest.approx(0.5, abs=0.09)


def test_local_join_drops_inputs_but_keeps_one():
    block = FractalBlock(1, 1, num_columns=2, local_drop=0.15)
    a, b = minidl.zeros(1, 1, 1, 1), minidl.ones(1, 1, 1, 1)
    results = [block.join([a, b], drop=True).item() for _ in range(2000)]
    both = np.mean([r == 0.5 for r in results])
    assert both == pytest.approx(0.85 ** 2, abs=0.04)  # each input survives with probability 0.85
    assert set(results) <= {0.0, 0.5, 1.0}
    block.local_drop = 1.0  # everything dropped: one input is kept anyway
    assert all(block.join([a, b], drop=True).item() in (0.0, 1.0) for _ in range(20))
    assert block.join([a, b], drop=False).item() == 0.5


def test_eval_column_evaluates_a_single_column():
    model = FractalNet(channels=(4, 4), num_columns=3, dropout=None).eval()
    model.eval_column = 2  # the deepest column alone
    x = minidl.randn(2, 3, 8, 8)
    with minidl.no_grad():
        h = x
        for block in model.blocks:
            for conv in block.columns[2]:
                h = conv(h)
            h = block.pool(h)
        expected = model.fc(model.avgpool(h).flatten(1))
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
