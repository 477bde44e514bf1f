"""Churn scoring cadence (issue 16): events that move no strong churn signal re-score at most every
``rescore_steady_ms`` of event time, material events and due snapshots always score, what the model
learns does not depend on the cadence, and the drivers shown are recomputed only when the risk moved."""

from __future__ import annotations

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from models.registry import ModelSet
from operators.profile360.profile import CustomerState
from operators.profile360.update import apply_event
from operators.scoring import online
from tests.helpers import T0, event

DAY = 86_400_000
MINUTE = 60_000
CFG = online.ScoringConfig(churn_horizon_ms=30 * DAY, snapshot_every_ms=DAY)
EVERY_EVENT = online.ScoringConfig(churn_horizon_ms=30 * DAY, snapshot_every_ms=DAY, rescore_steady_ms=0)


def run(docs, cfg=CFG, complaints=(), models=None, state=None):
    """Apply and score ``docs`` for one customer; ``complaints``: indexes the engine would call complaints."""
    models = models or ModelSet.from_config()
    state = state or CustomerState("customer_id:c1")
    report = online.ScoringReport()
    for i, doc in enumerate(docs):
        e = decode(serde.dumps(doc), Origin("in", 0, i), now_ms=T0 + 400 * DAY)
        apply_event(state, e)
        online.score_churn(models, state, e, cfg, report, complaint=i in complaints)
    return models, state, report


def chats(n, every_ms, start=T0):
    return [event("chat", t=start + i * every_ms, event_id=f"m{i}", text=f"hello {i}") for i in range(n)]


def test_a_burst_of_plain_contacts_is_scored_once_per_cadence():
    _, state, report = run(chats(10, MINUTE))  # ten messages in ten minutes
    assert report.scored["churn"] == 1 and state.predictions["churn"]["t"] == T0
    _, _, spread = run(chats(3, 2 * 3_600_000))  # two hours apart: each is news
    assert spread.scored["churn"] == 3


def test_complaints_and_material_events_always_rescore():
    docs = [*chats(3, MINUTE), event("order", t=T0 + 4 * MINUTE, order_id="o1", amount=20.0)]
    _, state, report = run(docs, complaints={1})
    assert report.scored["churn"] == 3  # the first chat, the complaint, the order
    assert state.predictions["churn"]["t"] == T0 + 4 * MINUTE


def test_unknown_complaint_status_scores_as_before():
    models, state = ModelSet.from_config(), CustomerState("customer_id:c1")
    report = online.ScoringReport()
    for i, doc in enumerate(chats(3, MINUTE)):
        e = decode(serde.dumps(doc), Origin("in", 0, i), now_ms=T0 + 400 * DAY)
        apply_event(state, e)
        online.score_churn(models, state, e, CFG, report)  # no complaint given: every event scores
    assert report.scored["churn"] == 3


def test_a_due_snapshot_is_taken_inside_the_cadence():
    cfg = online.ScoringConfig(churn_horizon_ms=30 * DAY, snapshot_every_ms=30 * MINUTE)
    _, state, report = run(chats(3, 20 * MINUTE), cfg)  # 0, 20, 40 minutes: the third is a snapshot's due
    assert report.scored["churn"] == 2 and report.snapshots == 2
    assert [s["t"] for s in state.predictions["churn_pending"]] == [T0, T0 + 40 * MINUTE]


def test_what_the_model_learns_does_not_depend_on_the_cadence():
    docs = []
    for day in range(70):
        docs += chats(4, 10 * MINUTE, T0 + day * DAY)
        if day % 9 == 3:
            docs.append(event("order", t=T0 + day * DAY + 50 * MINUTE, order_id=f"o{day}", amount=10.0))
    docs.append(event("cancellation", t=T0 + 70 * DAY))
    cadenced, _, r1 = run(docs)
    everything, _, r2 = run(docs, EVERY_EVENT)
    assert r1.scored["churn"] < r2.scored["churn"]
    assert r1.labels == r2.labels and r1.snapshots == r2.snapshots
    m1, m2 = cadenced.model("churn"), everything.model("churn")
    assert m1.weights == m2.weights and m1.averaged == m2.averaged and m1.validation.labels == m2.validation.labels


def test_drivers_are_recomputed_only_when_the_risk_moved():
    models, state, _ = run(chats(1, MINUTE))
    at = T0 + 2 * DAY
    online._show_churn(models, state, state.customer_key, "e", at, online.ScoringReport())
    now, stale = state.predictions["churn"], [["stale", 9.0]]
    cases = [({"p": now["p"]}, False), ({"p": round((now["p"] + 0.3) % 1.0, 4)}, True), ({"version": "old"}, True)]
    for change, recomputed in cases:
        state.predictions["churn"] = {**now, **change, "top": stale}
        online._show_churn(models, state, state.customer_key, "e", at, online.ScoringReport())
        assert state.predictions["churn"]["p"] == now["p"]
        assert state.predictions["churn"]["top"] == (now["top"] if recomputed else stale)
