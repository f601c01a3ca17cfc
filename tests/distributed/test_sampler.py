"""DistributedSampler: shards disjoint and covering, one permutation on all ranks, exact data parallelism,
resume mid-epoch (alone and through the DataLoader)."""
import numpy as np
import pytest

from minidl.data.dataloader import DataLoader
from minidl.distributed import DistributedSampler, SingleProcessCommunicator


class Items:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1, 2, 2), i, np.float32), i


def shards(n, replicas, epoch=0, **kwargs):
    return [DistributedSampler(Items(n), num_replicas=replicas, rank=r, seed=3, **kwargs).indices(epoch)
            for r in range(replicas)]


@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_shards_are_disjoint_and_cover_the_dataset(replicas):
    parts = shards(24, replicas)
    assert all(len(p) == 24 // replicas for p in parts)
    together = np.concatenate(parts)
    assert sorted(together.tolist()) == list(range(24))


def test_every_rank_shards_the_same_permutation_which_changes_per_epoch():
    samplers = [DistributedSampler(Items(30), num_replicas=3, rank=r, seed=5) for r in range(3)]
    orders = [s.global_order(0) for s in samplers]
    assert all((o == orders[0]).all() for o in orders)
    assert sorted(orders[0].tolist()) == list(range(30)) and not (orders[0] == np.arange(30)).all()
    assert not (samplers[0].global_order(1) == orders[0]).all()
    other_seed = DistributedSampler(Items(30), num_replicas=3, rank=0, seed=6)
    assert not (other_seed.global_order(0) == orders[0]).all()
    for r, s in enumerate(samplers):
        np.testing.assert_array_equal(s.indices(0), orders[0][r::3])


def test_rank_batches_together_are_the_one_process_batch():
    """Rank r's batch k of B/N images holds positions r, r+N, ... of the one-process batch k of B images."""
    B, N = 8, 2
    single = DistributedSampler(Items(24), num_replicas=1, rank=0, seed=9).indices(2)
    parts = [DistributedSampler(Items(24), num_replicas=N, rank=r, seed=9).indices(2) for r in range(N)]
    for k in range(24 // B):
        together = np.concatenate([p[k * B // N:(k + 1) * B // N] for p in parts])
        assert sorted(together.tolist()) == sorted(single[k * B:(k + 1) * B].tolist())


def test_uneven_dataset_is_padded_or_dropped():
    padded = shards(5, 2)
    assert [len(p) for p in padded] == [3, 3]
    assert set(np.concatenate(padded).tolist()) == set(range(5))      # covering, one index repeated
    dropped = shards(5, 2, drop_last=True)
    assert [len(p) for p in dropped] == [2, 2]
    assert len(set(np.concatenate(dropped).tolist())) == 4            # disjoint, one index left out
    assert [len(p) for p in shards(1, 3)] == [1, 1, 1]                # fewer items than ranks
    assert [len(p) for p in shards(0, 2)] == [0, 0]                   # empty dataset


def test_no_shuffle_is_the_strided_identity():
    np.testing.assert_array_equal(shards(6, 2, shuffle=False)[1], [1, 3, 5])


def test_iteration_set_epoch_and_resume_mid_epoch():
    s = DistributedSampler(Items(20), num_replicas=2, rank=1, seed=1)
    s.set_epoch(3)
    full = list(s)
    assert full == s.indices(3).tolist() and s.epoch == 4
    s.set_epoch(3)
    it = iter(s)
    first = [next(it) for _ in range(4)]
    state = s.state_dict()
    resumed = DistributedSampler(Items(20), num_replicas=2, rank=1, seed=0)
    resumed.load_state_dict(state)
    assert first + list(resumed) == full


def test_load_state_dict_refuses_another_world_or_dataset():
    state = DistributedSampler(Items(20), num_replicas=2, rank=0).state_dict()
    with pytest.raises(ValueError, match="saved with 2 ranks, this run has 4; resume with the same number of ranks"):
        DistributedSampler(Items(20), num_replicas=4, rank=0).load_state_dict(state)
    with pytest.raises(ValueError, match="saved for a dataset of 20 items, this one has 21"):
        DistributedSampler(Items(21), num_replicas=2, rank=0).load_state_dict(state)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pass comm, or num_replicas and rank"):
        DistributedSampler(Items(4))
    with pytest.raises(ValueError, match="rank must be in \\[0, 2\\), got 2"):
        DistributedSampler(Items(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive int, got 0"):
        DistributedSampler(Items(4), num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        DistributedSampler(Items(4), num_replicas=1, rank=0, seed=-1)
    with pytest.raises(ValueError, match="set_epoch: epoch must be a non-negative int"):
        DistributedSampler(Items(4), num_replicas=1, rank=0).set_epoch(-1)


def test_comm_gives_rank_and_size():
    s = DistributedSampler(Items(4), SingleProcessCommunicator())
    assert (s.rank, s.num_replicas) == (0, 1)


def _labels(loader):
    return [y.numpy().tolist() for _, y in loader]


def test_dataloader_with_sampler_loads_the_shard_and_resumes_mid_epoch():
    sampler = DistributedSampler(Items(20), num_replicas=2, rank=0, seed=4)
    loader = DataLoader(Items(20), batch_size=3, sampler=sampler, prefetch=0)
    assert len(loader) == 4
    epoch0, epoch1 = _labels(loader), _labels(loader)
    assert sum(epoch0, []) == sampler.indices(0).tolist() and sum(epoch1, []) == sampler.indices(1).tolist()

    fresh = DataLoader(Items(20), batch_size=3, sampler=DistributedSampler(Items(20), num_replicas=2, rank=0, seed=4),
                       prefetch=0)
    it = iter(fresh)
    head = [next(it)[1].numpy().tolist() for _ in range(2)]
    state = fresh.state_dict()
    again = DataLoader(Items(20), batch_size=3, sampler=DistributedSampler(Items(20), num_replicas=2, rank=0, seed=4),
                       prefetch=0)
    again.load_state_dict(state)
    assert head + _labels(again) == epoch0
    assert _labels(again) == epoch1


def test_dataloader_state_holds_the_sampler_state_and_refuses_another_world():
    loader = DataLoader(Items(20), batch_size=2, sampler=DistributedSampler(Items(20), num_replicas=2, rank=1, seed=4),
                        prefetch=0)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert state["sampler"]["num_replicas"] == 2 and state["sampler"]["seed"] == 4 and state["sampler"]["epoch"] == 0
    other = DataLoader(Items(20), batch_size=2, sampler=DistributedSampler(Items(20), num_replicas=4, rank=0),
                       prefetch=0)
    with pytest.raises(ValueError, match="saved with 2 ranks, this run has 4"):
        other.load_state_dict(state)


def test_dataloader_refuses_shuffle_with_a_sampler():
    sampler = DistributedSampler(Items(4), num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="DataLoader: pass either shuffle=True or a sampler"):
        DataLoader(Items(4), batch_size=2, shuffle=True, sampler=sampler)
