"""minidl on the GPU against PyTorch (cuDNN) on the same GPU, in the same run: training throughput and conv layers.

    python -m benchmarks.gpu --out DIR                         # everything; writes DIR/gpu-<date>.{json,md}
    python -m benchmarks.gpu --out DIR --junit gpu.xml         # also report the GPU test suite's pass/fail counts
    python -m benchmarks.gpu --quick                           # fewer steps, for a smoke run

1. Training images/s (forward, cross-entropy, backward, SGD step with momentum) for LeNet-5 (batch 256,
   32 x 32), ResNet-50 (batch 64, 224 x 224) and VGG16 (batch 32, 224 x 224), in FP32 and in TF32
   (``minidl.cuda.set_tf32``; PyTorch's ``allow_tf32`` for cuBLAS and cuDNN), on synthetic data already
   on the GPU. PyTorch runs twins of the same networks: the LeNet-5 of benchmarks.train_epoch_vs_torch,
   the ResNet-50 of benchmarks.torch_models and torchvision's vgg16, with ``cudnn.benchmark``. The ratio
   is PyTorch's images/s over minidl's: how many times slower minidl is.
2. Per-layer time of minidl's im2col + GEMM convolution against cuDNN (``torch.nn.functional.conv2d`` with
   ``cudnn.benchmark``), forward and forward + backward, on ResNet-50 layer shapes at batch 64.

Timing: CUDA events around ``steps`` iterations after ``warmup`` (``cupyx.profiler.benchmark`` for the
minidl layers). Without CuPy and a CUDA device it prints one line and exits with status 2.
"""
import argparse
import datetime
import json
import platform
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

MODELS = {  # name: (minidl model, input (C, H, W), batch, classes)
    "lenet5": ("lenet5", (1, 32, 32), 256, 10),
    "resnet50": ("resnet50", (3, 224, 224), 64, 1000),
    "vgg16": ("vgg16", (3, 224, 224), 32, 1000),
}

# ResNet-50 convolutions (torchvision layout): (label, C, K, H, kernel, stride, padding)
CONV_LAYERS = [
    ("conv1 7x7/2", 3, 64, 224, 7, 2, 3),
    ("layer1 1x1 256->64", 256, 64, 56, 1, 1, 0),
    ("layer1 3x3 64", 64, 64, 56, 3, 1, 1),
    ("layer2 3x3 128", 128, 128, 28, 3, 1, 1),
    ("layer3 3x3 256", 256, 256, 14, 3, 1, 1),
    ("layer3 1x1 1024->256", 1024, 256, 14, 1, 1, 0),
    ("layer4 3x3 512", 512, 512, 7, 3, 1, 1),
]
LAYER_BATCH = 64


def gpu_or_exit():
    """minidl.cuda when CuPy sees a device; else one line on stderr and exit status 2."""
    import minidl.cuda as cuda
    try:
        cuda.current_device()
    except RuntimeError as error:
        print(f"benchmarks.gpu: no GPU: {error}", file=sys.stderr)
        raise SystemExit(2)
    return cuda


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def set_precision(tf32, torch):
    import minidl.cuda as cuda
    cuda.set_tf32(tf32)
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True


def minidl_images_per_second(name, warmup, steps):
    import cupy
    import numpy as np

    import minidl
    import minidl.functions as F
    from minidl import optim
    from minidl.models import get_model

    model_name, chw, batch, classes = MODELS[name]
    model = get_model(model_name).to("gpu")
    model.train()
    opt = optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((batch, *chw)).astype(np.float32), device="gpu")
    y = minidl.tensor(rng.integers(0, classes, batch), device="gpu")

    def step():
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(steps):
        step()
    end.record()
    end.synchronize()
    seconds = cupy.cuda.get_elapsed_time(start, end) / 1e3
    del model, opt, x, y
    minidl.cuda.empty_cache()
    return batch * steps / seconds


