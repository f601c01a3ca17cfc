"""ResNet-110 with stochastic depth: survival probabilities, per-batch and per-sample drops, eval determinism,
and the expectation of a dropped branch."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.models.stochastic_depth import StochasticDepthBlock, StochasticDepthResNet, linear_decay
from tests.models.residual_checks import build, count, forward_backward, in_millions


def test_parameter_count_is_resnet110s():
    model = build("resnet110_stochastic_depth")
    assert count(model) == count(build("resnet110"))
    assert in_millions(count(model)) == 1.7  # He et al. 2016, Table 6 (Huang et al. 2016 use that net)


def test_linear_decay_of_survival_probabilities():
    model = build("resnet110_stochastic_depth")
    probs = [m.survival_prob for m in model.modules() if isinstance(m, StochasticDepthBlock)]
    assert len(probs) == 54
    np.testing.assert_allclose(probs, [1 - l / 54 * 0.5 for l in range(1, 55)])  # paper Eq. 4, p_L = 0.5
    assert sum(probs) == pytest.approx((3 * 54 - 1) / 4)  # expected number of active blocks
    assert linear_decay(4, 0.0) == [0.75, 0.5, 0.25, 0.0]


def test_every_parameter_gets_a_gradient_per_sample_mode():
    forward_backward(build("resnet110_stochastic_depth", mode="sample"), minidl.randn(2, 3, 32, 32), 10)


def test_eval_is_deterministic_and_training_is_seeded():
    model = StochasticDepthResNet(20)
    x = minidl.randn(4, 3, 32, 32)
    model.eval()
    with minidl.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    model.train()
    outs = []
    for seed in (1, 1, 2):
        minidl.manual_seed(seed)
        with minidl.no_grad():
            outs.append(model(x).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])


def test_per_batch_mode_skips_the_whole_block():
    """Per mini-batch (the paper's rule): a dropped block is not computed at all; it runs with probability p."""
    block = StochasticDepthBlock(4, 4, survival_prob=0.3).train()
    calls = []
    block.conv1.register_forward_hook(lambda m, i, o: calls.append(1))
    x = minidl.rand(2, 4, 3, 3)
    with minidl.no_grad():
        for _ in range(400):
            out = block(x)
            if len(calls) == 0:
                np.testing.assert_array_equal(out.numpy(), x.numpy())  # ReLU(identity) of a non-negative input
    assert len(calls) / 400 == pytest.approx(0.3, abs=0.07)


@pytest.mark.parametrize("mode", ["batch", "sample"])
@pytest.mark.parametrize("test_time_scaling", [False, True])
def test_expected_training_output_equals_eval_output(mode, test_time_scaling):
    """E[b f(x) / p] = f(x) (inverted scaling) and E[b f(x)] = p f(x) (the paper's test rule): averaged over
    seeds, the training output matches the evaluation output. BN is kept in eval mode so that only the
    drop is random, and the branch is scaled down so that the final ReLU stays linear."""
    block = StochasticDepthBlock(4, 4, survival_prob=0.6, mode=mode, test_time_scaling=test_time_scaling)
    nn.init.normal_(block.conv2.weight, std=0.01)
    x = minidl.rand(3, 4, 4, 4) + 5.0
    block.eval()
    with minidl.no_grad():
        expected = block(x).numpy() - x.numpy()  # the (scaled) residual branch at test time
        block.train()
        block.bn1.eval()
        block.bn2.eval()
        trials = [block(x).numpy() - x.numpy() for _ in range(600)]
    mean = np.mean(trials, axis=0)
    np.testing.assert_allclose(mean, expected, atol=0.12 * np.abs(expected).max())


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        StochasticDepthBlock(4, 4, mode="layer")
