"""A worker's source partitions hand its sink one round per pass (flows.worker_round), where Bytewax alone hands
it one call per partition; and the batch bound splits batch_max_s among the partitions a worker reads."""

from __future__ import annotations

import threading

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import cluster_main, run_main

from flows.batch_bound import BOUND
from flows.worker_round import ROUND, WorkerRound

PASSES = 3


class _Part(StatefulSourcePartition):
    def __init__(self, partition: int, gather: bool) -> None:
        self.partition, self.gather, self.calls = partition, gather, 0
        if gather:
            ROUND.join(partition)

    def next_batch(self):
        self.calls += 1
        if self.calls > PASSES + 1:
            raise StopIteration
        fetched = [(self.partition, self.calls, i) for i in range(3)] if self.calls <= PASSES else []
        return ROUND.gather(self.partition, fetched) if self.gather else fetched

    def snapshot(self):
        return None

    def close(self):
        if self.gather:
            ROUND.leave(self.partition)


class _Source(FixedPartitionedSource):
    def __init__(self, gather: bool) -> None:
        self.gather = gather

    def list_parts(self):
        return [str(p) for p in range(4)]

    def build_part(self, step_id, for_part, resume_state):
        return _Part(int(for_part), self.gather)


def _calls(gather: bool, workers: int = 1) -> list[tuple[int, list]]:
    calls: list[tuple[int, list]] = []
    lock = threading.Lock()

    class Sink(StatelessSinkPartition):
        def write_batch(self, items):
            with lock:
                calls.append((threading.get_ident(), list(items)))

    class Out(DynamicSink):
        def build(self, step_id, worker_index, worker_count):
            return Sink()

    flow = Dataflow("round")
    op.output("out", op.input("in", flow, _Source(gather)), Out())
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return calls


@pytest.fixture(autouse=True)
def fresh_round():
    ROUND.reset()
    yield
    ROUND.reset()


def test_bytewax_alone_hands_the_sink_each_partitions_batch_in_a_call_of_its_own():
    """Why flows.worker_round exists: one call per partition and pass (bytewax 0.21)."""
    calls = _calls(gather=False)
    assert len(calls) == 4 * PASSES
    assert all(len({p for p, _, _ in items}) == 1 for _, items in calls)


def test_gathered_a_worker_hands_its_sink_one_round_per_pass_in_each_partitions_order():
    calls = _calls(gather=True)
    assert len(calls) == PASSES
    for n, (_, items) in enumerate(calls, start=1):
        assert sorted({p for p, _, _ in items}) == [0, 1, 2, 3]
        assert {c for _, c, _ in items} == {n}
        for p in range(4):
            assert [i for q, _, i in items if q == p] == [0, 1, 2]


def test_two_workers_each_hand_their_own_partitions_rounds():
    calls = _calls(gather=True, workers=2)
    by_thread: dict[int, set[int]] = {}
    for thread, items in calls:
        by_thread.setdefault(thread, set()).update(p for p, _, _ in items)
    assert len(by_thread) == 2 and sorted(p for ps in by_thread.values() for p in ps) == [0, 1, 2, 3]
    assert len(calls) == 2 * PASSES
    assert sum(len(items) for _, items in calls) == 4 * PASSES * 3


def test_a_partition_not_polled_in_a_pass_does_not_hold_the_round_back():
    r = WorkerRound()
    for p in range(3):
        r.join(p)
    assert r.gather(0, ["a"]) == [] and r.gather(1, ["b"]) == []
    assert r.gather(0, ["a2"]) == ["a", "b", "a2"]  # partition 2 skipped: handed out, 0's order kept
    r.leave(2)
    assert r.gather(0, []) == [] and r.gather(1, ["b2"]) == ["b2"]


def test_the_bound_gives_each_of_a_workers_partitions_its_share_of_batch_max_s():
    BOUND.reset()
    try:
        BOUND.observe(1000, 1.0)  # 1 ms an event
        for p in range(4):
            ROUND.join(p)
        assert BOUND.limit(5000, 1.0, ROUND.partitions()) == 250  # four partitions: the round within 1 s
        ROUND.leave(3)
        assert BOUND.limit(5000, 0.9, ROUND.partitions()) == 300
    finally:
        BOUND.reset()


