"""ResNet with stochastic depth: Huang, Sun, Liu, Sedra and Weinberger, "Deep Networks with Stochastic
Depth", ECCV 2016.

Train a short network, test a deep one: during training each residual block l is switched off with
probability 1 - p_l, leaving only its shortcut, ``H_l = ReLU(b_l f_l(H_{l-1}) + id(H_{l-1}))`` with
``b_l ~ Bernoulli(p_l)``. The survival probability decays linearly with depth (paper Eq. 4),

    p_l = 1 - l / L * (1 - p_L),     l = 1 .. L,   p_L = 0.5,

so the first block almost always survives and the last one half of the time; of ResNet-110's L = 54
blocks, (3L - 1) / 4 = 40.25 are active on average during training. Shortcuts that change the shape are the
paper's: subsample and zero-pad (option A of resnet.py), so a dropped block still passes its input on.

**Per batch or per sample.** The paper draws one b_l per block per *mini-batch*: a dropped block is not
computed at all, which is where the training speed-up comes from. ``mode="batch"`` (the default) does
that. ``mode="sample"`` draws b_l per sample with ``F.drop_path`` (the form later networks use, e.g.
EfficientNet, ConvNeXt): every block is computed, and each sample sees its own random depth.

**Scaling at test time.** The paper trains with ``b_l f_l`` and tests with the expectation
``p_l f_l`` (Eq. 5). Here the branch is scaled by ``1 / p_l`` when it survives in training and left alone
at test time ("inverted", like ``F.dropout``). The two describe the same family of networks: the last
layer of f_l is a BN, and multiplying the paper's BN weight and bias by p_l gives the inverted network
exactly, in training and at test time alike (only the scale of those two parameters under SGD and weight
decay differs). ``test_time_scaling=True`` gives the paper's convention instead.
Either way evaluation is deterministic.
"""
import minidl
import minidl.functions as F
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_RESNET
from minidl.models.resnet import BasicBlock, CifarResNet

PAPER = "Huang, Sun, Liu, Sedra, Weinberger: Deep Networks with Stochastic Depth, ECCV 2016"


class StochasticDepthBlock(BasicBlock):
    """resnet.BasicBlock whose residual branch survives training with probability ``survival_prob``."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, survival_prob=1.0, mode="batch",
                 test_time_scaling=False):
        super().__init__(inplanes, planes, stride, downsample)
        if mode not in ("batch", "sample"):
            raise ValueError(f"StochasticDepthBlock: mode must be 'batch' or 'sample', got {mode!r}")
        self.survival_prob = survival_prob
        self.mode = mode
        self.test_time_scaling = test_time_scaling

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        p = self.survival_prob
        if self.training and self.mode == "batch" and minidl.default_rng().random() >= p:
            return self.relu(identity)  # the whole block is skipped for this mini-batch: nothing computed
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.training:
            if self.mode == "sample":
                out = F.drop_path(out, 1.0 - p, training=True)  # b out / p, b drawn per sample
                if self.test_time_scaling:
                    out = out * p  # b out: the paper's training branch
            elif not self.test_time_scaling:
                out = out * (1.0 / p)
        elif self.test_time_scaling:
            out = out * p  # the paper's test rule: the branch times its expected survival
        return self.relu(out + identity)

    def extra_repr(self):
        return f"survival_prob={self.survival_prob:.4f}, mode={self.mode!r}"


def linear_decay(num_blocks, p_last=0.5):
    """Survival probabilities p_1 .. p_L with p_l = 1 - l / L (1 - p_L) (paper Eq. 4)."""
    return [1.0 - l / num_blocks * (1.0 - p_last) for l in range(1, num_blocks + 1)]


class StochasticDepthResNet(CifarResNet):
    """The paper's CIFAR ResNet (resnet.CifarResNet, option A shortcuts) with stochastic-depth blocks."""

    def __init__(self, depth=110, num_classes=10, p_last=0.5, mode="batch", test_time_scaling=False):
        if (depth - 2) % 6:
            raise ValueError(f"StochasticDepthResNet: depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        super().__init__(StochasticDepthBlock, [n, n, n], num_classes=num_classes, shortcut="A", mode=mode,
                         test_time_scaling=test_time_scaling)
        blocks = [m for m in self.modules() if isinstance(m, StochasticDepthBlock)]
        for block, p in zip(blocks, linear_decay(len(blocks), p_last)):
            block.survival_prob = p


@register_model("CIFAR ResNet-110 with stochastic depth (54 blocks, p_L = 0.5, per-batch drops), 1.7M parameters",
                PAPER, recipe=CIFAR_RESNET)
def resnet110_stochastic_depth(num_classes=10, p_last=0.5, mode="batch", test_time_scaling=False):
    return StochasticDepthResNet(110, num_classes, p_last, mode, test_time_scaling)
