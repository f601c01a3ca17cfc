"""ZFNet (Zeiler & Fergus, "Visualizing and understanding convolutional networks", ECCV 2014; arXiv 2013)
and its deconvnet visualisation.

ZFNet is AlexNet changed where the deconvnet showed problems (notes 001, 003): layer 1's 11x11 stride-4
filters were a mix of very high and very low frequencies and layer 2 showed aliasing, so

    layer  AlexNet                 ZFNet (Fig. 3 of the paper, 224 x 224 input)
    conv1  96 x 11x11, stride 4    96 x 7x7, stride 2 (pad 1)  -> 110x110, pool -> 55x55
    conv2  256 x 5x5, stride 1     256 x 5x5, stride 2         -> 26x26,   pool -> 13x13
    conv3-5  384, 384, 256         384, 384, 256 (``zfnet``); 512, 1024, 512 (``zfnet_wide``)

``zfnet_wide`` is the paper's bigger model (Table 2, layers 3, 4, 5 with 512, 1024, 512 maps), the one
the CS231n slide calls ZFNet. One GPU, so no towers: every layer is densely connected.

Deviations, named: the paper's "contrast normalization across feature maps" after layers 1 and 2 is
AlexNet's LRN here (same n, k, alpha, beta); pooling uses ``ceil_mode=True`` (as Caffe), the only
way 3x3/2 pooling takes 110 to 55 and 26 to 13 as the paper's Figure 3 says. The paper's training
trick of renormalising any conv filter whose RMS exceeds 0.1 is not part of the model.
"""
from dataclasses import replace

import numpy as np

import minidl.functions as F
from minidl import nn
from minidl.models.alexnet import alexnet_lrn, make_classifier, make_conv_layers
from minidl.models.registry import register_model
from minidl.training.recipes import IMAGENET_ALEXNET

ZEILER_FERGUS_2014 = "Zeiler & Fergus, Visualizing and understanding convolutional networks, ECCV 2014"
# How the training command trains both by default: AlexNet's SGD at 224x224.
IMAGENET_ZFNET = replace(IMAGENET_ALEXNET, input_size=224, source="Zeiler & Fergus 2014: lr 0.01, momentum 0.9, "
                         "lr annealed by hand (here: / 10 on plateaus)")


def zfnet_convs(widths=(384, 384, 256)):
    """Figure 3 of the paper, rows as in alexnet.ALEXNET_CONVS: note pool before normalisation."""
    c3, c4, c5 = widths
    return [
        # out  kernel  stride  pad  groups  then
        (96,   7,      2,      1,   1,      ("relu", "pool", "lrn")),   # 224 -> 110 -> 55
        (256,  5,      2,      0,   1,      ("relu", "pool", "lrn")),   # 55 -> 26 -> 13
        (c3,   3,      1,      1,   1,      ("relu",)),                 # 13
        (c4,   3,      1,      1,   1,      ("relu",)),                 # 13
        (c5,   3,      1,      1,   1,      ("relu", "pool")),          # 13 -> 6
    ]


def ceil_max_pool():
    """3x3 max pooling, stride 2, rounding up: 110 -> 55 and 26 -> 13 as in Figure 3."""
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


class ZFNet(nn.Module):
    """ZFNet on 224 x 224 inputs. ``forward(x, return_switches=True)`` also returns, for :func:`deconv`,
    the record of the feature layers: a list of (layer, input shape, pooling switches or None).

    >>> logits, record = ZFNet()(minidl.zeros(1, 3, 224, 224), return_switches=True)
    """

    def __init__(self, num_classes=1000, widths=(384, 384, 256), dropout=0.5):
        super().__init__()
        self.features = make_conv_layers(zfnet_convs(widths), pool=ceil_max_pool, lrn=alexnet_lrn)
        self.classifier = make_classifier(widths[2] * 6 * 6, num_classes, dropout=dropout)
        for m in self.modules():  # Section 3: weights N(0, 0.01), biases 0
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x, return_switches=False):              # N x 3 x 224 x 224
        if return_switches:
            x, record = run_with_switches(self.features, x)   # N x c5 x 6 x 6
            return self.classifier(x.flatten(1)), record
        x = self.features(x)                                  # N x c5 x 6 x 6
        return self.classifier(x.flatten(1))                  # N x num_classes


INVERTIBLE = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.LocalResponseNorm)


def feature_chain(model):
    """The layers the deconvnet walks: ``model.features`` when the model has it (ZFNet, AlexNet, VGG),
    else the model's own children, with Sequentials opened; a list of (dotted name, module) in
    definition order. Any other module with children (a residual block, an Inception module) is one
    entry, which :func:`deconv` refuses to invert."""
    features = getattr(model, "features", None)
    root, prefix = (features, "features.") if isinstance(features, nn.Module) else (model, "")
    chain = []

    def walk(module, name):
        if isinstance(module, nn.Sequential):
            for child_name, child in module.named_children():
                walk(child, name + child_name + ".")
        else:
            chain.append((name.rstrip("."), module))

    if isinstance(root, nn.Sequential):
        walk(root, prefix)
    else:
        for child_name, child in root.named_children():
            walk(child, prefix + child_name + ".")
    return chain


