"""Event time where the customer's story is meant, wall time where sending is meant.

Rules read windows at the customer's present (newest event time); events later
than the grace apply but raise nothing; the contact policy and staleness are
judged at send time by the wall clock; responses are matched by when they happened.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from livesignals import serde
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
NOON = T0 + 12 * HOUR


class Clock:
    """The engine's wall clock, moved by the test."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


class Capture:
    def __init__(self) -> None:
        self.records: list = []

    def publish(self, records) -> None:
        self.records.extend(records)

    def docs(self, topic):
        return [serde.loads(r.value) for r in self.records if r.topic == topic]


class Store(InMemoryStore):
    """Counts the timeline entries written, as the Redis store would write them."""

    timeline_entries = 0

    def commit(self, states, flags, offsets, partitions=None, notify=True):
        states = list(states)
        self.timeline_entries += sum(len(s.new_timeline) for s in states)
        super().commit(states, flags, offsets, partitions, notify)


class Run:
    """One engine on an in-memory store; each event in its own batch, at the next offset of partition 0."""

    def __init__(self, wall_ms: int = NOON, **settings) -> None:
        # The wall clock stands still at ``wall_ms`` while these stories run hours past it: allow
        # a day of skew (what the engine accepts from producers is tested in test_future_events.py).
        settings.setdefault("max_future_skew_s", DAY // 1000)
        self.clock = Clock(wall_ms)
        self.out = Capture()
        self.store = Store()
        self.engine = Engine(Settings(metrics_port=0, **settings), self.store, self.out, clock=self.clock)
        self.offset = 0
        self.late = 0

    def feed(self, *docs) -> Run:
        for m in raw(list(docs), start=self.offset):
            report = self.engine.process([m])
            assert report.applied == 1, report.dead_letters
            self.late += report.late
        self.offset += len(docs)
        return self

    def flags(self, name=None):
        docs = self.out.docs(self.engine.settings.flags_topic)
        return [(d["flag"], d["state"]) for d in docs if name is None or d["flag"] == name]

    def decisions(self):
        return [d for d in self.out.docs(self.engine.settings.decisions_topic) if d["kind"] == "decision"]

    def outcomes(self):
        return [d for d in self.out.docs(self.engine.settings.decisions_topic) if d["kind"] == "outcome"]

    def triggers(self):
        return self.out.docs(self.engine.settings.triggers_topic)

    def state(self, customer="c1"):
        return self.store.states[f"customer_id:{customer}"]


def stuck_customer(run: Run) -> Run:
    """A valuable customer hitting two errors within a minute: ``valuable_customer_stuck`` is raised."""
    run.feed(
        event("order", t=NOON, order_id="o1", amount=800.0),
        event("web_event", t=NOON + 2 * HOUR, action="error", event_id="err1"),
        event("web_event", t=NOON + 2 * HOUR + MIN, action="error", event_id="err2"),
    )
    assert run.flags("valuable_customer_stuck") == [("valuable_customer_stuck", "raised")]
    return run


def test_a_late_page_view_within_the_grace_reads_the_windows_at_the_customers_present():
    run = stuck_customer(Run())
    run.feed(event("web_event", t=NOON + 2 * HOUR + MIN - 50 * MIN, action="page_view", event_id="late"))
    # At its own time the last hour held no error (the old reading cleared the flag); at the present, two.
    assert run.flags("valuable_customer_stuck") == [("valuable_customer_stuck", "raised")]
    assert run.late == 0, "within the grace: evaluated, not counted late"
    run.feed(event("web_event", t=NOON + 4 * HOUR, action="page_view"))
    assert run.flags("valuable_customer_stuck")[-1] == ("valuable_customer_stuck", "cleared"), "the present moved on"


def test_a_page_view_three_hours_late_updates_the_profile_but_raises_and_clears_nothing():
    late_metric = REGISTRY.get_sample_value("livesignals_late_events_total") or 0.0
    run = stuck_customer(Run())
    state, kpi = run.state(), run.store.partitions[("in", 0)].kpi
    before = (state.events, state.windows.query("events", "24h", NOON + 2 * HOUR + MIN), run.store.timeline_entries)
    calls = kpi.query("all|contacts", "24h", NOON + 2 * HOUR)
    run.feed(event("web_event", t=NOON - HOUR, action="page_view", event_id="late"))
    run.feed(event("call", t=NOON - HOUR, event_id="late-call", direction="inbound"))
    assert run.flags("valuable_customer_stuck") == [("valuable_customer_stuck", "raised")], "not cleared"
    after = (state.events, state.windows.query("events", "24h", NOON + 2 * HOUR + MIN), run.store.timeline_entries)
    assert after == (before[0] + 2, before[1] + 2, before[2] + 2), "windows, totals and timeline still count them"
    assert kpi.query("all|contacts", "24h", NOON + 2 * HOUR) == calls + 1, "and the contact-centre KPIs"
    assert run.flags() == [("valuable_customer_stuck", "raised")], "the late call raised nothing either"
    assert run.late == 2 and REGISTRY.get_sample_value("livesignals_late_events_total") == late_metric + 2


def test_context_carried_to_a_late_contact_is_measured_from_the_contacts_own_time():
    run = Run()
    run.feed(
        event("social", t=NOON, topic="payment", outcome="unresolved"),
        event("web_event", t=NOON + 40 * MIN, action="page_view"),
        event("call", t=NOON + 12 * MIN, direction="inbound"),  # 28 min late, within the grace
    )
    (flag,) = [d for d in run.out.docs(run.engine.settings.flags_topic) if d["flag"] == "context_carried"]
    assert flag["reason"].startswith("social 12 min ago about payment"), flag["reason"]


def test_a_late_failed_delivery_raises_no_flag_and_sends_no_trigger():
    run = Run(policy_clock="stream")
    run.feed(event("web_event", t=NOON + 5 * HOUR, action="page_view"))
    run.feed(event("delivery", t=NOON, order_id="o1", status="failed"))  # 5 h late
    assert run.flags() == [] and run.triggers() == [] and run.decisions() == []
    assert run.state().activity["deliveries"]["o1"]["status"] == "failed", "applied all the same"
    on_time = Run(policy_clock="stream").feed(event("delivery", t=NOON, order_id="o1", status="failed"))
    assert ("delivery_problem", "raised") in on_time.flags() and on_time.triggers(), "on time, it would have"


def test_quiet_hours_are_the_customers_at_send_time_not_at_the_events_time():
    # Decided at noon, sent at 03:00 the next night (a backlog): held back.
    night = Run(wall_ms=T0 + DAY + 3 * HOUR, trigger_max_age_s=3 * 86_400)
    night.feed(event("delivery", t=NOON, order_id="o1", status="failed"))
    assert night.triggers() == [] and night.decisions()[0]["outcome"] == "quiet_hours"
    # Happened at 03:00, sent at noon: goes out.
    day = Run(wall_ms=NOON, trigger_max_age_s=3 * 86_400)
    day.feed(event("delivery", t=T0 + 3 * HOUR, order_id="o1", status="failed"))
    assert [t["action"] for t in day.triggers()] == ["proactive_notification"]


def test_caps_count_the_sends_of_the_last_day_by_the_wall_clock():
    def second_send(lag_ms: int) -> str:
        run = Run(wall_ms=NOON, contact_daily_cap=1)
        run.feed(event("chat", t=NOON, topic="technical", direction="inbound"))  # sent on time
        assert [d["outcome"] for d in run.decisions()] == ["sent"]
        run.clock.ms = NOON + 23 * HOUR + lag_ms
        run.feed(event("delivery", t=NOON + 23 * HOUR, order_id="o1", status="failed"))
        return run.decisions()[-1]["outcome"]

    assert second_send(0) == "daily_cap", "23 h after the first send"
    assert second_send(2 * HOUR) == "sent", "decided 23 h after, sent 25 h after the first: a new day"


def test_a_trigger_decided_39_hours_ago_or_past_its_expiry_is_not_sent():
    before = REGISTRY.get_sample_value(
        "livesignals_triggers_suppressed_total", {"action": "proactive_notification", "reason": "stale"}
    )
    lagging = Run(wall_ms=NOON + 39 * HOUR)  # default cut-off: 6 h
    lagging.feed(event("delivery", t=NOON, order_id="o1", status="failed"))
    assert lagging.triggers() == [] and lagging.decisions()[0]["outcome"] == "stale"
    after = REGISTRY.get_sample_value(
        "livesignals_triggers_suppressed_total", {"action": "proactive_notification", "reason": "stale"}
    )
    assert after == (before or 0.0) + 1
    expired = Run(wall_ms=NOON + 25 * HOUR, trigger_max_age_s=3 * 86_400)  # ttl 24 h
    expired.feed(event("delivery", t=NOON, order_id="o1", status="failed"))
    assert expired.triggers() == [] and expired.decisions()[0]["outcome"] == "stale"
    fresh = Run(wall_ms=NOON + 5 * HOUR)
    fresh.feed(event("delivery", t=NOON, order_id="o1", status="failed"))
    assert [t["action"] for t in fresh.triggers()] == ["proactive_notification"]


def notified() -> tuple[Run, dict]:
    """A proactive notification sent at NOON + 1 h, expiring 24 h later (policy clock: the stream)."""
    run = Run(wall_ms=NOON + 3 * DAY, policy_clock="stream")
    run.feed(
        event("order", t=NOON, order_id="o1", amount=80.0),
        event("delivery", t=NOON + HOUR, order_id="o1", status="failed"),
    )
    (trigger,) = run.triggers()
    assert trigger["expires_at"] == NOON + 25 * HOUR
    return run, trigger


def answer(trigger, t, response="accepted"):
    return event("offer_response", t=t, response=response, decision_id=trigger["trigger_id"], event_id=f"r{t}")


def offers_labels(run):
    return run.engine.learner.models.model("offers").labels["proactive_notification"]


def test_an_acceptance_before_expiry_arriving_after_a_later_event_is_an_acceptance():
    run, trigger = notified()
    run.feed(event("web_event", t=NOON + 25 * HOUR + 10 * MIN, action="page_view"))  # past expiry, within grace
    assert run.outcomes() == []
    run.feed(answer(trigger, NOON + 24 * HOUR))  # it happened before the expiry
    assert [(o["decision_id"], o["response"]) for o in run.outcomes()] == [(trigger["trigger_id"], "accepted")]
    assert offers_labels(run) == [1, 1]


def test_an_answer_after_the_expiry_finds_an_expired_offer_and_is_unmatched():
    run, trigger = notified()
    unmatched = REGISTRY.get_sample_value("livesignals_model_labels_total", {"model": "offers", "outcome": "unmatched"})
    run.feed(answer(trigger, NOON + 25 * HOUR + 30 * MIN))
    assert [o["response"] for o in run.outcomes()] == ["expired", "accepted"]
    assert offers_labels(run) == [0, 1], "learned once, as expired"
    labels = {"model": "offers", "outcome": "unmatched"}
    assert REGISTRY.get_sample_value("livesignals_model_labels_total", labels) == (unmatched or 0) + 1


def test_an_offer_expired_beyond_the_grace_is_learned_expired_and_a_later_answer_is_unmatched():
    run, trigger = notified()
    run.feed(event("web_event", t=NOON + 27 * HOUR, action="page_view"))  # expiry + more than the grace
    assert [o["response"] for o in run.outcomes()] == ["expired"]
    run.feed(answer(trigger, NOON + 24 * HOUR))
    assert [o["response"] for o in run.outcomes()] == ["expired", "accepted"]
    assert offers_labels(run) == [0, 1], "the late answer is not learned"


def test_an_offer_is_expired_only_once_the_present_passes_its_expiry_by_more_than_the_grace():
    """Outside review of #10, G6: at exactly expiry + grace the offer still waits (the engine treats an event exactly
    the grace old as on time, so an answer that happened at the expiry instant may still arrive); 1 ms later it
    is learned expired."""
    grace = Settings.load(env={}).late_event_grace_s * 1000
    run, trigger = notified()
    expiry = trigger["expires_at"]
    run.feed(event("web_event", t=expiry + grace, action="page_view", event_id="at-grace"))
    assert run.outcomes() == [], "exactly the grace past the expiry: not expired yet"
    run.feed(answer(trigger, expiry))  # happened at the expiry instant, arriving exactly the grace behind
    assert [(o["decision_id"], o["response"]) for o in run.outcomes()] == [(trigger["trigger_id"], "accepted")]

    run, trigger = notified()
    run.feed(event("web_event", t=trigger["expires_at"] + grace + 1, action="page_view", event_id="past-grace"))
    assert [o["response"] for o in run.outcomes()] == ["expired"]
