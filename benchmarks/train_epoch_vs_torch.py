"""Seconds per training epoch of LeNet-5: minidl's training command against PyTorch (CPU), same run.

    python -m benchmarks.train_epoch_vs_torch                       # Fashion-MNIST, 60,000 images, 2 rounds
    python -m benchmarks.train_epoch_vs_torch --limit 10000 --rounds 3

Both train the paper's LeNet-5 (C3 connection table, trainable subsampling, scaled tanh, fixed RBF
output) with SGD (lr 0.05, momentum 0.9) and cross-entropy on batches of 64 shuffled 32x32 images:

- minidl: the training command's own epoch (``Trainer.train_epoch`` on the loader ``build_data`` makes:
  padding and normalisation in a background thread), so the figure is what ``python -m minidl.train``
  reports;
- PyTorch: ``benchmarks.torch_models.LeNet5Paper``, the same computation (C3 as the same dense gather and
  convolution), started from minidl's initial weights (their outputs are checked to agree), on batches
  sliced from the same pre-normalised images in memory: a plain loop, no DataLoader.

The machine is shared and noisy (PERF.md): the two alternate, epoch by epoch, and the ratio is taken
from the medians of the same run. Results go to ``benchmarks/results/train_epoch_vs_torch-*.json``.
"""
import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import minidl
from minidl.models import get_model
from minidl.training import Trainer, build_data, make_optimizer

RESULTS = Path(__file__).parent / "results"


def check_same_function(minidl_model, torch_model, images):
    import torch
    with minidl.no_grad():
        ours = minidl_model.eval()(minidl.tensor(images)).numpy()
    with torch.no_grad():
        theirs = torch_model.eval()(torch.from_numpy(images)).numpy()
    minidl_model.train(), torch_model.train()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
    return float(np.abs(ours - theirs).max())


def torch_epoch(model, optimizer, images, labels, batch_size, rng):
    import torch
    order = rng.permutation(len(images))
    start = time.perf_counter()
    for first in range(0, len(order), batch_size):
        index = order[first:first + batch_size]
        x, y = torch.from_numpy(images[index]), torch.from_numpy(labels[index])
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def minidl_epoch(trainer):
    start = time.perf_counter()
    trainer.train_epoch()
    seconds = time.perf_counter() - start
    trainer.end_epoch(float("nan"), float("nan"))  # no validation here: only the training time is compared
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--limit", type=int, default=None, help="train on at most N images per epoch")
    parser.add_argument("--rounds", type=int, default=2, help="epochs of each, alternating")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes (default %(default)s)")
    args = parser.parse_args(argv)
    import torch

    from benchmarks.torch_models import lenet5_paper_from_minidl

    minidl.manual_seed(0)
    torch.manual_seed(0)
    data = build_data(args.dataset, channels=1, input_size=32, batch_size=args.batch_size, seed=0, limit=args.limit)
    model = get_model("lenet5", num_classes=data.num_classes)
    net = lenet5_paper_from_minidl(model)
    optimizer = make_optimizer("sgd", model.parameters(), args.lr, momentum=0.9)
    trainer = Trainer(model, optimizer, None, data.train_loader, data.val_loader, progress=False)
    # the same images, padded and normalised once, for PyTorch's loop
    loader = data.train_loader
    chunks = [loader.load_batch(0, 0, np.arange(i, min(i + 4096, len(loader.dataset))))
              for i in range(0, len(loader.dataset), 4096)]
    images, labels = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
    max_difference = check_same_function(model, net, images[:256])
    torch_optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    rng = np.random.default_rng(0)
    print(f"LeNet-5 on {data.source.split(': ')[0]}: {len(images):,} images per epoch, batch {args.batch_size}; "
          f"outputs agree to {max_difference:.1e}; torch {torch.__version__} with {torch.get_num_threads()} threads")

    load_before = os.getloadavg()
    times = {"minidl": [], "torch": []}
    for round_ in range(args.rounds):
        for name in ("minidl", "torch") if round_ % 2 == 0 else ("torch", "minidl"):
            seconds = minidl_epoch(trainer) if name == "minidl" else torch_epoch(net, torch_optimizer, images, labels,
                                                                                args.batch_size, rng)
            times[name].append(seconds)
            print(f"round {round_ + 1}: {name:<6} {seconds:7.2f} s/epoch  ({len(images) / seconds:,.0f} img/s)",
                  flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["minidl"] / medians["torch"]
    print(f"median seconds per epoch: minidl {medians['minidl']:.2f}, PyTorch {medians['torch']:.2f}; "
          f"minidl / PyTorch = {ratio:.2f}")

    result = {
        "benchmark": "train_epoch_vs_torch", "model": "lenet5", "dataset": args.dataset, "data_source": data.source,
        "images_per_epoch": len(images), "batch_size": args.batch_size, "optimizer": f"sgd lr {args.lr} momentum 0.9",
        "rounds": args.rounds, "seconds_per_epoch": times, "median_seconds_per_epoch": medians,
        "images_per_second": {name: len(images) / m for name, m in medians.items()}, "ratio_minidl_over_torch": ratio,
        "outputs_max_abs_difference": max_difference, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "torch_threads": torch.get_num_threads(),
        "versions": {"minidl": minidl.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor(), "platform": platform.platform()},
        "environment": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
                        if k in os.environ},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"train_epoch_vs_torch-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