def run_with_switches(features, x, stop=None):
    """Run the layers ``features[:stop]`` (a flat Sequential or a list of modules), recording each
    layer's input shape and, for max pooling, its switches (the argmax positions): a list of (layer,
    input shape, switches or None)."""
    record = []
    for layer in list(features)[:stop]:
        if isinstance(layer, nn.MaxPool2d):
            shape = x.shape
            x, switches = F.max_pool2d(x, layer.kernel_size, layer.stride, layer.padding, ceil_mode=layer.ceil_mode,
                                       return_indices=True)
            record.append((layer, shape, switches))
        else:
            record.append((layer, x.shape, None))
            x = layer(x)
    return x, record


def conv_layer_end(features, layer):
    """Index in ``features`` (a list of modules) just after the ReLU that follows conv layer ``layer``
    (1-based)."""
    layers = list(features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    if not 1 <= layer <= len(convs):
        raise ValueError(f"deconv: layer must be 1..{len(convs)}, got {layer}")
    relus = [i for i in range(convs[layer - 1] + 1, len(layers)) if isinstance(layers[i], nn.ReLU)]
    return relus[0] + 1 if relus else convs[layer - 1] + 1


def deconv(model, x, layer, channel=None):
    """Zeiler & Fergus's deconvnet: project one feature map of conv layer ``layer`` back to pixels.

    Forward ``x`` (one image, 1 x C x H x W) through the model's feature layers (:func:`feature_chain`)
    up to the ReLU of conv ``layer`` (1-based, counting Conv2d layers), keeping the pooling switches;
    zero every activation of that layer except the strongest one in ``channel`` (default: the channel
    holding the layer's largest activation); then walk back down: max pooling -> unpool with the
    switches, ReLU -> ReLU, convolution -> transposed convolution with the same (flipped) filters, LRN
    skipped (as the paper does). Returns the 1 x C x H x W reconstruction.

    Works for any model whose layers up to there are Conv2d, ReLU, MaxPool2d and LocalResponseNorm in a
    chain (ZFNet, AlexNet, VGG without BN); otherwise a ValueError names the first layer it cannot invert
    (ResNet-18: ``bn1``; a residual block, an Inception module). Without ReLUs or LRN the result is exactly
    the activation times its gradient with respect to the input (transposed conv and unpooling are the
    backward passes of conv and max pooling).
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"deconv: expected one image (1, C, H, W), got shape {tuple(x.shape)}")
    chain = feature_chain(model)
    modules = [module for _, module in chain]
    bad = next((i for i, m in enumerate(modules) if not isinstance(m, INVERTIBLE)), len(chain))
    convs_before_bad = sum(isinstance(m, nn.Conv2d) for m in modules[:bad])
    if bad < len(chain) and (layer > convs_before_bad or conv_layer_end(modules, layer) > bad):
        name, module = chain[bad]
        raise ValueError(
            f"deconv: cannot invert layer {name!r} ({type(module).__name__}) of {type(model).__name__}: "
            "the deconvnet inverts only a chain of Conv2d, ReLU, MaxPool2d and LocalResponseNorm layers")
    end = conv_layer_end(modules, layer)
    top, record = run_with_switches(modules, x, end)
    a = top.numpy()[0]                               # C x H x W activations of the chosen layer
    if channel is None:
        channel = int(a.reshape(a.shape[0], -1).max(axis=1).argmax())
    if not 0 <= channel < a.shape[0]:
        raise ValueError(f"deconv: channel must be 0..{a.shape[0] - 1} for conv layer {layer}, got {channel}")
    mask = np.zeros(a.shape, dtype=a.dtype)
    mask[channel].flat[a[channel].argmax()] = 1.0
    y = top * mask[None]                             # only the chosen activation survives
    for module, shape, switches in reversed(record):
        if isinstance(module, nn.MaxPool2d):
            y = F.max_unpool2d(y, switches, module.kernel_size, module.stride, module.padding, output_size=shape)
        elif isinstance(module, nn.ReLU):
            y = F.relu(y)
        elif isinstance(module, nn.Conv2d):
            (kh, kw), (sh, sw), (ph, pw) = module.kernel_size, module.stride, module.padding
            dh, dw = module.dilation
            natural = ((y.shape[2] - 1) * sh - 2 * ph + dh * (kh - 1) + 1,
                       (y.shape[3] - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
            extra = (shape[2] - natural[0], shape[3] - natural[1])  # rows the strided conv dropped
            y = F.conv_transpose2d(y, module.weight, None, module.stride, module.padding, extra, module.groups,
                                   module.dilation)
    return y


@register_model("ZFNet (Fig. 3 of the paper): AlexNet with 7x7/2 conv1 and 5x5/2 conv2, dense layers, "
                "224x224 input; forward can return the pooling switches for the deconvnet", ZEILER_FERGUS_2014,
                recipe=IMAGENET_ZFNET)
def zfnet(num_classes=1000, dropout=0.5):
    return ZFNet(num_classes, (384, 384, 256), dropout)


@register_model("ZFNet with layers 3, 4, 5 widened to 512, 1024, 512 maps (the paper's Table 2 model, "
                "CS231n's ZFNet)", ZEILER_FERGUS_2014, recipe=IMAGENET_ZFNET)
def zfnet_wide(num_classes=1000, dropout=0.5):
    return ZFNet(num_classes, (512, 1024, 512), dropout)