def test_the_bound_follows_a_dearer_batch_at_once_and_a_cheaper_one_slowly():
    """Break-test C4: after a replay batch (95 us an event) the next limit was 2,629 and the following batches
    (400 us an event) stayed 2-4x past batch_max_s, the cost smoothed by 0.2 both ways."""
    BOUND.reset()
    try:
        BOUND.observe(1000, 0.4)  # 400 us an event
        BOUND.observe(1000, 0.095)  # a replay batch: cheap
        assert BOUND.per_event_s == pytest.approx(0.4e-3 - 0.2 * (0.4e-3 - 0.095e-3))  # down by 0.2 only
        assert BOUND.limit(100_000, 0.25) < 1.2 * 625
        BOUND.observe(1000, 0.4)
        assert BOUND.per_event_s == pytest.approx(0.4e-3)  # up at once: the next batch fits again (old: 0.351 ms)
        assert BOUND.limit(100_000, 0.25) == 625
        for _ in range(3):
            BOUND.observe(1000, 0.018)  # dead-lettered garbage, batch after batch
        assert BOUND.limit(100_000, 0.25) * 0.4e-3 < 0.25 * 2  # < 2x over if dear events come next (one batch)
    finally:
        BOUND.reset()


def test_a_partition_lagging_alone_gets_the_whole_rounds_budget_whatever_its_place_in_the_pass():
    """Break-test 18a, A2: divided by every partition the worker reads, idle ones too, a partition lagging alone
    (a hot key, a replay after a STATE LOSS) read a quarter of batch_max_s a round."""
    for busy in (0, 3):
        r = WorkerRound()
        for p in range(4):
            r.join(p)
        for _ in range(3):  # passes over the four partitions, in order
            for p in range(4):
                limit = r.budget(p, 1000, 250)
                r.gather(p, ["m"] * limit if p == busy else [])
        assert [r.budget(p, 1000, 250) for p in range(4)] == [1000 if p == busy else 250 for p in range(4)]
    backlog = WorkerRound()
    for p in range(4):
        backlog.join(p)
    for _ in range(3):
        sizes = []
        for p in range(4):
            sizes.append(backlog.budget(p, 1000, 250))
            backlog.gather(p, ["m"] * sizes[-1])
    assert sizes == [250] * 4  # under a backlog: a fair share each, the round within its budget


def _reader(partition: int, gather: bool, max_s: float = 1.0):
    from flows.kafka_source import _PartitionReader
    from state.ownership import Claim, Ownership

    ownership = Ownership(lambda p: Claim(p, "1", "s", {"in": None}))
    ownership.claim(partition)
    # no broker behind it: the consumer is never asked for anything here
    config = {"bootstrap.servers": "127.0.0.1:9", "group.id": "t", "enable.auto.commit": False}
    return _PartitionReader(config, ("in",), partition, ownership, 5000, batch_max_s=max_s, gather=gather)


def test_with_one_batch_per_round_off_each_partition_hands_out_its_own_batches_with_the_whole_bound(monkeypatch):
    """Break-test 18a, A2: off, the source still gathered rounds and divided the bound among the partitions."""
    BOUND.reset()
    BOUND.observe(1000, 1.0)  # 1 ms an event
    readers = [_reader(p, gather=False) for p in range(4)]
    try:
        for r in readers:
            monkeypatch.setattr(r, "_fetch", lambda r=r: [("m", r._partition)])
        assert [r._limit() for r in readers] == [1000] * 4  # the whole bound each, as before rounds
        assert [r.next_batch() for r in readers] == [[("m", p)] for p in range(4)]  # no gathering
        gathered = [_reader(p, gather=True) for p in range(4, 8)]
        for r in gathered:
            monkeypatch.setattr(r, "_fetch", lambda r=r: [("m", r._partition)])
        assert [r._limit() for r in gathered] == [1000] * 4  # nothing fetched yet by the others: the round's
        assert [r.next_batch() for r in gathered] == [[], [], [], [("m", p) for p in range(4, 8)]]
        assert [r._limit() for r in gathered] == [997] * 4  # each: what the others' 3 messages left
        for r in gathered:
            r.close()
    finally:
        for r in readers:
            r.close()
        BOUND.reset()
