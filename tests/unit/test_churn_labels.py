"""Churn labels cover every customer: every snapshot is learned once, silent customers too, and
activity that predicts retention is learned with the right sign."""

from __future__ import annotations

import itertools
import pickle

from livesignals import serde
from livesignals.settings import Settings
from operators.engine import Engine
from operators.scoring.behaviour import MAX_BEHAVIOURS, features
from operators.scoring.learner import MemoryModelLog
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

DAY = 86_400_000


class Discard:
    def publish(self, records) -> None:
        pass


def states(e: Engine) -> dict:
    store = e.store
    assert isinstance(store, InMemoryStore)
    return store.states


def entries(e: Engine) -> list:
    log = e.store.models_log
    assert isinstance(log, MemoryModelLog)
    return log.entries


def engine(**changes) -> Engine:
    settings = Settings(metrics_port=0).replace(rules_path="none", **changes)
    return Engine(settings, InMemoryStore(), Discard(), clock=lambda: 4e12)


def run(engine: Engine, docs: list[dict], batch: int = 500) -> dict[str, int]:
    """Process in batches; totals of snapshots taken and churn labels learned."""
    totals = {"snapshots": 0, "positive": 0, "negative": 0}
    messages = raw(docs)
    for i in range(0, len(messages), batch):
        report = engine.process(messages[i : i + batch])
        totals["snapshots"] += report.scoring.snapshots
        totals["positive"] += report.scoring.labels[("churn", "positive")]
        totals["negative"] += report.scoring.labels[("churn", "negative")]
    return totals


def retention_stream(customers: int = 120, days: int = 100) -> list[dict]:
    """Steady customers post and like every day and stay; fading ones slow down for three weeks, then cancel."""
    docs = []
    for day in range(days):
        for i in range(customers):
            cid, t = f"c{i}", T0 + day * DAY + i * 1000
            fading = i % 2 == 1
            cancel_day = 40 + (i * 7) % 55 if fading else None
            if cancel_day is not None and day > cancel_day:
                continue
            if cancel_day is not None and day == cancel_day:
                docs.append(event("cancellation", cid, t))
            elif cancel_day is not None and day > cancel_day - 21:
                if day % 5 == 0:
                    docs.append(event("app_event", cid, t, action="like"))
            else:
                docs.append(event("app_event", cid, t, action="post"))
                docs.append(event("app_event", cid, t + 500, action="like"))
    return sorted(docs, key=lambda d: d["event_time"])


def test_activity_that_predicts_retention_is_learned_with_the_right_sign():
    e = engine(churn_horizon_days=30)
    totals = run(e, retention_stream(customers=80, days=90))
    assert totals["positive"] > 20 and totals["negative"] > 200
    model = e.learner.models.model("churn")
    weights = model.averaged
    assert weights["events_30d"] < 0 and weights["post_7d"] < 0, weights
    active, gone_quiet = features_of(e, "c0", 0), features_of(e, "c0", 20 * DAY)
    assert model.predict_proba_one(active) < 0.5 < model.predict_proba_one(gone_quiet)
    top = {name for name, _ in model.explain_one(gone_quiet)}
    assert top & {"events_30d", "post_7d", "post_30d", "like_7d", "active_days_30d", "days_since_active"}, top


def features_of(e: Engine, cid: str, later_ms: int) -> dict[str, float]:
    """What the model sees of a customer at their last event, or ``later_ms`` after it."""
    from operators.scoring.online import churn_inputs

    state = states(e)[f"customer_id:{cid}"]
    return churn_inputs(state, state.predictions["churn_activity"]["last"] + later_ms)


def test_every_snapshot_is_learned_exactly_once():
    e = engine(churn_horizon_days=30)
    totals = run(e, retention_stream(customers=40, days=90))
    pending = sum(len(s.predictions.get("churn_pending", [])) for s in states(e).values())
    assert totals["snapshots"] == totals["positive"] + totals["negative"] + pending
    assert e.learner.models.model("churn").validation.labels == totals["positive"] + totals["negative"]


