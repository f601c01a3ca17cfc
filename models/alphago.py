"""AlphaGo's networks: Silver et al., "Mastering the game of Go with deep neural networks and tree search",
Nature 529 (2016), Methods, "Neural network architecture".

The last case study of notes 001: a 19 x 19 board described by 48 feature planes is a 19x19x48 image;
convolutions padded by P = (F - 1) / 2 keep the 19 x 19 size through every layer, and the output is a
19 x 19 map of move probabilities. No pooling and no stride: every layer keeps one unit per board point.

The supervised-learning policy network p_sigma(a | s) (``alphago_policy``), layer by layer, with the
parameters counted by hand for the match version (k = 192 filters, 48 planes):

    layer    what                                                  output        parameters
    1        zero-pad to 23x23 (P = 2), k 5x5 convolutions, ReLU   k x 19 x 19   (5*5*48 + 1) * 192      =   230,592
    2-12     zero-pad to 21x21 (P = 1), k 3x3 convolutions, ReLU   k x 19 x 19   11 * (3*3*192 + 1) * 192 = 3,651,648
    13       one 1x1 convolution, no shared bias                   1 x 19 x 19   1*1*192                 =       192
             a different bias for each of the 19 * 19 points       1 x 19 x 19   361                     =       361
    output   the map flattened: 361 logits                         361                            total   3,882,793

In general k (25 planes + 1) + 11 k (9 k + 1) + k + 361: 1,777,641 for the paper's k = 128.

The value network v_theta(s) (``alphago_value``) reads 49 planes (the 48 and the colour to play):

    layer    what                                                  output        parameters
    1        zero-pad to 23x23, k 5x5 convolutions, ReLU           k x 19 x 19   (5*5*49 + 1) * 192      =   235,392
    2-12     zero-pad to 21x21, k 3x3 convolutions, ReLU           k x 19 x 19   11 * (3*3*192 + 1) * 192 = 3,651,648
    13       one 1x1 convolution, ReLU                             1 x 19 x 19   192 + 1                 =       193
    14       fully connected, 256 ReLUs                            256           (361 + 1) * 256         =    92,672
    output   fully connected, one tanh unit                        1             256 + 1                 =       257
                                                                                                  total   3,980,162

The 48 planes (Extended Data Table 2): stone colour (3), ones (1), turns since (8), liberties (8),
capture size (8), self-atari size (8), liberties after move (8), ladder capture (1), ladder escape (1),
sensibleness (1), zeros (1). The constant plane of ones is what tells the network where the board
ends: zero padding turns it into an edge marker. Computing these features from Go positions is a Go
engine's job, not a layer's; there is no Go data here (the training command's synthetic set stands in).

Deviations from the paper, each named again where it happens:

* Output: ``forward`` returns the N x 361 logits (point (row, col) at index row * 19 + col) and leaves
  the softmax to the loss, as PyTorch models do: ``F.cross_entropy(logits, move)`` is the paper's
  log-likelihood objective, computed stably. :meth:`AlphaGoPolicy.move_probabilities` applies the
  paper's softmax and gives the N x 19 x 19 map.
* Initialisation: the paper gives none. Convolutions and linear layers are He-normal (13 plain ReLU
  layers without batch norm: PyTorch's default scale would shrink the signal at every layer), biases
  and the position biases zero.
* Value network: the paper says only that hidden layer 12 is "an additional convolution layer" and that
  layer 13 "convolves 1 filter of kernel size 1 x 1"; here layer 12 is one more k-filter 3x3 convolution
  (so layers 2-12 match the policy network's) and layers 12 and 13 are followed by a ReLU like every
  other hidden convolution.
"""
from dataclasses import replace

import numpy as np

import minidl.functions as F
from minidl import nn
from minidl.models.registry import register_model
from minidl.training.recipes import Recipe

SILVER_2016 = ("Silver et al., Mastering the game of Go with deep neural networks and tree search, "
               "Nature 529 (2016)")

