"""A worker's round of several partitions processed as one engine batch (flows.one_batch), on a real Redis:
the same state and outputs as partition by partition; a partition fenced mid-round costs the others at most a
second publish of their outputs (same ids), counts nothing twice, and publishes nothing for the fenced one
after the engine saw it fenced; a probe or a rewind mark in a round sends it partition by partition."""

from __future__ import annotations

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from flows.engine_sink import EngineSink, default_engine
from flows.rewind import rewind_mark
from flows.state_probe import probe_message
from livesignals import metrics, serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from state.connection import connect
from state.keys import Keys
from state.ownership import Ownership, claim
from tests.flows.test_live_flow import MemoryPublisher, state_of
from tests.helpers import T0, event

PARTITIONS = 4
CUSTOMERS = 12  # customer i on partition i % 4
PER_ROUND = 5  # messages of each partition in a round


def _customer_docs(i: int) -> list[dict]:
    c, t = f"c{i}", T0 + i * 1000
    docs = [
        event("order", c, t, order_id=f"o{i}", amount=20.0 + i),
        event("call", c, t + 60_000),
        event("chat", c, t + 120_000),
        event("email", c, t + 180_000),
        event("delivery", c, t + 240_000, order_id=f"o{i}", status="delayed"),
        event("web_event", c, t + 300_000, action="page_view", session_id=f"s{i}"),
        event("chat", c, t - 3 * 86_400_000, event_id=f"late-{i}"),  # late: applied, raises nothing
        event("survey", c, t + 360_000, kind="csat", score=1, rates_event_id=f"e-{c}-{t + 120_000}-chat"),
    ]
    return docs


def _per_partition() -> int:
    return CUSTOMERS // PARTITIONS * len(_customer_docs(0))


def _messages(topic: str) -> list[RawMessage]:
    """Every partition's messages in order, interleaved in rounds of PER_ROUND messages of each partition."""
    per_partition: dict[int, list[RawMessage]] = {p: [] for p in range(PARTITIONS)}
    for i in range(CUSTOMERS):
        p = i % PARTITIONS
        for doc in _customer_docs(i):
            batch = per_partition[p]
            batch.append(RawMessage(serde.dumps(doc), f"c{i}".encode(), Origin(topic, p, len(batch), T0)))
    out: list[RawMessage] = []
    for start in range(0, max(len(b) for b in per_partition.values()), PER_ROUND):
        for p in range(PARTITIONS):
            out += per_partition[p][start : start + PER_ROUND]
    return out


def _run(settings, messages, publisher, ownership=None, engine_hook=None) -> None:
    def factory(s):
        engine = default_engine(s, publisher, ownership=ownership)
        if engine_hook is not None:
            engine_hook(engine)
        return engine

    flow = Dataflow("rounds")
    stream = op.input("in", flow, TestingSource(messages, batch_size=PER_ROUND * PARTITIONS))
    op.output("engine", stream, EngineSink(settings, factory, ownership))
    run_main(flow)


class CountingPublisher(MemoryPublisher):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def publish(self, records):
        self.calls += 1
        super().publish(records)


def _rounds(path: str) -> float:
    return metrics.ENGINE_ROUNDS.labels(path)._value.get()


def _outputs(settings, records) -> list[tuple]:
    topics = (settings.flags_topic, settings.triggers_topic, settings.decisions_topic, settings.dead_letter_topic)
    return sorted((topics.index(r.topic), r.key, r.value) for r in records if r.topic in topics)


def _owned(settings, partitions=range(PARTITIONS)) -> Ownership:
    client, keys = connect(settings), Keys(settings.key_prefix)
    ownership = Ownership(lambda p: claim(client, keys, p, settings.input_topics))
    for p in partitions:
        ownership.claim(p)
    return ownership


@pytest.fixture
def models_off(settings):
    """Models off; the process's gauges that /readyz reads put back afterwards (tests/unit/test_readiness)."""
    kept = [(m._value, m._value.get()) for m in (metrics.FENCED, metrics.PARTITIONS_OWNED, metrics.READY)]
    yield settings.replace(models_enabled=False)
    for value, was in kept:
        value.set(was)


