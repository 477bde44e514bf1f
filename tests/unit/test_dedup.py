"""Deduplication by ``event_id`` within the customer's last ``MAX_EVENT_IDS`` events, at 4 partitions.

A redelivered event (same id, another offset) has no effect at all: no
state, no timeline, no KPI, no learning, no output; it is counted in
``livesignals_events_duplicate_total``. Replays by offset are still
``replay_skipped``, as before.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from operators.profile360.profile import MAX_EVENT_IDS
from tests.faults import PARTITIONS, VICTIM_BEFORE, appended, partition_of, persisted, run, stream
from tests.helpers import T0, event


def duplicates_counted() -> float:
    return REGISTRY.get_sample_value("livesignals_events_duplicate_total") or 0.0


REDELIVERED = {**VICTIM_BEFORE[0], "event_time": VICTIM_BEFORE[0]["event_time"] + 1}
"""The victim's first chat again, same id, later (as a producer's retry would send it)."""


def test_the_same_event_id_at_another_offset_counts_once_and_leaves_no_trace():
    base = stream(None)
    with_duplicate = appended(base, [REDELIVERED, event("chat", "victim", T0 + 10**8, text="bye")])
    without = appended(base, [b"{junk", event("chat", "victim", T0 + 10**8, text="bye")], like=REDELIVERED)
    before = duplicates_counted()
    got, reference = persisted(*run(with_duplicate)), persisted(*run(without))
    assert duplicates_counted() == before + 1
    for part in reference:
        assert got[part] == reference[part], part


def test_a_duplicate_in_the_same_batch_in_a_later_batch_and_after_a_restart_counts_once():
    first = event("order", "c1", T0, event_id="same", order_id="o1", amount=10.0)
    again = {**first, "event_time": T0 + 5}
    docs: list[dict[str, Any] | bytes] = [
        first,
        again,
        *(event("chat", f"other{i}", T0 + i) for i in range(120)),
        again,
    ]
    messages = appended([], docs)
    # batches of 50: the first copy and the second in batch 0, the third in batch 2, after a restart
    store, _ = run(messages, restart_after=1)
    state = store.states["customer_id:c1"]
    assert (state.events, state.value["orders"], state.value["spend"]) == (1, 1, 10.0)
    assert len(store.timelines["customer_id:c1"]) == 1
    assert sum(p.kpi.query("all|contacts", "24h", T0 + 10**6) for p in store.partitions.values()) == 120


def test_replays_by_offset_are_still_replay_skipped_not_duplicates():
    messages = appended([], [event("chat", "c1", T0 + i) for i in range(10)])
    before = duplicates_counted()
    store, _ = run(messages + messages)
    assert store.states["customer_id:c1"].events == 10
    assert duplicates_counted() == before


def test_an_id_older_than_the_horizon_is_forgotten():
    first = event("chat", "c1", T0, event_id="old")
    filler = [event("chat", "c1", T0 + 1 + i) for i in range(MAX_EVENT_IDS)]
    store, _ = run(appended([], [first, *filler, {**first, "event_time": T0 + 10**6}]))
    assert store.states["customer_id:c1"].events == MAX_EVENT_IDS + 2
    assert len(store.states["customer_id:c1"].recent_ids) == MAX_EVENT_IDS


def test_the_same_event_id_for_two_customers_is_not_a_duplicate():
    store, _ = run(appended([], [event("chat", c, T0, event_id="shared") for c in ("a", "b", "c", "d", "e")]))
    assert all(store.states[f"customer_id:{c}"].events == 1 for c in "abcde")
    assert len({partition_of(event("chat", c)) for c in "abcde"}) > 1 and PARTITIONS == 4
