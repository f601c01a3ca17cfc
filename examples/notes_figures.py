"""Every number the CNN notes quote about the classic architectures, recomputed from minidl's models.

    python examples/notes_figures.py

Each line prints the figure as minidl computes it from the model (``minidl.summary`` /
``minidl.receptive_field``), the notes' number beside it, and, where they differ, why. The notes are in
shared/notes/ (001: CS231n lecture 7, 002: lecture 9, 003: architectures, 000: GoogLeNet, 004: modern
CNNs). Takes about half a minute: VGG16 runs once on a 224 x 224 image (15.5 G multiply-adds).
"""
import minidl
from minidl import nn
from minidl.models import get_model
from minidl.models.googlenet import Inception, NaiveInception
from minidl.summary import receptive_field, summary


def hwc(shape):
    """(1, C, H, W) as the notes write it, H x W x C."""
    return "x".join(map(str, tuple(shape[2:]) + (shape[1],))) if len(shape) == 4 else "x".join(map(str, shape[1:]))


def show(figure, ours, notes, verdict=""):
    print(f"  {figure:<58} {ours:>20}   notes: {notes:<14} {verdict}")


def section(title):
    print(f"\n{title}\n" + "-" * len(title))


def lenet():
    section("LeNet (notes 003)")
    s = summary(get_model("lenet5"), (1, 32, 32))
    for name, notes in [("c1", 156), ("s2", 12), ("c3", 1516), ("s4", 32), ("c5", 48120), ("f6", 10164)]:
        row = s.row(name)
        shape = hwc(row.output_shape)
        show(f"LeNet-5 {name.upper()} trainable parameters ({shape})", f"{row.params:,}", f"{notes:,}",
             "same" if row.params == notes else "DIFFERENT")
    show("LeNet-5 total trainable parameters", f"{s.trainable_params:,}", "60,000", "same")
    print("    (plus 840 fixed RBF prototype values: the output layer is not trained)")
    n1 = get_model("lenet1").num_parameters()
    show("LeNet-1 free parameters", f"{n1:,}", "< 3,000",
         "same: the 1990 paper's 2,578 (20 partial H2-H3 kernels, trainable averaging)")
    print("    (with full H2-H3 connections and parameter-free averaging it would be 3,246)")


def alexnet():
    section("AlexNet (notes 001, 003)")
    model = get_model("alexnet")
    s = summary(model, (3, 227, 227))
    conv1, pool1 = s.row("features.0"), s.row("features.3")
    show("conv1 output on 227x227x3, 96 11x11 filters stride 4", hwc(conv1.output_shape),
         "55x55x96", "same: (227 - 11) / 4 + 1 = 55")
    show("conv1 weights (11 * 11 * 3 * 96)", f"{model.features[0].weight.numel():,}", "34,848",
         f"same, plus 96 biases = {conv1.params:,}")
    show("pool1 output (3x3, stride 2) and parameters", f"{hwc(pool1.output_shape)}, 0",
         "27x27x96, 0", "same: (55 - 3) / 2 + 1 = 27")
    show("total parameters", f"{s.total_params:,}", "60M", "same (torchvision's later variant: 61,100,840)")
    print("    notes 003 give the input as 224x224: a typo kept from the paper; (224 - 11) / 4 + 1 is not whole")
    print("    notes 003 put pooling before LRN (CaffeNet's order); the paper normalises first, then pools")
    return s.total_params


def vgg(alexnet_params):
    section("VGG (notes 001, 002, 004)")
    s = summary(get_model("vgg16"), (3, 224, 224))
    show("VGG16 parameters", f"{s.total_params:,}", "138M", "same")
    show("VGG16 FC6 parameters (7*7*512*4096 + 4096)", f"{s.row('classifier.0').params:,}", "~100M", "same")
    image = 224 * 224 * 3
    slide = image + sum(r.activations for r in s.rows if r.type in ("Conv2d", "MaxPool2d", "Linear"))
    show("forward activations: input + conv, pool, FC outputs", f"{slide:,}", "~24M",
         "DIFFERENT: the slide's own entries")
    print("    (150K + 3.2M + 3.2M + 800K + 1.6M + 1.6M + 400K + 3 * 800K + 200K + 3 * 400K + 100K + 3 * 100K +")
    print("    25K + 4096 + 4096 + 1000) add up to 15.2M, not 24M: the total on the slide is an addition slip.")
    show("  the same in bytes (float32)", f"{4 * slide / 1e6:.1f} MB", "~93MB",
         f"DIFFERENT: 4 bytes each; 24M * 4 B would be 96 MB ({24e6 * 4 / 2**20:.1f} MiB)")
    show("  forward + backward (x2, as the slide suggests)", f"{8 * slide / 1e6:.0f} MB", "~200MB", "DIFFERENT")
    show("forward activations kept by minidl (ReLU outputs too)", f"{s.total_activations:,}", "-",
         f"{s.activation_bytes / 1e6:.1f} MB: no in-place ReLU, so 13 more 'conv-sized' arrays")
    show("VGG16 multiply-adds per image", f"{s.total_macs / 1e9:.2f} G", "-", "")
    c = 64
    three = [nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)]
    seven = [nn.Conv2d(c, c, 7, padding=3, bias=False)]
    show("three 3x3 convs: receptive field", "x".join(map(str, receptive_field(three, (c, 16, 16)).receptive_field)),
         "7x7", "same")
    show(f"  parameters at C={c}: 3 * 9C^2 vs 49C^2", f"{3 * 9 * c * c:,} vs {49 * c * c:,}",
         "27C^2 vs 49C^2", "same")
    c = 128
    two = summary(nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(2)]), (c, 8, 8))
    five = summary(nn.Conv2d(c, c, 5, padding=2, bias=False), (c, 8, 8))
    show("two 3x3 vs one 5x5 at 128 channels (no bias)", f"{two.total_params:,} vs {five.total_params:,}",
         "294,912/409,600", "same")
    rf = receptive_field(get_model("vgg16", num_classes=10).features, (3, 32, 32))
    show("receptive field of one pool5 unit", f"{rf.receptive_field[0]}x{rf.receptive_field[1]}", "-",
         "212 of the 224 pixels")
    return s.total_params


