"""The training command: ``python -m minidl.train MODEL [options]`` (also installed as ``minidl-train``).

    python -m minidl.train lenet5                             # MNIST (the shipped sample when offline)
    python -m minidl.train resnet20 --epochs 30 --schedule cosine
    python -m minidl.train alexnet --data-dir ~/data/imagenette
    python -m minidl.train resnet20 --dataset synthetic --epochs 1 --limit 256    # a smoke run, no data
    python -m minidl.train lenet5 --resume runs/lenet5-20250101-120000/last.ckpt --epochs 12
    python -m minidl.train lenet5 --resume runs/lenet5-20250101-120000        # a run folder: its newest checkpoint
    python -m minidl.train lenet5 --eval-only --resume runs/lenet5-20250101-120000/best.ckpt
    mpiexec -n 2 python -m mpi4py -m minidl.train resnet20 --distributed        # data-parallel (pip install 'minidl[mpi]')

Every model of ``minidl.models`` gets its paper's dataset, input size and hyper-parameters by default:
the recipe declared where it is registered (``minidl.training.recipes``); options override them. A model
registered without one is refused (exit 2). A run writes to ``--out`` (default ``runs/MODEL-TIMESTAMP/``):
config.json, metrics.csv (one row per epoch), curves.png (with matplotlib), last.ckpt and best.ckpt
(highest validation accuracy), and interrupted.ckpt after Ctrl-C.

Your files are never lost (see ``minidl.training.rundir``): an --out that holds a run is refused unless
it is resumed or --overwrite is given; a run folder is locked (``.minidl-train.lock``, with the PID)
while a run owns it; config.json keeps the history of every session; files in --data-dir are only read.

Exit codes (defined in ``minidl.training.errors``; every error is one line on stderr naming the file or
option and the problem): 0 done; 2 a usage or data error: a bad option, an unusable --out (a file, not
creatable, not writable, in use, holding another run), a data or checkpoint file that cannot be read
(checked before training; a file that fails mid-epoch stops the run after saving interrupted.ckpt); 3
training stopped on a non-finite loss or weights; 4 an output could not be written (disk full: the previous
checkpoint stays intact); 130 interrupted (Ctrl-C).

--distributed (under ``mpiexec -n N``, see ``minidl.distributed``): the global batch (--batch-size, the
recipe's by default) is split into N per-rank batches of B/N over disjoint shards of each epoch's order, the
gradients are averaged before every step, so the run follows the same steps as one process with batch B
(BatchNorm statistics stay per rank: see minidl.distributed). Only rank 0 claims and locks the run folder,
prints and writes config.json, metrics.csv, curves.png and checkpoints. The epoch's training loss and
accuracy are averaged over the ranks, images/s summed; validation runs on the whole set on every rank. A run is
resumed on the same number of ranks (another number is refused in one line: the data order depends on it).
An error on one rank ends all of them (MPI_Abort). Ctrl-C (mpiexec passes it to every rank): rank 0 saves
interrupted.ckpt if it stops first, else the last epoch's checkpoint is the one to resume from (untested).
CPU only (MPI); GPUs: minidl.distributed.init("nccl").
"""
import argparse
import difflib
import re
import sys
from pathlib import Path

import minidl
from minidl.data import list_datasets
from minidl.serialization import SerializationError
from minidl.serialization import load as load_file
from minidl.training.checkpoint import CheckpointError, load_checkpoint
from minidl.training.data import DataError, dataset_key
from minidl.training.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_USAGE, PROG, UsageError
from minidl.training.recipes import MissingRecipeError, recipe_for
from minidl.training.run import Run
from minidl.training.rundir import RunFolderError, find_checkpoint

# What a run is: a resumed run must keep these (the others may change between sessions).
RUN_SETTINGS = ("dataset", "input_size", "optimizer", "lr", "momentum", "weight_decay", "batch_size", "schedule",
                "seed", "limit")