# Methods, "Neural network architecture": the convolutional trunk both networks share, one row per group of
# hidden layers. Each zero-pads by P = (F - 1) / 2, which is the paper's "zero pads ... into a 23 x 23
# (21 x 21) image" on a 19 x 19 board.
TRUNK = (
    # layers  kernel F   padded board (19 + 2P)
    (1,       5),        # 23 x 23: layer 1
    (11,      3),        # 21 x 21: layers 2-12
)

# How the training command trains the policy network by default (declared at registration, below). The
# paper's SL training (Methods, "Supervised learning of policy networks"): 29.4M positions from 160,000
# KGS games, 8 reflections and rotations of each, asynchronous SGD on 50 GPUs, mini-batches of 16, step
# size 0.003 halved every 80M steps, no momentum, 340M steps. Here: the same SGD settings on the synthetic
# set (no Go data ships with minidl); no halving, which a CPU run never reaches.
POLICY_RECIPE = Recipe(
    dataset="synthetic", input_size=19, channels=48, num_classes=19 * 19, lr=0.003, momentum=0.0,
    weight_decay=0.0, batch_size=16, epochs=10, schedule="none",
    source="Silver et al. 2016, Methods: SGD, step size 0.003, no momentum, mini-batch 16 (halved every 80M "
           "steps: not reached here); synthetic 48 x 19 x 19 inputs with 361 move classes stand in for KGS games")


class PositionBias(nn.Module):
    """A learned bias for every position of a feature map: y[n, c, h, w] = x[n, c, h, w] + bias[c, h, w].

    A convolution shares one bias per output channel over all positions; this layer gives each position
    its own, so equal inputs at two board points can score differently (AlphaGo's final layer: "a
    different bias for each position"). x (N, C, H, W) -> y (N, C, H, W); ``C * H * W`` parameters,
    zero at first. No multiply-adds (for ``minidl.summary``, additions are free).

    >>> PositionBias(1, 19, 19)(minidl.zeros(2, 1, 19, 19)).shape
    (2, 1, 19, 19)
    """

    def __init__(self, channels, height, width):
        super().__init__()
        for name, n in (("channels", channels), ("height", height), ("width", width)):
            if not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"PositionBias: {name} must be a positive int, got {n!r}")
        self.bias = nn.Parameter(np.zeros((int(channels), int(height), int(width)), dtype=np.float32))

    def forward(self, x):
        if x.ndim != 4 or tuple(x.shape[1:]) != self.bias.shape:
            C, H, W = self.bias.shape
            raise ValueError(f"PositionBias: expected N x {C} x {H} x {W} inputs, got shape {tuple(x.shape)}")
        return x + self.bias

    def extra_repr(self):
        return "{}, {}, {}".format(*self.bias.shape)


