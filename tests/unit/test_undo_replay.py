"""An undo record that re-applies the batch's earlier events leaves no trace either.

:meth:`operators.profile360.profile.CustomerState.undo_record` encodes nothing
for a customer's later events in a batch: a failed event goes back to the
document of the customer's first record in the batch, and the events applied
since are applied again (:meth:`operators.engine.Engine._restore`). The streams
of ``tests/unit/test_atomic_apply.py`` run here in one batch, so the victim's
four earlier events are re-applied when its bad event fails, at every stage:
everything persisted must equal the run without the bad event, and nothing
they stage (outputs, lessons, aggregates, metrics) may be counted twice.
"""

from __future__ import annotations

from typing import Any

import pytest

from livesignals import metrics
from livesignals.errors import Reason
from operators.engine import Engine
from operators.profile360 import profile
from tests import faults
from tests.faults import BAD_EVENTS, STAGES, VICTIM_BEFORE, Outputs, RecordingStore, dead_letters, stream

BATCH = 1000
"""Larger than the stream: one batch, so the bad event is the victim's fifth in it."""


def run_one_batch(messages) -> tuple[RecordingStore, Outputs]:
    """The engine over ``messages`` in batches of :data:`BATCH` (one here), as ``faults.run`` does in 50s."""
    store, out = RecordingStore(), Outputs()
    engine = Engine(faults.SETTINGS, store, out, clock=faults.clock)
    for i in range(0, len(messages), BATCH):
        engine.process(messages[i : i + BATCH])
    return store, out


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The run without the bad event (an undecodable message in its place)."""
    return faults.persisted(*run_one_batch(stream(None)))


@pytest.fixture
def replays(monkeypatch) -> list[int]:
    """How many events each undo that was used re-applied."""
    seen: list[int] = []
    real = Engine._restore

    def counting(self: Engine, state: profile.CustomerState, undo: profile.Undo, partitions: Any) -> None:
        seen.append(undo.replayed)
        real(self, state, undo, partitions)

    monkeypatch.setattr(Engine, "_restore", counting)
    return seen


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_fault_after_earlier_events_of_the_batch_leaves_no_trace(stage, reference, replays):
    kind, _ = STAGES[stage]
    with faults.fault(stage):
        store, out = run_one_batch(stream(BAD_EVENTS[kind]))
    assert replays == [len(VICTIM_BEFORE)], "the victim's earlier events were re-applied"
    dead = dead_letters(out)
    assert len(dead) == 1 and dead[0]["ls.dlq.reason"] == Reason.PROCESSING_ERROR.value.encode(), dead
    got = faults.persisted(store, out)
    for part in reference:
        assert got[part] == reference[part], f"{part} differ after a fault {stage}"


def test_re_applied_events_are_not_counted_again():
    """Flags held back and rule errors are counted when an event is applied, not when it is re-applied."""
    from operators.rules import failures

    counted: list[str] = []

    def labels(*names: str) -> _NoMetric:
        counted.append("rule_error")
        return _NoMetric()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics.RULE_ERRORS, "labels", labels)
        with failures.uncounted():
            failures.rule_failed("flag", "r", "raise_when", ValueError("x"))
        assert counted == []
        failures.rule_failed("flag", "r", "raise_when", ValueError("x"))
        assert counted == ["rule_error"] and failures.counting()


class _NoMetric:
    def inc(self, n: float = 1) -> None:
        """Nothing."""


def test_a_record_of_a_later_event_encodes_nothing():
    """Within a batch, the first record's document serves every later one (until :data:`MAX_REPLAY`)."""
    state = profile.CustomerState.from_bytes("customer_id:c1", None)
    encoded = 0
    real = profile.CustomerState.to_bytes_fresh

    def counting(self: profile.CustomerState) -> bytes:
        nonlocal encoded
        encoded += 1
        return real(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile.CustomerState, "to_bytes_fresh", counting)
        state.to_bytes()
        encoded = 0
        for i in range(profile.MAX_REPLAY + 1):
            record = state.undo_record(batch=3)
            state.events += 1
            state.note_applied(f"e{i}")
        assert encoded == 1 and record.replayed == 0  # the 65th record: too many to re-apply, encoded afresh
        state.undo_record(batch=4)  # another batch: the models learned in between
        assert encoded == 2


def test_a_new_customer_of_the_in_memory_store_is_the_redis_stores_its_empty_document_known(monkeypatch):
    """As ``ProfileStore.load`` makes a customer Redis holds nothing for (``from_bytes(key, None)``): the
    undo record before its first event encodes nothing (in-process benchmarks and offline replays pay what
    the live engine pays)."""
    from operators.profile360.profile import CustomerState
    from state.memory import InMemoryStore

    encoded = []
    fresh = CustomerState.to_bytes_fresh

    def counted(self: CustomerState) -> bytes:
        encoded.append(1)
        return fresh(self)

    monkeypatch.setattr(CustomerState, "to_bytes_fresh", counted)
    state = InMemoryStore().load(["customer_id:new"])["customer_id:new"]
    record = state.undo_record(batch=1)
    assert encoded == [] and record.document == CustomerState("customer_id:new").to_bytes()
    assert state == CustomerState("customer_id:new")