def test_rounds_mixing_partitions_give_the_same_state_and_outputs_as_per_partition_batches(models_off):
    split = models_off.replace(key_prefix=models_off.key_prefix + "s", one_batch_per_round=False)  # same topics
    one, other = CountingPublisher(), CountingPublisher()
    combined_before = _rounds("combined")
    _run(models_off, _messages(models_off.input_topics[0]), one, _owned(models_off))
    combined = _rounds("combined") - combined_before
    _run(split, _messages(split.input_topics[0]), other, _owned(split))
    rounds = -(-_per_partition() // PER_ROUND)
    assert combined == rounds
    assert (one.calls, other.calls) == (rounds, rounds * PARTITIONS)  # one publish a round, not one a partition
    for i in range(CUSTOMERS):
        a, b = state_of(models_off, f"c{i}"), state_of(split, f"c{i}")
        assert a.events == b.events == len(_customer_docs(i))
        assert (a.history, a.value, a.applied, a.predictions) == (b.history, b.value, b.applied, b.predictions)
    assert _outputs(models_off, one.records) == _outputs(models_off, other.records)
    assert any(r.topic == models_off.flags_topic for r in one.records)
    for p in range(PARTITIONS):
        meta = connect(models_off).hgetall(Keys(models_off.key_prefix).partition_meta(p))
        assert int(meta[f"offset:{models_off.input_topics[0]}".encode()]) == _per_partition()


def _applied(settings, partition: int) -> tuple[int, int]:
    """The partition's resume offset in Redis, and the events its customers' profiles count."""
    meta = connect(settings).hgetall(Keys(settings.key_prefix).partition_meta(partition))
    events = sum(state_of(settings, f"c{i}").events for i in range(partition, CUSTOMERS, PARTITIONS))
    return int(meta.get(f"offset:{settings.input_topics[0]}".encode(), 0)), events


def _customers_of(partition: int) -> set[bytes]:
    return {f"customer_id:c{i}".encode() for i in range(CUSTOMERS) if i % PARTITIONS == partition}


def test_a_partition_fenced_between_the_check_and_the_commit_publishes_nothing_after_and_the_others_complete(
    models_off,
):
    """The fence lands after round 3's outputs were confirmed, before its commit: the combined commit fails,
    the round goes partition by partition; partition 2's check fails first (released, nothing more from it),
    the others publish round 3's outputs again (same ids) and commit once."""
    ownership = _owned(models_off)
    other = _owned(models_off, [])  # the second engine
    seen: list[int] = []

    class FencingPublisher(CountingPublisher):
        def publish(self, records):
            super().publish(records)
            seen.append(len(self.records))
            if self.calls == 3:
                other.claim(2)  # after Kafka confirmed the combined round's outputs

    pub = FencingPublisher()
    fallbacks = _rounds("fallback")
    _run(models_off, _messages(models_off.input_topics[0]), pub, ownership)
    assert _rounds("fallback") - fallbacks == 1
    assert ownership.owned() == [0, 1, 3]
    before, after = pub.records[: seen[2]], pub.records[seen[2] :]
    assert [r for r in before if r.key in _customers_of(2)]  # it had outputs before
    assert after and not [r for r in after if r.key in _customers_of(2)]  # nothing for partition 2 after the fence
    assert _applied(models_off, 2) == (2 * PER_ROUND, 2 * PER_ROUND)  # stopped at the fence: rounds 1-2 only
    for p in (0, 1, 3):
        assert _applied(models_off, p) == (_per_partition(), _per_partition())  # complete, each event once
    ids = [(r.key, r.value) for r in pub.records if r.topic == models_off.flags_topic]
    assert len(set(ids)) < len(ids)  # round 3's flags of the other partitions published again: at least once


def test_a_partition_fenced_between_rounds_is_seen_by_the_rounds_check_before_any_output(models_off):
    ownership = _owned(models_off)
    other = _owned(models_off, [])
    commits: list[int] = []
    pub = CountingPublisher()

    def hook(engine):
        commit = engine.store.commit

        def fenced_after_round_two(*args, **kwargs):
            commit(*args, **kwargs)
            commits.append(len(pub.records))
            if len(commits) == 2:
                other.claim(2)

        engine.store.commit = fenced_after_round_two

    _run(models_off, _messages(models_off.input_topics[0]), pub, ownership, hook)
    assert ownership.owned() == [0, 1, 3]
    before, after = pub.records[: commits[1]], pub.records[commits[1] :]
    assert [r for r in before if r.key in _customers_of(2)]
    assert after and not [r for r in after if r.key in _customers_of(2)]
    flags = [(r.key, r.value) for r in pub.records if r.topic == models_off.flags_topic]
    assert len(set(flags)) == len(flags)  # found by the check: nothing was published twice
    assert _applied(models_off, 2) == (2 * PER_ROUND, 2 * PER_ROUND)
    for p in (0, 1, 3):
        assert _applied(models_off, p) == (_per_partition(), _per_partition())


@pytest.mark.parametrize("mark", ["probe", "rewind"])
def test_a_probe_or_a_rewind_mark_in_a_round_sends_it_partition_by_partition(models_off, mark):
    messages = _messages(models_off.input_topics[0])
    marker = probe_message(1) if mark == "probe" else rewind_mark(1)
    messages.insert(PER_ROUND * PARTITIONS + 3, marker)  # in the second round
    split = _rounds("split")
    pub = CountingPublisher()
    _run(models_off, messages, pub)
    assert _rounds("split") - split >= 1
    assert pub.calls > -(-_per_partition() // PER_ROUND)  # that round: a batch per partition
    for i in range(CUSTOMERS):
        assert state_of(models_off, f"c{i}").events == len(_customer_docs(i))
