"""A fake N-rank world in one process: each rank is a thread, collectives meet at a barrier.

It runs the real packing, bucketing and broadcast code of ``minidl.distributed`` (only the three transport
primitives are replaced), so those are tested without MPI. Sums are taken in rank order, as one
deterministic reduction, so every rank gets bit-identical results.
"""
import threading

from minidl.distributed.comm import DEFAULT_BUCKET_BYTES, _CommunicatorBase


class ThreadComm(_CommunicatorBase):
    def __init__(self, world, rank, bucket_bytes=DEFAULT_BUCKET_BYTES):
        super().__init__(bucket_bytes)
        self.world, self.rank, self.size, self.local_rank = world, rank, world.size, rank

    def _exchange(self, value):
        self.world.slots[self.rank] = value
        self.world.barrier.wait()
        everything = list(self.world.slots)
        self.world.barrier.wait()
        return everything

    def _allreduce_sum_(self, buf):
        parts = self._exchange(buf.copy())
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        buf[...] = total

    def _bcast_(self, buf, root):
        buf[...] = self._exchange(buf.copy())[root]

    def allgather_object(self, obj):
        return self._exchange(obj)

    def barrier(self):
        self.world.barrier.wait()

    def abort(self, code=1):
        self.world.barrier.abort()


class ThreadWorld:
    def __init__(self, size, timeout=20):
        self.size = size
        self.slots = [None] * size
        self.barrier = threading.Barrier(size, timeout=timeout)  # a broken test fails, never hangs


def run_ranks(fn, size=2, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """Call ``fn(comm)`` on ``size`` fake ranks at once; return their results in rank order (re-raising the
    first exception)."""
    world = ThreadWorld(size)
    results, errors = [None] * size, [None] * size

    def body(rank):
        try:
            results[rank] = fn(ThreadComm(world, rank, bucket_bytes))
        except BaseException as err:  # noqa: BLE001 (handed to the test thread)
            errors[rank] = err
            world.barrier.abort()

    threads = [threading.Thread(target=body, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for err in errors:
        if err is not None and not isinstance(err, threading.BrokenBarrierError):
            raise err
    for err in errors:
        if err is not None:
            raise err
    return results
