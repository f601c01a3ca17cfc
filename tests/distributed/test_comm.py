"""Communicators in one process: the world of one, and a fake 2-rank world of threads (tests/distributed/fake.py)
that runs the real packing, bucketing and broadcast code."""
import sys
import threading

import numpy as np
import pytest

import minidl
import minidl.distributed as dist
from minidl import nn, optim
from minidl.distributed.comm import buckets, pack, unpack
from tests.distributed.fake import ThreadComm, ThreadWorld, run_ranks


# -- packing ------------------------------------------------------------------------------------------

def test_pack_unpack_round_trip_with_non_contiguous_and_empty_arrays():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((3, 4)).T, np.zeros((0, 5)), rng.standard_normal(7)[::2], np.float64(2.5) * np.ones(())]
    flat = pack(arrays)
    assert flat.shape == (12 + 0 + 4 + 1,) and flat.flags.c_contiguous
    for got, want in zip(unpack(flat, arrays), arrays):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_unpack_gives_views_of_the_buffer():
    arrays = [np.ones(3), np.ones((2, 2))]
    flat = pack(arrays)
    pieces = unpack(flat, arrays)
    flat[:] = 7.0
    assert all((p == 7.0).all() for p in pieces)


def test_pack_and_unpack_refuse_bad_input():
    with pytest.raises(ValueError, match="pack: arrays of one dtype expected"):
        pack([np.ones(2, np.float32), np.ones(2)])
    with pytest.raises(ValueError, match="pack: no arrays"):
        pack([])
    with pytest.raises(ValueError, match="unpack: a 1-D buffer of 5 elements expected, got shape"):
        unpack(np.ones(4), [np.ones(2), np.ones(3)])


def test_buckets_split_by_dtype_keep_order_and_respect_the_limit():
    a32 = [np.ones(10, np.float32) for _ in range(5)]   # 40 bytes each
    a64 = [np.ones(3) for _ in range(2)]
    arrays = [a32[0], a64[0], a32[1], a32[2], a64[1], a32[3], a32[4]]
    assert buckets(arrays) == [[0, 2, 3, 5, 6], [1, 4]]          # one bucket per dtype under the limit
    assert buckets(arrays, bucket_bytes=80) == [[0, 2], [3, 5], [6], [1, 4]]
    big = [np.ones(100, np.float32), np.ones(1, np.float32)]
    assert buckets(big, bucket_bytes=8) == [[0], [1]]           # larger than the limit: a bucket of its own
    assert buckets([]) == []
    with pytest.raises(ValueError, match="bucket_bytes must be positive"):
        buckets(arrays, bucket_bytes=0)


# -- the world of one ---------------------------------------------------------------------------------

def test_init_without_mpi4py_is_a_world_of_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)   # import mpi4py now raises ImportError
    for name in dist.comm._LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    comm = dist.init("mpi")
    assert isinstance(comm, dist.SingleProcessCommunicator)
    assert (comm.rank, comm.size, comm.local_rank) == (0, 1, 0)
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(RuntimeError, match="mpi4py is not installed but this process is one of 2 MPI ranks"):
        dist.init("mpi")


def test_init_refuses_an_unknown_backend():
    with pytest.raises(ValueError, match="backend must be 'mpi' or 'nccl', got 'gloo'"):
        dist.init("gloo")


def test_world_of_one_leaves_everything_as_it_is(capsys):
    comm = dist.SingleProcessCommunicator()
    model = nn.Linear(3, 2)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model(minidl.ones(4, 3)).sum().backward()
    grad = model.weight.grad.numpy().copy()
    comm.bcast_parameters(model)
    comm.allreduce_gradients(model)
    assert all((model.state_dict()[k].numpy() == v).all() for k, v in before.items())
    np.testing.assert_array_equal(model.weight.grad.numpy(), grad)
    assert comm.allreduce(3, op="sum") == 3 and comm.allreduce(3) == 3.0
    comm.print0("hello")
    assert capsys.readouterr().out == "hello\n"


def test_allreduce_types_and_errors():
    comm = dist.SingleProcessCommunicator()
    t = comm.allreduce(minidl.tensor([1.0, 2.0]))
    assert isinstance(t, minidl.Tensor) and t.numpy().tolist() == [1.0, 2.0]
    assert isinstance(comm.allreduce(np.array([1, 2]), op="sum"), np.ndarray)
    with pytest.raises(ValueError, match="allreduce: op must be 'sum' or 'mean', got 'max'"):
        comm.allreduce(1.0, op="max")
    with pytest.raises(TypeError, match="allreduce: expected a number or a numeric array"):
        comm.allreduce("loss")
    with pytest.raises(ValueError, match="bcast_parameters: root must be a rank in \\[0, 1\\), got 1"):
        comm.bcast_parameters(nn.Linear(2, 2), root=1)


# -- two fake ranks -------------------------------------------------------------------------------------

_SEEDING = threading.Lock()  # the fake ranks are threads sharing minidl's global generator


