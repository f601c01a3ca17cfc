"""FractalNet: Larsson, Maire and Shakhnarovich, "FractalNet: Ultra-Deep Neural Networks without
Residuals", ICLR 2017.

Depth without residuals. A fractal block with C columns is built by the expansion rule

    f_1(z) = conv(z),        f_{C+1}(z) = join(f_C(f_C(z)), conv(z)),

where "conv" is conv3x3 - BN - ReLU and ``join`` is the element-wise mean. Unrolled, column c (c = 1..C)
is a plain stack of 2^(c-1) convs, and the columns meet at joins; the deepest path has 2^(C-1) convs.
Where the recursion nests joins that end at the same depth (``join(join(a, b), c)``), the paper's
Figure 1 and its Caffe code merge them into one join over all the columns that end there (mean of a,
b and c), and so does this file. B blocks separated by 2x2 max pools give B * 2^(C-1) layers.

Drop-path regularises the co-adaptation of the columns (paper Section 3.1), per mini-batch:

* local: each input of a join is dropped with probability 0.15, keeping at least one; the join is the
  mean of the survivors (so no rescaling is needed);
* global: one column is chosen for the whole network, and only it is computed.

Each mini-batch is local or global with probability 1/2 each (the paper's 50/50 mix). At evaluation
nothing is dropped and every join averages all its inputs; ``model.eval_column = c`` evaluates the
single column c instead (the paper's "deepest column alone", c = C - 1 here).

CIFAR configuration (the paper's CIFAR experiments and the authors' Caffe generator): B = 5 blocks with 64, 128, 256,
512, 512 channels, dropout per block 0, 0.1, 0.2, 0.3, 0.4 (the "+ dropout" rows), C = 3 columns:
20 layers. The paper's Table 1 lists this 20-layer net with 38.6M parameters, but counting its layers
gives 33.7M: per block C convs read the block's input and 2^C - 1 - C the block's width, i.e.
sum over blocks of 9 (3 c_in c_out + 4 c_out^2) = 33,698,880 conv weights; khanrc/pt.fractalnet, a
faithful PyTorch reproduction, reports the same 33.7M and the same disagreement. The 40-layer net of
Figure 1 (C = 4) at these widths has 76.1M parameters (``fractalnet40_cifar``).

Deviations from the authors' Caffe code, none affecting the structure: convs have no bias (a BN follows;
Caffe's had one) and BN has a learned scale and shift (Caffe's BatchNorm layer had none); final
features are global-average-pooled (the identity at 1 x 1, so inputs other than 32 x 32 work too).
"""
import minidl
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import CIFAR_RESNET

PAPER = "Larsson, Maire, Shakhnarovich: FractalNet: Ultra-Deep Neural Networks without Residuals, ICLR 2017"


