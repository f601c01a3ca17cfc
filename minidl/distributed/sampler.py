"""``DistributedSampler``: each rank's share of one epoch's order (the "dataset scatter" of ChainerMN).

Every rank draws the same permutation of the ``n`` indices (a generator seeded by (seed, epoch), never the
global one) and takes every ``num_replicas``-th index from position ``rank``:

    order  = permutation(n)                      # identical on every rank
    shard  = order[rank::num_replicas]           # disjoint; together they cover the order

Strided shards make data parallelism exact: with a global batch B and per-rank batch B/N, rank r's batch
k holds the images at positions r, r+N, ... of global batch k, so the N ranks together see exactly the
batch one process would (the average of their mean-loss gradients is that batch's mean-loss gradient).

When ``n`` is not a multiple of ``num_replicas`` the order is padded by repeating its first indices (so
every rank has the same number of batches and the collectives stay matched; PyTorch does the same), or,
with ``drop_last=True``, its tail is dropped. Only then are shards not strictly disjoint / covering.

Use it with the DataLoader (``DataLoader(dataset, batch_size, sampler=sampler)``): the loader then asks
``sampler.indices(epoch)`` for each of its epochs, and its own ``state_dict`` (epoch, batch) resumes
mid-epoch. Iterated directly, the sampler yields its shard's indices and keeps its own position
(``state_dict`` / ``load_state_dict``), as PyTorch's does with ``set_epoch``.
"""
import math

import numpy as np

_SHUFFLE_STREAM = 0xD157  # keeps this generator apart from the DataLoader's own streams


class DistributedSampler:
    """Indices of ``dataset`` (anything with ``len``) for rank ``rank`` of ``num_replicas``.

    Pass ``comm`` (a minidl.distributed communicator) or ``num_replicas`` and ``rank``. ``seed`` must be
    the same on every rank.
    """

    def __init__(self, dataset, comm=None, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if comm is not None:
            num_replicas = comm.size if num_replicas is None else num_replicas
            rank = comm.rank if rank is None else rank
        if num_replicas is None or rank is None:
            raise ValueError("DistributedSampler: pass comm, or num_replicas and rank")
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas}), got {rank!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be a non-negative int, got {seed!r}")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        self._position = 0  # indices of this epoch already yielded by __iter__

    def __len__(self):
        n = len(self.dataset)
        if self.drop_last:
            return n // self.num_replicas
        return math.ceil(n / self.num_replicas)

    @property
    def total_size(self):
        return len(self) * self.num_replicas

    def set_epoch(self, epoch):
        """Select the epoch whose order ``__iter__`` yields (call it at the start of each epoch)."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: epoch must be a non-negative int, got {epoch!r}")
        if epoch != self.epoch:
            self.epoch, self._position = int(epoch), 0

    def global_order(self, epoch):
        """The order of all ranks together for ``epoch``: length ``total_size``, the same on every rank."""
        n = len(self.dataset)
        if self.shuffle:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_SHUFFLE_STREAM, int(epoch))))
            order = rng.permutation(n)
        else:
            order = np.arange(n)
        total = self.total_size
        if total <= n:
            return order[:total]
        return np.concatenate([order, np.resize(order, total - n)])  # pad by repeating from the start

    def indices(self, epoch):
        """This rank's indices for ``epoch`` (an int64 array of ``len(self)``)."""
        return self.global_order(epoch)[self.rank::self.num_replicas]

    def __iter__(self):
        shard = self.indices(self.epoch)
        while self._position < len(shard):
            index = int(shard[self._position])
            self._position += 1
            yield index
        self.epoch, self._position = self.epoch + 1, 0

    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch, "position": self._position,
                "num_replicas": self.num_replicas, "rank": self.rank, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "dataset_size": len(self.dataset)}

    def load_state_dict(self, state):
        """Continue from ``state``; refused when it was saved with another number of ranks or dataset."""
        if state["num_replicas"] != self.num_replicas:
            raise ValueError(f"DistributedSampler.load_state_dict: the state was saved with {state['num_replicas']} "
                             f"ranks, this run has {self.num_replicas}; resume with the same number of ranks")
        if state["dataset_size"] != len(self.dataset):
            raise ValueError(f"DistributedSampler.load_state_dict: the state was saved for a dataset of "
                             f"{state['dataset_size']} items, this one has {len(self.dataset)}")
        if not 0 <= state["position"] <= len(self):
            raise ValueError(f"DistributedSampler.load_state_dict: position {state['position']} is outside "
                             f"[0, {len(self)}]")
        self.seed, self.shuffle, self.drop_last = int(state["seed"]), bool(state["shuffle"]), bool(state["drop_last"])
        self.epoch, self._position = int(state["epoch"]), int(state["position"])

    def __repr__(self):
        return (f"DistributedSampler({len(self.dataset)} items, rank {self.rank} of {self.num_replicas}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")
