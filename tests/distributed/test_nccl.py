"""The NCCL backend (CuPy). Its packing, bucketing and broadcast logic is the MPI path's (tested in
test_comm.py and test_mpi.py); here only the transport: a 1-rank smoke test on one GPU, and 2 ranks on two
GPUs. Skipped without CuPy, mpi4py or enough GPUs."""
import numpy as np
import pytest

from minidl import backend

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'minidl[mpi]')")


def _gpus():
    if backend.cupy is None or not backend.gpu_available():
        return 0
    return backend.cupy.cuda.runtime.getDeviceCount()


@pytest.mark.skipif(_gpus() < 1, reason="needs CuPy and a CUDA GPU")
def test_nccl_world_of_one_smoke():
    import minidl
    import minidl.distributed as dist
    from minidl import nn
    cupy = backend.cupy
    comm = dist.init("nccl")
    assert comm.size == 1 and comm.local_rank == 0
    buf = cupy.arange(5, dtype=cupy.float32)
    comm._allreduce_sum_(buf)          # one NCCL allreduce over a world of one: the identity
    np.testing.assert_array_equal(cupy.asnumpy(buf), np.arange(5))
    model = nn.Linear(3, 2).to("gpu")
    before = model.weight.numpy().copy()
    comm.bcast_parameters(model)        # NCCL broadcast of the packed float32 parameters
    np.testing.assert_array_equal(model.weight.numpy(), before)
    host = np.ones(2, np.float32)
    comm._allreduce_sum_(host)          # a NumPy buffer goes through MPI
    np.testing.assert_array_equal(host, [1.0, 1.0])
    assert comm.allreduce(2.5) == 2.5
    assert comm.allreduce(minidl.tensor([2.0]).to("gpu")).numpy().tolist() == [2.0]


@pytest.mark.skipif(_gpus() < 2, reason="needs CuPy and two CUDA GPUs")
def test_nccl_two_ranks_average_gradients():
    from tests.distributed.test_mpi import results, run_mpi
    rc, out, err, _ = run_mpi("nccl")
    assert rc == 0, err
    for r in results(out):
        assert r["grad"] == "1.5"