def torch_model(name, torch):
    if name == "lenet5":
        from benchmarks.train_epoch_vs_torch import torch_lenet5
        from minidl.models import get_model
        return torch_lenet5(get_model("lenet5"))
    if name == "resnet50":   # the hand-written twin of minidl's resnet50 (same layers and parameter count)
        from benchmarks.torch_models import resnet50
        return resnet50()
    import torchvision       # VGG16: configuration D, the same network as minidl's vgg16
    return torchvision.models.vgg16(weights=None)


def torch_images_per_second(name, torch, warmup, steps):
    _, chw, batch, classes = MODELS[name]
    model = torch_model(name, torch).cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, *chw, device="cuda")
    y = torch.randint(0, classes, (batch,), device="cuda")

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3
    del model, opt, x, y
    torch.cuda.empty_cache()
    return batch * steps / seconds


def minidl_conv_ms(C, K, H, kernel, stride, padding, repeats):
    """(forward ms, forward + backward ms) of minidl's conv2d (im2col + cuBLAS GEMM, col2im)."""
    import cupy
    from cupyx.profiler import benchmark

    import minidl
    import minidl.functions as F

    x = minidl.randn(LAYER_BATCH, C, H, H, device="gpu", requires_grad=True)
    w = minidl.randn(K, C, kernel, kernel, device="gpu", requires_grad=True)

    def forward():
        with minidl.no_grad():
            F.conv2d(x, w, stride=stride, padding=padding)

    def forward_backward():
        y = F.conv2d(x, w, stride=stride, padding=padding)
        y.backward(cupy.ones(y.shape, dtype=cupy.float32))
        x.grad = w.grad = None

    times = []
    for fn in (forward, forward_backward):
        result = benchmark(fn, n_repeat=repeats, n_warmup=3)
        times.append(float(result.gpu_times.mean()) * 1e3)
    return tuple(times)


def torch_conv_ms(torch, C, K, H, kernel, stride, padding, repeats):
    """(forward ms, forward + backward ms) of cuDNN's convolution (cudnn.benchmark picks the algorithm)."""
    x = torch.randn(LAYER_BATCH, C, H, H, device="cuda", requires_grad=True)
    w = torch.randn(K, C, kernel, kernel, device="cuda", requires_grad=True)

    def forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, stride=stride, padding=padding)

    def forward_backward():
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding)
        y.backward(torch.ones_like(y))
        x.grad = w.grad = None

    times = []
    for fn in (forward, forward_backward):
        for _ in range(3):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / repeats)
    return tuple(times)


