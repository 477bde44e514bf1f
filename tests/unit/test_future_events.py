"""An event dated ahead of the wall clock (beyond ``max_future_skew_s``) is dead-lettered and moves nothing.

The outside review sent an event 23 h ahead: it was accepted, became the
customer's present (every real event after it was *late* for a day: no flags,
no triggers) and advanced the partition's churn-sweep watermark. Now it is
dead-lettered as ``future_time`` and the customer's present, the partition's
watermark and the lateness of what follows are as if it had never been sent.
"""

from __future__ import annotations

from livesignals import serde
from livesignals.errors import Reason
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

MIN = 60_000
HOUR = 60 * MIN


class _Drop:
    def publish(self, records) -> None:
        """Drop the records."""


def _run(with_future: bool, ahead_ms: int = 23 * HOUR):
    store = InMemoryStore()
    wall = T0 + HOUR
    engine = Engine(Settings(metrics_port=0), store, _Drop(), clock=lambda: wall / 1000)
    docs = [event("chat", t=T0, text="hello", event_id="a")]
    if with_future:
        docs.append(event("web_event", t=wall + ahead_ms, action="page_view", event_id="future"))
    docs += [event("chat", t=T0 + 30 * MIN, text="where is my parcel", event_id="b")]
    report = engine.process(raw(docs))
    (part,) = engine._partitions.values()
    return report, store.states["customer_id:c1"], part


def test_an_event_a_day_ahead_is_dead_lettered_and_leaves_present_watermark_and_lateness_alone():
    clean, clean_state, clean_part = _run(with_future=False)
    report, state, part = _run(with_future=True)
    assert [(d.reason, d.origin.offset) for d in report.dead_letters] == [(Reason.FUTURE_TIME, 1)]
    assert report.late == clean.late == 0, "the real events after it are not late"
    assert _facts(state) == _facts(clean_state), "the customer's present did not move"
    assert part.watermark_ms == clean_part.watermark_ms == T0 + 30 * MIN, "nor did the sweep's watermark"


def _facts(state):
    """The stored profile but the offsets applied (the clean run read one message fewer)."""
    doc = serde.loads(state.to_bytes())
    del doc["applied"]
    return doc


def test_the_default_skew_is_five_minutes_of_clock_drift():
    assert Settings().max_future_skew_s == 300
    report, _, _ = _run(with_future=True, ahead_ms=4 * MIN)
    assert not report.dead_letters
    report, _, _ = _run(with_future=True, ahead_ms=6 * MIN)
    assert [d.reason for d in report.dead_letters] == [Reason.FUTURE_TIME]