DATASET_NOTES = {
    "mnist": "MNIST digits, 1x28x28, 60,000/10,000 (unreachable, when not named: the shipped 4,000/1,000 sample)",
    "mnist-sample": "the 5,000-digit MNIST sample shipped with minidl, 4,000/1,000",
    "fashion-mnist": "Fashion-MNIST, 1x28x28, 60,000/10,000",
    "cifar10": "CIFAR-10, 3x32x32, 50,000/10,000",
    "imagefolder": "your images under --data-dir: one folder per class, optionally inside train/ and val/",
    "synthetic": "labelled sine gratings made on the spot, 2,000/500 (a smoke run without data)",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser():
    from minidl.models import list_models
    models = list_models(with_descriptions=True)
    width = max(len(name) for name in models) + 2
    lines = ["models (default dataset, input size):"]
    for name, entry in models.items():
        defaults = "no recipe" if entry.recipe is None else "{0.dataset}, {0.input_size}px".format(recipe_for(name))
        lines.append(f"  {name:<{width}}[{defaults}] {entry.description}")
    lines += ["", "datasets:"] + [f"  {name:<15}{DATASET_NOTES.get(name, '')}" for name in list_datasets()]
    lines += [""] + EXIT_CODES_HELP
    lines += ["", "an --out holding a run is refused unless resumed there or --overwrite; a run folder is",
              "locked while a run owns it; files in --data-dir are only read, never deleted or changed"]
    parser = _Parser(prog=PROG, description="Train (or evaluate) a minidl model. Unset options take the "
                     "model's defaults, from its paper.", epilog="\n".join(lines),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("model", metavar="MODEL", help="a model name (listed below)")
    add("--dataset", metavar="D", help="a dataset name (listed below)")
    add("--epochs", type=int, metavar="E", help="epochs to train (with --resume: the total to reach)")
    add("--batch-size", type=int, metavar="B")
    add("--lr", type=float, metavar="LR", help="(initial) learning rate")
    add("--optimizer", choices=("sgd", "adam", "adamw"))
    add("--momentum", type=float, metavar="M", help="SGD momentum")
    add("--weight-decay", type=float, metavar="WD")
    add("--schedule", choices=("none", "step", "cosine", "plateau"), help="lr schedule")
    add("--device", choices=("cpu", "gpu"), default="cpu")
    add("--seed", type=int, metavar="S", help="seeds the weights, the data order and dropout (default 0)")
    add("--out", metavar="DIR", help="output directory (default runs/MODEL-TIMESTAMP, or the resumed run's)")
    add("--overwrite", action="store_true", help="replace the run already in --out (its config, metrics, "
        "checkpoints and curves; nothing else)")
    add("--resume", metavar="PATH", help="continue from a checkpoint, or a run folder (its newest checkpoint); "
        "with --eval-only also a weights file")
    add("--eval-only", action="store_true", help="evaluate --resume's weights on the validation set")
    add("--limit", type=int, metavar="N", help="use at most N training and N validation images")
    add("--quiet", action="store_true", help="no progress bar: one line per epoch (for logs)")
    add("--data-dir", metavar="DIR", help="where the dataset is (imagefolder: the class folders)")
    add("--input-size", type=int, metavar="PX", help="image side the model sees")
    add("--num-workers", type=int, default=0, metavar="N", help="threads loading batches (default 0: one)")
    add("--distributed", action="store_true", help="data-parallel over the ranks of `mpiexec -n N python -m "
        "mpi4py -m minidl.train ...`: the batch is split across ranks; rank 0 prints and writes")
    return parser


def main(argv=None):
    """Run the command; returns the exit code."""
    session = {"comm": None, "started": False}  # --distributed: the communicator, and whether ranks diverged
    try:
        return _finish(session, _main(argv, session))
    except (UsageError, DataError, CheckpointError, RunFolderError) as err:
        _error(session, f"error: {_one_line(err)}")
        return _finish(session, EXIT_USAGE)
    except KeyboardInterrupt:  # before training started (or during --eval-only): nothing to save
        _error(session, "interrupted")
        return _finish(session, EXIT_INTERRUPTED)


def _error(session, message):
    """One line on stderr; on every rank once training started, else (the same on all ranks) on rank 0."""
    comm = session["comm"]
    if comm is None or comm.size == 1 or comm.rank == 0:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    elif session["started"]:
        print(f"{PROG} (rank {comm.rank}): {message}", file=sys.stderr, flush=True)


def _finish(session, code):
    """A --distributed rank that stops with an error once training started ends every rank (MPI_Abort):
    the others would otherwise wait for it forever in the next collective."""
    comm = session["comm"]
    if code and session["started"] and comm is not None and comm.size > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        comm.abort(code)
    return code


def _one_line(message):
    """Messages from deeper down may list problems on several lines: join them with '; '."""
    return re.sub(r"(:?)\s*\n\s*", lambda m: ": " if m.group(1) else "; ", str(message).strip())


def _main(argv, session=None):
    session = {} if session is None else session
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help
        return exit_.code
    from minidl.models import list_models
    models = list_models(with_descriptions=True)
    if args.model not in models:
        close = difflib.get_close_matches(args.model, models, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"unknown model {args.model!r}{hint}; choose one of: {', '.join(models)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _check_values(args)
    args.comm = session["comm"] = _init_distributed(args)
    checkpoint, weights = _read_resume(args)
    config = resolve_config(args, checkpoint)
    _check_device(config["device"])
    _check_world(args, config, checkpoint)
    minidl.set_performance_defaults()   # the process tuning for training (minidl/performance.py)
    session["started"] = True
    return Run(args, config, checkpoint, weights).execute()


def _init_distributed(args):
    """The communicator of a --distributed run (None without the flag)."""
    if not args.distributed:
        return None
    if args.eval_only or args.device == "gpu":
        raise UsageError(f"--distributed trains on the CPU (MPI); it does not go with "
                         f"{'--eval-only' if args.eval_only else '--device gpu'}")
    from minidl.distributed import init
    try:
        return init("mpi")
    except RuntimeError as err:
        raise UsageError(f"--distributed: {err}") from None


def _check_world(args, config, checkpoint):
    """A resumed run keeps its number of ranks; the global batch must split evenly across them."""
    size = args.comm.size if args.comm is not None else 1
    saved = checkpoint["config"].get("world_size", 1) if checkpoint is not None else size
    if saved != size and not args.eval_only:
        raise UsageError(f"--resume {args.resume} was trained on {saved} rank(s), this run has {size}: resume it on "
                         f"{saved} (mpiexec -n {saved} ... --distributed); the data order depends on the number")
    if args.comm is not None:
        if config["batch_size"] % size:
            raise UsageError(f"--batch-size {config['batch_size']} does not split evenly across {size} ranks "
                             f"(--distributed divides the global batch)")
        config["world_size"] = size


def _check_values(args):
    positive = {"--epochs": args.epochs, "--batch-size": args.batch_size, "--limit": args.limit,
                "--input-size": args.input_size}
    for flag, value in positive.items():
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    for flag, value in {"--momentum": args.momentum, "--weight-decay": args.weight_decay,
                        "--num-workers": args.num_workers, "--seed": args.seed}.items():
        if value is not None and not value >= 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    if args.dataset is not None:
        try:
            dataset_key(args.dataset)
        except DataError as err:
            raise UsageError(str(err)) from None
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise UsageError(f"--data-dir {args.data_dir} does not exist (or is not a directory)")
    if args.eval_only and args.resume is None:
        raise UsageError("--eval-only needs --resume PATH: a checkpoint or a weights file (minidl.save)")


def _read_resume(args):
    """(checkpoint, None), or (None, state dict) for --eval-only on a weights file, or (None, None)."""
    if args.resume is None:
        return None, None
    path = Path(args.resume)
    if path.is_dir():  # a run folder: its newest checkpoint (best.ckpt to evaluate)
        folder = path
        path = folder / "best.ckpt" if args.eval_only and (folder / "best.ckpt").is_file() else find_checkpoint(folder)
        if path is None:
            raise UsageError(f"--resume {folder}: the folder has no last.ckpt or interrupted.ckpt (a run stopped "
                             f"before its first epoch ended?); start it again with --out {folder} --overwrite")
        args.resume = str(path)
    if not path.is_file():
        raise UsageError(f"--resume {path} does not exist")
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        if not args.eval_only:
            raise
        try:
            return None, load_file(path)  # a state dict saved with minidl.save
        except SerializationError as err:
            raise CheckpointError(str(err)) from None
    if checkpoint["model_name"] != args.model:
        raise CheckpointError(f"{path} is a checkpoint of {checkpoint['model_name']}, not {args.model}")
    return checkpoint, None


def resolve_config(args, checkpoint=None):
    """The run's settings: the model's recipe (or the checkpoint's settings), then the command line."""
    given = {key: getattr(args, key) for key in RUN_SETTINGS + ("epochs", "data_dir") if getattr(args, key) is not None}
    if "dataset" in given:
        given["dataset"] = dataset_key(given["dataset"])
    if checkpoint is not None:
        config = dict(checkpoint["config"])
        for key in RUN_SETTINGS:
            if key in given and given[key] != config[key]:
                flag = "--" + key.replace("_", "-")
                raise UsageError(f"{flag} {given[key]} differs from the checkpoint's {config[key]}: a resumed run "
                                 f"keeps its settings (leave {flag} out)")
        config.update({key: given[key] for key in ("epochs", "data_dir") if key in given})
    else:
        try:
            recipe = recipe_for(args.model)
        except MissingRecipeError as err:
            raise UsageError(str(err)) from None
        config = {"model": args.model, "dataset": recipe.dataset, "input_size": recipe.input_size,
                  "channels": recipe.channels, "optimizer": recipe.optimizer,
                  "lr": recipe.lr, "momentum": recipe.momentum, "weight_decay": recipe.weight_decay,
                  "batch_size": recipe.batch_size, "epochs": recipe.epochs, "schedule": recipe.schedule,
                  "schedule_options": recipe.schedule_options, "seed": 0, "limit": None, "data_dir": None,
                  "num_classes": recipe.num_classes, "recipe": recipe.source}
        if given.get("optimizer", recipe.optimizer) != recipe.optimizer and "lr" not in given:
            config["lr"] = 1e-3  # Adam's usual rate; the recipe's is for SGD
        if given.get("schedule", recipe.schedule) != recipe.schedule:
            config["schedule_options"] = {}
        config.update(given)
        if config["optimizer"] != "sgd":
            config["momentum"] = 0.0
    config["device"] = args.device
    config["num_workers"] = args.num_workers
    return config


def _check_device(device):
    if device == "gpu" and not minidl.backend.gpu_available():
        why = "CuPy is not installed (pip install 'minidl[gpu]')" if minidl.backend.cupy is None else \
            "CuPy sees no CUDA device"
        raise UsageError(f"--device gpu: {why}; use --device cpu")


if __name__ == "__main__":
    sys.exit(main())
