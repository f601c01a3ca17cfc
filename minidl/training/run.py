"""One invocation of the training command: data, model, optimizer and trainer built from a config, then
training (with checkpoints, metrics and curves after every epoch) or evaluation.

    config = minidl.train.resolve_config(args)      # the model's recipe, then what the command line asked for
    exit_code = Run(args, config).execute()

Exit codes it returns (defined in ``minidl.training.errors``): 0 done, 2 a data file became unreadable while
training (after saving the last completed step), 3 stopped on a non-finite loss or weights, 4 an output file
could not be written (disk full, say; the previous checkpoint stays intact), 130 interrupted; a bad request (a
model that cannot take the data, an --out that cannot be used) raises :class:`UsageError` or
:class:`RunFolderError`, both before any data is read where possible.

Never losing work: the output folder is claimed (created, checked writable, locked) before the data
loads; a folder holding another run is refused unless resumed or ``--overwrite``; every file is written
atomically (a temporary file renamed into place), so a crash or a full disk leaves the previous version.
A data file that fails mid-epoch (a broken image) stops the run like Ctrl-C: the last completed step is
saved in interrupted.ckpt, then the file is named (exit 2); fix or remove it and resume.
"""
import errno
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import minidl
from minidl.data.formats import DataFileError
from minidl.serialization import atomic_write
from minidl.training.checkpoint import (CheckpointError, NonFiniteError, load_checkpoint, load_model_weights,
                                       make_checkpoint, save_checkpoint)
from minidl.training.data import build_data
from minidl.training.errors import (EXIT_DATA, EXIT_INTERRUPTED, EXIT_NONFINITE, EXIT_WRITE, PROG, OutputWriteError,
                                    UsageError)
from minidl.training.loop import NonFiniteLossError, Trainer
from minidl.training.metrics import plot_curves, write_metrics_csv
from minidl.training.recipes import make_optimizer, make_scheduler
from minidl.training.rundir import claim_run_folder

