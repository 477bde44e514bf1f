"""The present at an event's input position (:mod:`operators.lateness`; issue 10, outside review G5)."""

from __future__ import annotations

from livesignals.contract import Event
from livesignals.errors import Origin
from operators import lateness
from operators.profile360.profile import CustomerState

HOUR = 3_600_000
T = 1_700_000_000_000


def ev(t: int, partition: int, published: int, topic: str = "in") -> Event:
    return Event("e", "web_event", "web", {"customer_id": "c1"}, t, {}, Origin(topic, partition, 0, published))


def seen(*events: Event) -> CustomerState:
    state = CustomerState("customer_id:c1")
    for e in events:
        lateness.note(state, e)
    return state


def test_an_event_is_judged_against_its_own_partition_whatever_the_kafka_timestamps():
    state = seen(ev(T + 3 * HOUR, 1, published=50))
    behind = ev(T, 1, published=10)  # an earlier timestamp (a producer's clock) changes nothing on one partition
    assert lateness.as_of(state, behind) == T + 3 * HOUR
    assert lateness.is_late(lateness.as_of(state, behind), behind, HOUR)


def test_another_partition_counts_only_with_what_it_published_strictly_before():
    state = seen(ev(T + 3 * HOUR, 1, published=50))
    assert lateness.as_of(state, ev(T, 2, published=49)) == T, "published before it: read ahead, not late"
    assert lateness.as_of(state, ev(T, 2, published=50)) == T, "the same millisecond counts as after"
    assert lateness.as_of(state, ev(T, 2, published=51)) == T + 3 * HOUR, "published after: late"
    assert lateness.as_of(state, ev(T, 2, published=51, topic="other")) == T + 3 * HOUR, "any input topic"


def test_without_kafka_timestamps_only_the_own_partition_counts():
    state = seen(ev(T + 3 * HOUR, 1, published=0))
    assert lateness.as_of(state, ev(T, 2, published=99)) == T
    state = seen(ev(T + 3 * HOUR, 1, published=50))
    assert lateness.as_of(state, ev(T, 2, published=0)) == T


def test_each_partition_keeps_its_newest_event_only_and_a_state_from_before_uses_last_seen():
    state = seen(ev(T + 2 * HOUR, 1, 10), ev(T, 1, 20), ev(T + HOUR, 2, 30))
    assert state.seen == {"in:1": [T + 2 * HOUR, 10], "in:2": [T + HOUR, 30]}
    assert CustomerState.from_bytes(state.customer_key, state.to_bytes()).seen == state.seen
    old = CustomerState("customer_id:c1")
    old.identity["last_seen"] = T + 3 * HOUR  # stored before the ``seen`` section existed
    assert lateness.as_of(old, ev(T, 2, 99)) == T + 3 * HOUR
    assert lateness.as_of(old, ev(T + 4 * HOUR, 2, 99)) == T + 4 * HOUR