def junit_counts(path):
    """{'tests', 'passed', 'failed', 'errors', 'skipped'} from a pytest --junitxml file."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    return {"tests": counts["tests"], "passed": counts["tests"] - counts["failures"] - counts["errors"] -
            counts["skipped"], "failed": counts["failures"], "errors": counts["errors"], "skipped": counts["skipped"]}


def run(args):
    cuda = gpu_or_exit()
    torch = torch_or_none()
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
              "python": platform.python_version(), **cuda.versions(), "steps": args.steps,
              "torch": None if torch is None else torch.__version__,
              "cudnn": None if torch is None else torch.backends.cudnn.version(), "training": [], "layers": []}
    if args.junit:
        report["gpu_tests"] = junit_counts(args.junit)
    print(f"{report['device']} (sm {report['compute_capability']}), CUDA {report['cuda_runtime']}, "
          f"driver {report['cuda_driver']}, CuPy {report['cupy']}, torch {report['torch']}, cuDNN {report['cudnn']}")
    if torch is None:
        print("PyTorch with CUDA not found: minidl's figures only")

    print(f"\n{'model':10} {'precision':9} {'minidl img/s':>13} {'torch img/s':>12} {'torch/minidl':>13}")
    for name in args.models:
        for precision in ("fp32", "tf32"):
            set_precision(precision == "tf32", torch)
            row = {"model": name, "batch": MODELS[name][2], "precision": precision,
                   "minidl_img_s": minidl_images_per_second(name, args.warmup, args.steps)}
            row["torch_img_s"] = row["ratio"] = None
            if torch is not None:
                row["torch_img_s"] = torch_images_per_second(name, torch, args.warmup, args.steps)
                row["ratio"] = row["torch_img_s"] / row["minidl_img_s"]
            report["training"].append(row)
            torch_text = "-" if torch is None else f"{row['torch_img_s']:12.1f} {row['ratio']:12.2f}x"
            print(f"{name:10} {precision:9} {row['minidl_img_s']:13.1f} {torch_text}")

    set_precision(False, torch)
    print(f"\nResNet-50 conv layers, batch {LAYER_BATCH}, FP32: ms (forward / forward+backward)")
    print(f"{'layer':24} {'minidl':>17} {'cuDNN':>17} {'ratio fwd':>10} {'ratio f+b':>10}")
    for label, C, K, H, kernel, stride, padding in CONV_LAYERS:
        ours = minidl_conv_ms(C, K, H, kernel, stride, padding, args.layer_repeats)
        theirs = None if torch is None else torch_conv_ms(torch, C, K, H, kernel, stride, padding, args.layer_repeats)
        row = {"layer": label, "shape": [LAYER_BATCH, C, H, H, K, kernel, stride, padding],
               "minidl_ms": ours, "cudnn_ms": theirs,
               "ratio": None if theirs is None else [ours[0] / theirs[0], ours[1] / theirs[1]]}
        report["layers"].append(row)
        theirs_text = "" if theirs is None else \
            f"{theirs[0]:8.3f}/{theirs[1]:8.3f} {row['ratio'][0]:9.2f}x {row['ratio'][1]:9.2f}x"
        print(f"{label:24} {ours[0]:8.3f}/{ours[1]:8.3f} {theirs_text}")
    cuda.empty_cache()
    return report


def markdown(report):
    lines = [f"# minidl GPU benchmark, {report['date']}", "",
             f"- GPU: {report['device']} (compute capability {report['compute_capability']}), "
             f"{report['device_count']} device(s)",
             f"- CUDA runtime {report['cuda_runtime']}, driver API {report['cuda_driver']}, "
             f"CuPy {report['cupy']}, PyTorch {report['torch']}, cuDNN {report['cudnn']}",
             f"- {report['steps']} timed training steps per figure, synthetic data on the GPU", ""]
    if "gpu_tests" in report:
        t = report["gpu_tests"]
        lines += [f"GPU test suite: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
                  f"{t['skipped']} skipped ({t['tests']} tests)", ""]
    lines += ["## Training throughput (images/s; ratio = PyTorch / minidl)", "",
              "| model | batch | precision | minidl | PyTorch | ratio |", "|---|---|---|---|---|---|"]
    for r in report["training"]:
        torch_cell = "-" if r["torch_img_s"] is None else f"{r['torch_img_s']:.1f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['model']} | {r['batch']} | {r['precision']} | {r['minidl_img_s']:.1f} | {torch_cell} | "
                     f"{ratio} |")
    lines += ["", f"## ResNet-50 convolutions, batch {LAYER_BATCH}, FP32 (ms; ratio = minidl / cuDNN)", "",
              "| layer | minidl fwd | minidl fwd+bwd | cuDNN fwd | cuDNN fwd+bwd | ratio fwd | ratio fwd+bwd |",
              "|---|---|---|---|---|---|---|"]
    for r in report["layers"]:
        c = r["cudnn_ms"] or ("-", "-")
        q = r["ratio"] or ("-", "-")
        ms = [v if isinstance(v, str) else f"{v:.3f}" for v in (*r["minidl_ms"], *c)]
        ratio = [v if isinstance(v, str) else f"{v:.2f}x" for v in q]
        lines.append(f"| {r['layer']} | " + " | ".join(ms + ratio) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu-<date>.json and .md")
    parser.add_argument("--junit", type=Path, help="pytest --junitxml file of the GPU test suite, to report")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per figure")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--layer-repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 steps, 5 layer repeats: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.layer_repeats = 5, 5
    started = time.time()
    report = run(args)
    report["wall_s"] = round(time.time() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(f"\nwrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    main()