def googlenet(alexnet_params, vgg_params):
    section("GoogLeNet (notes 000, 001, 002, 004)")
    naive = summary(NaiveInception(256, 128, 192, 96), (256, 28, 28))
    show("naive Inception on 28x28x256: output depth", str(naive.output_shape[1]), "672", "same: 128+192+96+256")
    show("naive Inception multiply-adds", f"{naive.total_macs / 1e6:.1f}M", "854M", "same")
    bottleneck = summary(Inception(256, 128, 64, 192, 64, 96, 64), (256, 28, 28))
    double3x3 = bottleneck.total_macs + bottleneck.row("branch2.1").macs
    show("bottleneck Inception (1x1 64 reductions) multiply-adds", f"{bottleneck.total_macs / 1e6:.1f}M", "358M",
         "DIFFERENT")
    print(f"    12.8M + 12.8M + 25.7M + 86.7M + 120.4M + 12.8M = {bottleneck.total_macs / 1e6:.1f}M; 358M is what you")
    print(f"    get adding the 3x3 conv's 86.7M twice ({double3x3 / 1e6:.1f}M). Output depth "
          f"{bottleneck.output_shape[1]} (128+192+96+64).")
    show("  parameters, bottleneck / naive", f"{bottleneck.total_params / naive.total_params:.2f}", "~1/3 (004)",
         f"same: {bottleneck.total_params:,} / {naive.total_params:,}")
    model = get_model("googlenet")
    main = model.num_parameters() - sum(p.numel() for head in (model.aux1, model.aux2) for p in head.parameters())
    show("GoogLeNet parameters (without the auxiliary heads)", f"{main:,}", "~5M",
         "DIFFERENT: 7.0M; the paper's Table 1 column sums to 6.8M")
    print("    (Table 1 counts 1K = 1,024 weights and no biases; CS231n rounds to 5M from the paper's '12x fewer")
    print(f"    than AlexNet'). The auxiliary heads add {model.num_parameters() - main:,} more, used only in training.")
    show("parameters AlexNet / GoogLeNet", f"{alexnet_params / main:.1f}x", "12x", "DIFFERENT: 8.7x measured")
    convs = 3 + 2 * sum(isinstance(m, Inception) for m in model.children()) + 1
    show("layers with parameters on the deepest path", str(convs), "22", "same: 3 stem convs + 9 * 2 + FC")
    show("VGG16 / GoogLeNet parameters", f"{vgg_params / main:.0f}x", "-", "")


def alphago():
    section("AlphaGo's policy network (notes 001)")
    model = get_model("alphago_policy")
    s = summary(model, (48, 19, 19))
    convs = [row for row in s.rows if row.type == "Conv2d"]
    show("input: 48 feature planes of the 19 x 19 board", hwc(s.rows[0].input_shape), "19x19x48", "same")
    for first, last in ((0, 0), (1, 11), (12, 12)):
        conv = convs[first].module
        K, F_, P = conv.out_channels, conv.kernel_size[0], conv.padding[0]
        layers = f"layer {first + 1}" if first == last else f"layers {first + 1}-{last + 1}"
        shapes = ", ".join(sorted({hwc(row.output_shape) for row in convs[first:last + 1]}))
        show(f"{layers}: {K} x {F_}x{F_}, P = ({F_} - 1) / 2 = {P}, padded {19 + 2 * P}x{19 + 2 * P}", shapes,
             "19x19 kept", f"same: (19 + 2*{P} - {F_}) / 1 + 1 = 19")
    show("  + a separate bias for each of the 361 points", hwc(s.row("position_bias").output_shape), "-",
         f"{s.row('position_bias').params} parameters")
    probs = model.move_probabilities(minidl.zeros(1, 48, 19, 19))
    show("output: softmax over the board, move probabilities", "x".join(map(str, probs.shape[1:])), "19x19 map",
         f"same: the map sums to {float(probs.sum().item()):.3f}")
    show("parameters (k = 192, the match version)", f"{s.total_params:,}", "-",
         "230,592 + 11 * 331,968 + 192 + 361")
    show("multiply-adds per board", f"{s.total_macs / 1e9:.2f} G", "-", "")


def others(alexnet_params):
    section("Other figures (notes 001, 002)")
    squeeze = get_model("squeezenet1_0").num_parameters()
    show("SqueezeNet 1.0 parameters, AlexNet / SqueezeNet", f"{squeeze:,}, {alexnet_params / squeeze:.0f}x",
         "510x memory", "the 510x needs Deep Compression")
    print(f"    (float32: AlexNet {alexnet_params * 4 / 1e6:.0f} MB, SqueezeNet {squeeze * 4 / 1e6:.1f} MB = 49x; the "
          "paper's 0.47 MB is SqueezeNet pruned and quantised to 6 bits)")
    show("Network in Network (CIFAR-10) parameters", f"{get_model('nin_cifar').num_parameters():,}", "-", "")


if __name__ == "__main__":
    minidl.manual_seed(0)
    lenet()
    alexnet_params = alexnet()
    vgg_params = vgg(alexnet_params)
    googlenet(alexnet_params, vgg_params)
    alphago()
    others(alexnet_params)
