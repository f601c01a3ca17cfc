"""DataLoader: batches of (float32 NCHW images, int64 labels) as minidl Tensors.

    loader = DataLoader(train_set, batch_size=128, shuffle=True, seed=0)
    for images, labels in loader:          # images: Tensor N x C x H x W, labels: Tensor N (int64)
        ...
    checkpoint["data"] = loader.state_dict()    # later: loader.load_state_dict(checkpoint["data"])

Shuffling uses the loader's own NumPy generator, seeded by ``seed``, never minidl's global one, so
model code that draws random numbers does not change the data order. Each epoch draws a new order.

Random augmentation inside a batch draws from a generator derived from (seed, epoch, batch index) (see
``minidl.data.transforms.augmentation_rng``), so a batch is the same whether it was loaded in a background
thread or not, and a run resumed from ``state_dict()`` sees exactly the batches the original run would have.

Background loading uses threads, not processes: Numba's OpenMP layer is not fork-safe, and NumPy releases
the GIL in the copies and arithmetic that loading does.
"""
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minidl import random as _random
from minidl.data.transforms import apply_to_batch, augmentation_rng
from minidl.tensor import Tensor

_AUGMENTATION_STREAM = 0xDA7A  # keeps the per-batch generators apart from the shuffling one


class DataLoader:
    """Iterate over ``dataset`` in batches.

    batch_size: images per batch. shuffle: a new random order every epoch. drop_last: skip the last
    batch when it is smaller than ``batch_size``. transform: applied to each whole NCHW batch (in one
    call when it handles batches). seed: seeds shuffling and augmentation; None draws it from minidl's
    global generator (so ``minidl.manual_seed`` fixes it). prefetch: batches prepared ahead in a
    background thread (0: load in the caller's thread). num_workers: threads loading batches (0: one
    thread when prefetching). sampler: an object with ``__len__`` and ``indices(epoch)`` (the order of the
    dataset indices to load in that epoch), such as ``minidl.distributed.DistributedSampler``; it replaces
    ``shuffle`` (which must then stay False).

    One iteration at a time: starting a new ``for`` loop abandons an unfinished epoch and begins the next.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, transform=None, seed=None,
                 prefetch=2, num_workers=0, sampler=None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if prefetch < 0 or num_workers < 0:
            raise ValueError(f"DataLoader: prefetch and num_workers must be >= 0, got {prefetch}, {num_workers}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: pass either shuffle=True or a sampler (the sampler decides the order)")
        if seed is None:
            seed = int(_random.default_rng().integers(2**63 - 1))
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int, got {seed!r}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.transform, self.prefetch, self.num_workers = transform, int(prefetch), int(num_workers)
        self.seed, self.sampler = int(seed), sampler
        self._rng = np.random.default_rng(self.seed)
        self.epoch = 0                 # the epoch under way, or the next one to start
        self._batch = 0                # batches of it handed out so far
        self._epoch_start_state = self._rng.bit_generator.state  # the generator before drawing its order
        self._in_progress = False      # an epoch was started and not finished

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        if self._in_progress:  # the last epoch was abandoned part-way: move on to the next
            self._finish_epoch()
        self._rng.bit_generator.state = self._epoch_start_state
        n = len(self.dataset)
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(self.epoch)
            order = np.asarray(self.sampler.indices(self.epoch))
        else:
            order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        self._in_progress = True
        return self._iterate(self.epoch, order, self._batch)

    def _iterate(self, epoch, order, start):
        for index, (images, labels) in enumerate(self._load_batches(epoch, order, start), start):
            self._batch = index + 1
            yield Tensor(images), Tensor(labels)
        self._finish_epoch()

    def _finish_epoch(self):
        self.epoch += 1
        self._batch = 0
        self._epoch_start_state = self._rng.bit_generator.state  # it has drawn the finished epoch's order
        self._in_progress = False

    def _batch_indices(self, order, start):
        bs = self.batch_size
        return [(b, order[b * bs:(b + 1) * bs]) for b in range(start, len(self))]

    def _load_batches(self, epoch, order, start):
        jobs = self._batch_indices(order, start)
        if self.prefetch == 0 and self.num_workers == 0:
            for index, indices in jobs:
                yield self.load_batch(epoch, index, indices)
            return
        threads = max(1, self.num_workers)
        ahead = max(self.prefetch, threads)
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="minidl-data")
        pending, jobs = deque(), iter(jobs)
        try:
            for index, indices in jobs:
                pending.append(pool.submit(self.load_batch, epoch, index, indices))
                if len(pending) == ahead:
                    break
            while pending:
                batch = pending.popleft().result()  # re-raises a loading error here, in order
                job = next(jobs, None)
                if job is not None:
                    pending.append(pool.submit(self.load_batch, epoch, *job))
                yield batch
        finally:  # also runs when the loop is abandoned (the generator is closed)
            pool.shutdown(wait=False, cancel_futures=True)

    def load_batch(self, epoch, index, indices):
        """Batch ``index`` of ``epoch``: images (N, C, H, W) float32 and labels (N,) int64, as arrays."""
        seed = np.random.SeedSequence(self.seed, spawn_key=(_AUGMENTATION_STREAM, epoch, index))
        with augmentation_rng(np.random.default_rng(seed)):
            if hasattr(self.dataset, "get_batch"):
                images, labels = self.dataset.get_batch(indices)
            else:
                images, labels = self._stack([self.dataset[int(i)] for i in indices])
            if self.transform is not None:
                images = apply_to_batch(self.transform, images)
        return np.ascontiguousarray(images, dtype=np.float32), np.asarray(labels, dtype=np.int64)

    @staticmethod
    def _stack(items):
        shapes = {np.shape(image) for image, _ in items}
        if len(shapes) > 1:
            raise ValueError(f"DataLoader: images in one batch have different shapes {sorted(shapes)}; "
                             f"add a Resize/CenterCrop transform to the dataset")
        return np.stack([image for image, _ in items]), np.array([label for _, label in items], np.int64)

    def state_dict(self):
        """Where the loader is: epoch, batches already handed out in it, and its generator state (and the
        sampler's ``state_dict()``, when it has one)."""
        if self._in_progress and self._batch >= len(self):  # every batch handed out: next epoch
            state = {"seed": self.seed, "epoch": self.epoch + 1, "batch": 0,
                     "generator": self._rng.bit_generator.state}
        else:
            generator = self._epoch_start_state if self._in_progress else self._rng.bit_generator.state
            state = {"seed": self.seed, "epoch": self.epoch, "batch": self._batch, "generator": generator}
        if hasattr(self.sampler, "state_dict"):
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state):
        """Continue from ``state``: the next ``for`` loop yields the batches after the saved position."""
        if "sampler" in state and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])  # refuses a state saved for another world or dataset
        if not 0 <= state["batch"] <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: batch {state['batch']} is out of range for a loader "
                             f"of {len(self)} batches (was the state saved with another batch size?)")
        self.seed = int(state["seed"])
        self.epoch, self._batch = int(state["epoch"]), int(state["batch"])
        self._epoch_start_state = state["generator"]
        self._rng.bit_generator.state = state["generator"]
        self._in_progress = False

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, prefetch={self.prefetch}, "
                f"num_workers={self.num_workers})")