# What a schedule laid over --epochs epochs takes from that number: recomputed when a resume changes it.
SCHEDULE_SHAPE = ("milestones", "T_max")
THREAD_VARIABLES = ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class Run:
    """One invocation: builds data, model, optimizer and trainer from ``config``, trains or evaluates."""

    def __init__(self, args, config, checkpoint=None, weights=None):
        self.args, self.config, self.checkpoint, self.weights = args, config, checkpoint, weights
        self.comm = getattr(args, "comm", None)  # --distributed: only rank 0 claims the folder, writes and prints
        self.is_root = self.comm is None or self.comm.rank == 0
        self.quiet = args.quiet
        self.trainer = None
        self.out = None
        self.lock = None
        self.latest = "none"  # the newest checkpoint of this run, for messages
        if checkpoint is not None:
            self.latest = f"{args.resume} (epoch {checkpoint['progress']['epoch']})"

    def say(self, message):
        if self.is_root:
            print(message, flush=True)

    def execute(self):
        done = self.checkpoint["progress"]["epoch"] if self.checkpoint is not None else 0
        if not self.args.eval_only and done >= self.config["epochs"]:
            self.say(f"{self.args.resume} has already trained {done} epochs; pass --epochs N "
                     f"(N > {done}) to train longer")
            if self.is_root and (self.args.out is None or
                                 Path(self.args.out).resolve() == Path(self.args.resume).parent.resolve()):
                self._complete_finished_run()
            return 0
        if not self.args.eval_only:
            self.out = self._output_dir() if self.is_root else None  # claimed (created, writable, locked) first
            if self.comm is not None:  # the other ranks learn the folder's name (they never write in it)
                self.out = Path(self.comm.bcast_object(None if self.out is None else str(self.out)))
        try:
            return self._execute()
        finally:
            if self.lock is not None:
                self.lock.release()

    def _execute(self):
        config = self.config
        minidl.manual_seed(config["seed"])
        named = self.args.dataset is not None or config["data_dir"] is not None or self.checkpoint is not None
        data = build_data(config["dataset"], config["channels"], config["input_size"], config["batch_size"],
                          config["seed"], data_dir=config["data_dir"], limit=config["limit"],
                          num_workers=config["num_workers"], sample_fallback=not named,
                          num_classes=config.get("num_classes"), comm=self.comm)
        if data.dataset and data.dataset != config["dataset"]:  # MNIST fell back to the sample: say which was used
            config.update(dataset_requested=config["dataset"], dataset=data.dataset)
        config.update(num_classes=data.num_classes, data_source=data.source, train_size=data.train_size,
                      val_size=data.val_size)
        model = self._build_model(data)
        optimizer = make_optimizer(config["optimizer"], model.parameters(), config["lr"], config["momentum"],
                                   config["weight_decay"])
        scheduler = make_scheduler(config["schedule"], optimizer, config["epochs"], config["schedule_options"])
        if self.comm is not None:  # rank 0's weights to all, gradients averaged before every step
            from minidl.distributed import DistributedOptimizer
            optimizer = DistributedOptimizer(optimizer, self.comm, model=model)
        self.trainer = trainer = Trainer(model, optimizer, scheduler, data.train_loader, data.val_loader,
                                         device=config["device"],
                                         progress=False if self.quiet or not self.is_root else None)
        if self.weights is not None:
            load_model_weights(model, self.weights, self.args.resume, config["model"])
        if self.checkpoint is not None:
            self._restore(self.checkpoint, model, optimizer, scheduler, self.args.resume)
        source = data.source.split(": ")[0]  # the why of a fallback was said when it happened
        self.say(f"{config['model']} ({model.num_parameters():,} parameters) on {source}: "
                 f"{data.train_size:,} train / {data.val_size:,} validation images of "
                 f"{'x'.join(map(str, data.image_shape))}, {data.num_classes} classes")
        if self.args.eval_only:
            loss, acc = trainer.evaluate(data.val_loader)
            self.say(f"validation: loss {loss:.4f}, accuracy {100 * acc:.2f}% ({data.val_size:,} images, "
                     f"weights from {self.args.resume})")
            return 0
        return self._train()

    def _build_model(self, data):
        from minidl.models import get_model
        config = self.config
        try:
            model = get_model(config["model"], num_classes=data.num_classes)
        except (TypeError, ValueError) as err:
            raise UsageError(f"cannot build {config['model']} for {data.num_classes} classes: {err}") from None
        if config["device"] == "gpu":
            model.to("gpu")
        C, H, W = data.image_shape
        model.eval()
        try:  # a shape error now, in words, rather than a traceback at the first batch
            with minidl.no_grad():
                model(minidl.zeros(2, C, H, W).to(config["device"]))
        except (ValueError, RuntimeError, IndexError) as err:
            raise UsageError(f"{config['model']} does not take {C}x{H}x{W} images (--input-size "
                             f"{config['input_size']}): {err}".replace("\n", " ")) from None
        model.train()
        return model

    def _restore(self, checkpoint, model, optimizer, scheduler, path):
        load_model_weights(model, checkpoint["model"], path, self.config["model"], checkpoint["model_name"])
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
            if scheduler is not None and checkpoint["scheduler"] is not None:
                scheduler.load_state_dict(self._schedule_state(checkpoint, scheduler))
                if checkpoint["config"]["epochs"] != self.config["epochs"] and hasattr(scheduler, "get_lr"):
                    # the optimizer's saved lr is the old schedule's; the next epoch runs at the new one's
                    for group, lr in zip(optimizer.param_groups, scheduler.get_lr()):
                        group["lr"] = lr
                    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
            self.trainer.load_state(checkpoint["progress"], checkpoint["rng"])
        except (KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"{path}: cannot restore the training state ({type(err).__name__}: {err})") from None

    def _schedule_state(self, checkpoint, scheduler):
        """The saved schedule; when --epochs changed, stretched over the new total (milestones, T_max)."""
        state = dict(checkpoint["scheduler"])
        if checkpoint["config"]["epochs"] != self.config["epochs"]:
            fresh = scheduler.state_dict()
            state.update({key: fresh[key] for key in SCHEDULE_SHAPE if key in fresh})
        return state

    def _train(self):
        config, trainer = self.config, self.trainer
        config["command"] = "python -m minidl.train " + shlex.join(self.args.argv)
        config["resumed_from"] = self.args.resume
        config["minidl_version"] = minidl.__version__
        config["numpy_version"] = np.__version__
        config["threads"] = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
        config["history"] = self._earlier_sessions() + [
            {key: config[key] for key in ("command", "resumed_from", "epochs", "device", "minidl_version")}
            | {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}]
        try:
            self._write(self.out / "config.json", lambda path: atomic_write(
                path, lambda f: f.write(json.dumps(config, indent=2).encode())))
        except OutputWriteError as err:
            self._report(str(err))
            return EXIT_WRITE
        momentum = f" momentum {config['momentum']:g}" if config["optimizer"] == "sgd" else ""
        self.say(f"{config['optimizer']} lr {config['lr']:g}{momentum} weight decay {config['weight_decay']:g}, "
                 f"batch {config['batch_size']}, schedule {config['schedule']}, {config['epochs']} epochs, "
                 f"seed {config['seed']}, {config['device']}; writing to {self.out}")
        if trainer.step:
            self.say(f"resuming after step {trainer.step} (epoch {trainer.epoch + 1}, batch {trainer.batches_done} "
                     f"done) from {self.args.resume}")
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # the loop checks the loss itself
                trainer.fit(config["epochs"], on_epoch_end=self._end_of_epoch)
        except KeyboardInterrupt:
            return self._interrupted()
        except DataFileError as err:  # a file the loader could not read: save the last completed step, then stop
            saved = self._save_interrupted()
            self._report(f"{err}; stopped after step {trainer.step}: {saved}; fix or remove the file, then resume "
                         f"with --resume {self.out}")
            return EXIT_DATA
        except OutputWriteError as err:
            self._report(f"{err}; stopped after step {trainer.step} (latest intact checkpoint: {self.latest})")
            return EXIT_WRITE
        except NonFiniteLossError as err:
            self._report(f"{err}; stopped without saving this state (latest checkpoint: {self.latest}); "
                         f"a smaller --lr may help")
            return EXIT_NONFINITE
        except NonFiniteError as err:
            self._report(f"{err} after step {trainer.step}: stopped without saving it (latest checkpoint: "
                         f"{self.latest}); a smaller --lr may help")
            return EXIT_NONFINITE
        best = trainer.best
        self.say(f"done: best validation accuracy {100 * best['value']:.2f}% (epoch {best['epoch']}); "
                 f"final {100 * trainer.history[-1]['val_acc']:.2f}%; outputs in {self.out}")
        return 0

    def _end_of_epoch(self, row):
        config, trainer = self.config, self.trainer
        if self.comm is not None:  # every rank saw as many images: the mean of the ranks' means is the run's
            for key in ("train_loss", "train_acc"):
                row[key] = self.comm.allreduce(float(row[key]))
            row["images_per_s"] = self.comm.allreduce(float(row["images_per_s"]), op="sum")
        checkpoint = self._checkpoint()
        self._write(self.out / "last.ckpt", lambda path: save_checkpoint(checkpoint, path))
        self.latest = f"{self.out / 'last.ckpt'} (epoch {row['epoch']})"
        self._forget_resumed_interruption()
        if row["is_best"]:
            self._write(self.out / "best.ckpt", lambda path: save_checkpoint(checkpoint, path))
        self._write(self.out / "metrics.csv", lambda path: write_metrics_csv(path, trainer.history))
        self._write(self.out / "curves.png", lambda path: plot_curves(
            path, trainer.history, title=f"{config['model']} on {config['dataset']}"))
        width = len(str(config["epochs"]))
        self.say(f"epoch {row['epoch']:>{width}}/{config['epochs']}  train loss {row['train_loss']:.4f} "
                 f"acc {100 * row['train_acc']:.2f}%  val loss {row['val_loss']:.4f} acc {100 * row['val_acc']:.2f}%  "
                 f"lr {row['lr']:.3g}  {row['seconds']:.1f} s ({_rate(row['images_per_s'])} img/s{_first(row)})"
                 f"{'  *best' if row['is_best'] else ''}")

    def _complete_finished_run(self):
        """A run killed between saving its last checkpoint and the files after it: write those from it."""
        self.out = self._output_dir()
        try:
            checkpoint, progress = self.checkpoint, self.checkpoint["progress"]
            if progress["best"]["epoch"] == progress["epoch"] and _saved_epoch(self.out / "best.ckpt") != progress["epoch"]:
                self._write(self.out / "best.ckpt", lambda path: save_checkpoint(checkpoint, path))
                self.say(f"wrote the missing {self.out / 'best.ckpt'} (epoch {progress['epoch']})")
            self._write(self.out / "metrics.csv", lambda path: write_metrics_csv(path, progress["history"]))
        except OutputWriteError as err:
            self._report(str(err))
        finally:
            self.lock.release()
            self.lock = None

    def _write(self, path, write):
        """``write(path)``; an OSError (disk full, permissions) becomes :class:`OutputWriteError` naming the file.
        Only rank 0 of a --distributed run writes."""
        if not self.is_root:
            return None
        try:
            return write(path)
        except OSError as err:
            why = "disk full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "write failed"
            raise OutputWriteError(f"cannot write {path}: {why} ({err.strerror or err}); its previous version, if "
                                   f"any, is intact") from None

    def _forget_resumed_interruption(self):
        """After a resume from interrupted.ckpt, the new last.ckpt supersedes it: remove it (it is ours)."""
        resumed = Path(self.args.resume) if self.args.resume is not None else None
        stale = self.out / "interrupted.ckpt"
        if self.is_root and resumed is not None and resumed.name == "interrupted.ckpt" and stale.exists() and \
                stale.resolve() == resumed.resolve():
            stale.unlink()

    def _earlier_sessions(self):
        """The history of the run folder's earlier sessions (config.json, else the checkpoint's config)."""
        try:
            earlier = json.loads((self.out / "config.json").read_text())
        except (OSError, ValueError):
            earlier = self.checkpoint["config"] if self.checkpoint is not None else None
        if not isinstance(earlier, dict) or "command" not in earlier:
            return []
        if isinstance(earlier.get("history"), list):
            return earlier["history"]
        return [{key: earlier.get(key) for key in ("command", "resumed_from", "epochs", "device", "minidl_version")}]

    def _checkpoint(self):
        trainer = self.trainer
        return make_checkpoint(self.config["model"], self.config, trainer.model, trainer.optimizer, trainer.scheduler,
                               trainer.progress_state(), trainer.rng_state())

    def _interrupted(self):
        if not self.is_root:
            return EXIT_INTERRUPTED
        trainer = self.trainer
        where = f"step {trainer.step} (epoch {trainer.epoch + 1}, batch {trainer.batches_done})"
        if trainer.mid_step:
            self._report(f"interrupted in the middle of a step: no checkpoint written (latest: {self.latest})")
            return EXIT_INTERRUPTED
        path = self.out / "interrupted.ckpt"
        try:
            save_checkpoint(self._checkpoint(), path)
        except NonFiniteError as err:
            self._report(f"interrupted after {where}; not saving: {err}")
            return EXIT_INTERRUPTED
        except OSError as err:
            self._report(f"interrupted after {where}; cannot write {path} ({err.strerror or err}); latest "
                         f"checkpoint: {self.latest}")
            return EXIT_INTERRUPTED
        self._report(f"interrupted after {where}: saved {path}\n"
                     f"resume with: python -m minidl.train {self.config['model']} --resume {path}")
        return EXIT_INTERRUPTED

    def _save_interrupted(self):
        """Save the last completed step in interrupted.ckpt (as Ctrl-C does); returns what happened, in words."""
        path = self.out / "interrupted.ckpt"
        if not self.is_root:
            return "rank 0 saves"
        if self.trainer.step == 0 or self.trainer.mid_step:
            return f"nothing new to save (latest checkpoint: {self.latest})"
        try:
            save_checkpoint(self._checkpoint(), path)
        except (NonFiniteError, OSError) as err:
            return f"could not save {path} ({err}; latest checkpoint: {self.latest})"
        return f"saved {path}"

    def _report(self, message):
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    def _output_dir(self):
        """The run folder, claimed: created, checked writable and locked (see minidl.training.rundir)."""
        resumed_dir = Path(self.args.resume).parent if self.args.resume is not None else None
        if self.args.out is not None:
            out = Path(self.args.out)
        elif resumed_dir is not None:
            out = resumed_dir
        else:
            stem = Path("runs") / f"{self.config['model']}-{time.strftime('%Y%m%d-%H%M%S')}"
            out, n = stem, 1
            while out.exists():
                n += 1
                out = stem.with_name(f"{stem.name}-{n}")
        resuming_here = resumed_dir is not None and out.resolve() == resumed_dir.resolve()
        self.lock = claim_run_folder(out, resuming_here, getattr(self.args, "overwrite", False), say=self.say)
        return out


def _saved_epoch(path):
    try:
        return load_checkpoint(path)["progress"]["epoch"]
    except (OSError, CheckpointError):
        return None


def _first(row):
    """The first step of a session, timed apart: it includes Numba compiling the kernels not yet cached."""
    first = row.get("first_step_seconds")
    return f"; first step {first:.2f} s apart: it holds any one-time compile" if first else ""


def _rate(images_per_second):
    return f"{images_per_second:,.0f}" if images_per_second >= 100 else f"{images_per_second:.3g}"