class ConvBlock(nn.Module):
    """The paper's "conv" unit: conv3x3 - dropout - BN - ReLU (dropout where the authors' Caffe code has it)."""

    def __init__(self, in_channels, out_channels, dropout=0.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.conv(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.relu(self.bn(x))


class FractalBlock(nn.Module):
    """C columns; ``columns[c]`` holds 2^c ConvBlocks (c = 0 shallowest). Ends with a 2x2 max pool.

    At depth step d = 1 .. 2^(C-1), column c computes its next conv when 2^(C-1-c) divides d; the columns
    that compute at the same step are joined, and the join is the input of all of them at the next step.
    As in the authors' implementation, the pool comes before the final join (pool each column, then
    average), which costs nothing in parameters.
    """

    def __init__(self, in_channels, out_channels, num_columns, dropout=0.0, local_drop=0.15):
        super().__init__()
        self.num_columns = num_columns
        self.local_drop = local_drop
        self.columns = nn.ModuleList([
            nn.ModuleList([ConvBlock(in_channels if i == 0 else out_channels, out_channels, dropout)
                           for i in range(2 ** c)])
            for c in range(num_columns)])
        self.pool = nn.MaxPool2d(2)

    def join(self, inputs, drop):
        """Mean of the inputs; with ``drop``, of a random non-empty subset (local drop-path)."""
        if drop and len(inputs) > 1:
            rng = minidl.default_rng()
            keep = rng.random(len(inputs)) >= self.local_drop
            if not keep.any():
                keep[rng.integers(len(inputs))] = True
            inputs = [x for x, k in zip(inputs, keep) if k]
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out if len(inputs) == 1 else out * (1.0 / len(inputs))

    def forward(self, x, column=None, local_drop=False):
        if column is not None:  # global drop-path (or evaluating one column): a plain stack of convs
            for conv in self.columns[column]:
                x = conv(x)
            return self.pool(x)
        C = self.num_columns
        depth = 2 ** (C - 1)
        inputs = [x] * C
        for d in range(1, depth + 1):
            active = [c for c in range(C) if d % 2 ** (C - 1 - c) == 0]
            outs = [self.columns[c][d // 2 ** (C - 1 - c) - 1](inputs[c]) for c in active]
            if d == depth:
                outs = [self.pool(o) for o in outs]
            joined = outs[0] if len(outs) == 1 else self.join(outs, local_drop)
            for c in active:
                inputs[c] = joined
        return inputs[-1]


class FractalNet(nn.Module):
    """B fractal blocks (each ending in a 2x2 max pool), then a fully connected layer.

    Shapes for a 32 x 32 input and the CIFAR widths 64-128-256-512-512.
    """

    def __init__(self, num_classes=10, channels=(64, 128, 256, 512, 512), num_columns=3,
                 dropout=(0.0, 0.1, 0.2, 0.3, 0.4), local_drop=0.15, global_ratio=0.5, drop_path=True):
        super().__init__()
        dropout = [0.0] * len(channels) if dropout is None else list(dropout)
        if len(dropout) != len(channels):
            raise ValueError(f"FractalNet: {len(channels)} blocks but {len(dropout)} dropout rates")
        self.num_columns = num_columns
        self.global_ratio = global_ratio
        self.drop_path = drop_path
        self.eval_column = None
        in_ch = 3
        blocks = []
        for out_ch, p in zip(channels, dropout):
            blocks.append(FractalBlock(in_ch, out_ch, num_columns, p, local_drop))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)  # the authors' Caffe filler: "xavier"

    def forward(self, x):
        column, local = self.eval_column, False
        if self.training and self.drop_path:
            rng = minidl.default_rng()
            if rng.random() < self.global_ratio:
                column = int(rng.integers(self.num_columns))  # global: one column for the whole net
            else:
                local = True
        for block in self.blocks:
            x = block(x, column=column, local_drop=local)
        # block 1: N x 64 x 16 x 16, 2: N x 128 x 8 x 8, 3: N x 256 x 4 x 4, 4: N x 512 x 2 x 2, 5: N x 512 x 1 x 1
        x = self.avgpool(x).flatten(1)          # N x 512
        return self.fc(x)                       # N x num_classes


@register_model("FractalNet for CIFAR: 5 blocks, C=3 columns (20 layers), 64-512 channels, drop-path + dropout",
                PAPER, recipe=CIFAR_RESNET)
def fractalnet_cifar(num_classes=10, **kwargs):
    return FractalNet(num_classes, num_columns=3, **kwargs)


@register_model("FractalNet for CIFAR with C=4 columns (40 layers, the paper's Figure 1), 76.1M parameters", PAPER,
                recipe=CIFAR_RESNET)
def fractalnet40_cifar(num_classes=10, **kwargs):
    return FractalNet(num_classes, num_columns=4, **kwargs)


@register_model("Small FractalNet for quick CIFAR runs: 3 blocks of 16-32-64 channels, C=3 columns", PAPER,
                recipe=CIFAR_RESNET)
def fractalnet_cifar_small(num_classes=10, **kwargs):
    kwargs.setdefault("dropout", (0.0, 0.1, 0.2))
    return FractalNet(num_classes, channels=(16, 32, 64), num_columns=3, **kwargs)