def conv_trunk(planes, k, table=TRUNK):
    """Hidden layers 1-12: for each row of ``table``, that many k-filter convolutions of size F, each
    padded by (F - 1) / 2 so that the board keeps its size, each followed by a ReLU."""
    layers = []
    for count, kernel in table:
        for _ in range(count):
            layers += [nn.Conv2d(planes, k, kernel, padding=(kernel - 1) // 2), nn.ReLU()]
            planes = k
    return nn.Sequential(*layers)


def he_init_(model):
    """The paper gives no initialisation (deviation): He-normal weights, zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _check_board(model, x):
    """A clear error for input that is not N x planes x board x board (the convolutions would accept
    any board size and fail only at the position bias or the fully connected layer)."""
    expected = (model.planes, model.board_size, model.board_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"{type(model).__name__}: expected N x {' x '.join(map(str, expected))} board features, "
                         f"got shape {tuple(x.shape)}")


def _reject_classes(model_name, num_classes, board_size, allowed):
    """The training command passes ``num_classes``; only the policy's one class per board point fits."""
    if num_classes is not None and num_classes != allowed:
        why = (f"one class per point of the {board_size}x{board_size} board: num_classes must be {allowed}"
               if allowed else "it outputs one value in [-1, 1] (a game's predicted outcome), trained by "
               "regression (F.mse_loss), not class scores")
        raise ValueError(f"{model_name}: {why}, got num_classes={num_classes}")


class AlphaGoPolicy(nn.Module):
    """The SL policy network: N x planes x 19 x 19 board features -> N x 361 move logits.

    Deviation, named: the paper's last step, the softmax over the 361 points, is left to the loss
    (``F.cross_entropy``) or to :meth:`move_probabilities`, as PyTorch models return logits.

    >>> AlphaGoPolicy(k=8)(minidl.zeros(2, 48, 19, 19)).shape
    (2, 361)
    """

    def __init__(self, k=192, planes=48, board_size=19):
        super().__init__()
        self.k, self.planes, self.board_size = k, planes, board_size
        self.features = conv_trunk(planes, k)
        self.head = nn.Conv2d(k, 1, 1, bias=False)   # layer 13: the position bias replaces the shared bias
        self.position_bias = PositionBias(1, board_size, board_size)
        he_init_(self)

    def forward(self, x):                          # N x planes x 19 x 19
        _check_board(self, x)
        x = self.features(x)                       # N x k x 19 x 19
        x = self.position_bias(self.head(x))       # N x 1 x 19 x 19
        return x.flatten(1)                        # N x 361 logits, point (row, col) at row * 19 + col;
                                                   # no softmax here (deviation: it is the loss's)

    def move_probabilities(self, x):
        """The paper's output: the softmax over the board, an N x 19 x 19 map of move probabilities that
        sums to 1 for each board."""
        return F.softmax(self(x), 1).reshape(x.shape[0], self.board_size, self.board_size)


class AlphaGoValue(nn.Module):
    """The value network: N x planes x 19 x 19 (49 planes: the 48 and the colour to play) -> N x 1, the
    predicted outcome in [-1, 1] (tanh), trained in the paper by regression on game results (mean squared
    error). Deviations, named: layer 12 is a k-filter 3x3 convolution and layers 12 and 13 have ReLUs (the
    paper does not say); see the module docstring.

    >>> AlphaGoValue(k=8)(minidl.zeros(2, 49, 19, 19)).shape
    (2, 1)
    """

    def __init__(self, k=192, planes=49, board_size=19, hidden=256):
        super().__init__()
        self.k, self.planes, self.board_size = k, planes, board_size
        self.features = conv_trunk(planes, k)      # layers 1-12 (12: "an additional convolution layer")
        self.head = nn.Sequential(
            nn.Conv2d(k, 1, 1), nn.ReLU(),         # layer 13: one 1x1 filter (ReLU: our reading)
            nn.Flatten(),
            nn.Linear(board_size * board_size, hidden), nn.ReLU(),   # layer 14: 256 rectifier units
            nn.Linear(hidden, 1), nn.Tanh(),       # output: a single tanh unit
        )
        he_init_(self)

    def forward(self, x):                          # N x planes x 19 x 19
        _check_board(self, x)
        x = self.features(x)                       # N x k x 19 x 19
        return self.head(x)                        # N x 1


@register_model("AlphaGo's SL policy network: 19x19x48 board features, 12 convolutions keeping 19x19 (k=192), "
                "1x1 convolution with a bias per point; 361 move logits; 3,882,793 parameters", SILVER_2016,
                recipe=POLICY_RECIPE)
def alphago_policy(k=192, planes=48, board_size=19, num_classes=None):
    _reject_classes("alphago_policy", num_classes, board_size, board_size * board_size)
    return AlphaGoPolicy(k, planes, board_size)


@register_model("AlphaGo's value network: 19x19x49 board features, the policy's trunk, 1x1 convolution, "
                "FC 256, one tanh output; 3,980,162 parameters", SILVER_2016,
                recipe=replace(POLICY_RECIPE, channels=49, source="none: the paper trains it by regression on "
                               "game outcomes (mean squared error); the training command trains classifiers and "
                               "refuses it"))
def alphago_value(k=192, planes=49, board_size=19, num_classes=None):
    _reject_classes("alphago_value", num_classes, board_size, None)
    return AlphaGoValue(k, planes, board_size)