def test_a_customer_who_goes_silent_still_yields_a_negative_once_the_horizon_passes():
    e = engine(churn_horizon_days=30)
    docs = [event("call", "quiet", T0)]
    # its silence is snapshotted for a horizon after its last event (operators/scoring/silence.py):
    # the last of those falls due 60 days after it
    docs += [event("app_event", "busy", T0 + d * DAY, action="post") for d in range(1, 70)]
    run(e, docs, batch=5)
    quiet = states(e)["customer_id:quiet"]
    assert quiet.predictions["churn_pending"] == []  # learned by the sweep: no event of its own since
    lessons = [serde.loads(raw) for _, raw in entries(e)]
    churn = [lesson for lesson in lessons if lesson[3] == "churn"]
    assert any(lesson[2] >= 1_000_000 and lesson[4][1] is False for lesson in churn)  # a sweep lesson, negative


def test_snapshots_per_customer_are_bounded_by_the_cadence():
    e = engine(churn_horizon_days=30, churn_snapshots_per_horizon=6)
    docs = [event("call", "c1", T0 + h * 3_600_000) for h in range(0, 24 * 45, 7)]
    run(e, docs, batch=50)
    pending = states(e)["customer_id:c1"].predictions["churn_pending"]
    assert 6 <= len(pending) <= 7  # 30 days / 5-day cadence + 1: the README's bound


def test_behaviour_features_name_the_actions_and_are_bounded():
    e = engine()
    docs = [event("app_event", "c1", T0 + i * 60_000, action=f"act{i}") for i in range(30)]
    run(e, docs)
    state = states(e)["customer_id:c1"]
    f = features(state, T0 + 3_600_000)
    behaviours = [name for name in f if name.startswith("act") and name.endswith("_7d")]
    assert len(behaviours) == MAX_BEHAVIOURS and "act29_7d" in f  # 12 at most; a newcomer takes the least seen slot
    assert pickle.loads(pickle.dumps(state)) == state


def test_tenure_comes_from_customer_since_when_given():
    e = engine()
    run(e, [event("profile_update", "c1", T0, fields={"customer_since": "2025-01-01"}),
            event("app_event", "c1", T0 + DAY, action="post")])  # fmt: skip
    f = features(states(e)["customer_id:c1"], T0 + DAY)
    assert 365 <= f["tenure_days"] <= 367


def test_the_sweep_rescores_a_silent_customer_daily_for_one_horizon_only():
    """A customer who goes quiet: the shown risk follows the silence (rescored by the sweep each day
    that passes, not once per 5-day snapshot cadence: a risk read at a month end was up to 5 days
    stale), and after a horizon of silence the sweep stops coming (bounded cost)."""
    e = engine(churn_horizon_days=30, churn_snapshots_per_horizon=6)
    docs = [event("app_event", "quiet", T0 + d * DAY, action="post") for d in range(10)]
    docs += [event("app_event", "busy", T0 + d * DAY + 1000, action="post") for d in range(80)]
    shown_at = []
    for i, doc in enumerate(sorted(docs, key=lambda d: d["event_time"])):
        report = e.process(raw([doc], start=i))
        shown_at += [s[3] for s in report.scoring.scores if s[1] == "customer_id:quiet" and s[2] == "sweep"]
    quiet = states(e)["customer_id:quiet"]
    last = T0 + 9 * DAY
    assert shown_at and all(DAY <= b - a < 2 * DAY for a, b in itertools.pairwise(shown_at)), shown_at
    assert last + DAY // 2 <= min(shown_at) < last + 2 * DAY and max(shown_at) <= last + 31 * DAY, shown_at
    assert len(shown_at) >= 28  # every day of the horizon's silence
    assert quiet.predictions["churn"]["t"] == max(shown_at)  # what the profile shows is the sweep's score
    assert quiet.predictions["churn_pending"] == [] and quiet.predictions["churn_visit"] is None


def test_a_cancelled_customer_is_never_rescored():
    e = engine(churn_horizon_days=30)
    docs = [event("app_event", "gone", T0 + d * DAY, action="post") for d in range(3)]
    docs += [event("cancellation", "gone", T0 + 3 * DAY)]
    docs += [event("app_event", "busy", T0 + d * DAY + 1000, action="post") for d in range(50)]
    sweep_scores = []
    docs = sorted(docs, key=lambda d: d["event_time"])
    for i in range(0, len(docs), 3):
        report = e.process(raw(docs[i : i + 3], start=i))
        sweep_scores += [s for s in report.scoring.scores if s[1] == "customer_id:gone" and s[2] == "sweep"]
    assert sweep_scores == [] and states(e)["customer_id:gone"].predictions["churn"]["cancelled"]