def _model_with_grads(rank, dtype=np.float64):
    with _SEEDING:
        minidl.manual_seed(rank)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(dtype=dtype)
    for i, p in enumerate(model.parameters()):
        p.grad = minidl.Tensor(np.full(p.shape, 10.0 * rank + i, dtype=p.dtype))
    return model


@pytest.mark.parametrize("bucket_bytes, calls", [(dist.DEFAULT_BUCKET_BYTES, 1), (64, 5)])
def test_allreduce_gradients_averages_with_one_allreduce_per_bucket(bucket_bytes, calls):
    def body(comm):
        model = _model_with_grads(comm.rank)
        comm.allreduce_gradients(model)
        return [p.grad.numpy() for p in model.parameters()], comm.allreduce_calls

    results = run_ranks(body, bucket_bytes=bucket_bytes)
    for grads, n_calls in results:
        assert n_calls == calls
        for i, g in enumerate(grads):
            np.testing.assert_array_equal(g, np.full(g.shape, (i + (10.0 + i)) / 2))


def test_allreduce_gradients_packs_each_dtype_separately_and_fills_missing_grads():
    def body(comm):
        minidl.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double())
        params = list(model.parameters())
        for p in params:
            p.grad = minidl.Tensor(np.full(p.shape, 4.0, dtype=p.dtype))
        if comm.rank == 1:
            params[3].grad = None     # no gradient here: counts as zeros
        comm.allreduce_gradients(model)
        return [(p.grad.dtype, p.grad.numpy()) for p in params], comm.allreduce_calls

    for grads, calls in run_ranks(body):
        assert calls == 2
        assert [str(d) for d, _ in grads] == ["float32", "float32", "float64", "float64"]
        assert all((g == 4.0).all() for _, g in grads[:3]) and (grads[3][1] == 2.0).all()


def test_bcast_parameters_copies_root_parameters_and_buffers():
    def body(comm):
        model = _model_with_grads(comm.rank)
        model[1].running_mean.data[...] = comm.rank + 5.0
        comm.bcast_parameters(model, root=1)
        return {k: v.numpy().copy() for k, v in model.state_dict().items()}

    rank0, rank1 = run_ranks(body)
    assert rank0.keys() == rank1.keys()
    for k in rank0:
        np.testing.assert_array_equal(rank0[k], rank1[k])
    assert (rank0["1.running_mean"] == 6.0).all()


def test_bcast_parameters_names_a_mismatch_on_every_rank():
    def body(comm):
        model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2 if comm.rank == 0 else 3))
        with pytest.raises(ValueError) as info:
            comm.bcast_parameters(model)
        return str(info.value)

    for message in run_ranks(body):
        assert message == ("bcast_parameters: the models differ across ranks: rank 1 has parameter 1.weight "
                           "(3, 4) float32 where rank 0 has parameter 1.weight (2, 4) float32")


@pytest.mark.parametrize("extra_on, counts", [(1, "rank 1 has 4 parameters and buffers, rank 0 has 2"),
                                              (0, "rank 1 has 2 parameters and buffers, rank 0 has 4")])
def test_bcast_parameters_names_a_missing_layer(extra_on, counts):
    def body(comm):
        layers = [nn.Linear(3, 3)] + ([nn.Linear(3, 3)] if comm.rank == extra_on else [])
        with pytest.raises(ValueError) as info:
            comm.bcast_parameters(nn.Sequential(*layers))
        assert str(info.value).endswith(f"{counts} (first unmatched: parameter 1.weight)")

    run_ranks(body)


def test_distributed_optimizer_starts_from_rank_0_and_averages_gradients():
    def body(comm):
        model = _model_with_grads(comm.rank)
        opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=1.0), comm, model=model)
        start = [p.numpy().copy() for p in model.parameters()]
        for i, p in enumerate(model.parameters()):
            p.grad = minidl.Tensor(np.full(p.shape, 10.0 * comm.rank + i))
        opt.step()
        assert opt.param_groups is opt.optimizer.param_groups
        return start, [p.numpy() for p in model.parameters()]

    (start0, end0), (start1, end1) = run_ranks(body)
    minidl.manual_seed(0)
    rank0_init = [p.numpy() for p in _model_with_grads(0).parameters()]
    for i, (s0, s1, e0, e1, r) in enumerate(zip(start0, start1, end0, end1, rank0_init)):
        np.testing.assert_array_equal(s0, r)
        np.testing.assert_array_equal(s1, r)
        np.testing.assert_array_equal(e0, e1)
        np.testing.assert_allclose(e0, r - (i + 10.0 + i) / 2)


def test_print0_prints_on_rank_0_only(capsys):
    world = ThreadWorld(2)
    ThreadComm(world, 1).print0("from rank 1")
    ThreadComm(world, 0).print0("from rank 0")
    assert capsys.readouterr().out == "from rank 0\n"


def test_allreduce_of_metrics_over_two_ranks():
    results = run_ranks(lambda comm: (comm.allreduce(comm.rank + 1, op="sum"), comm.allreduce(float(comm.rank))))
    assert results == [(3, 0.5), (3, 0.5)]
