"""Delayed labels: late, out of order, twice, or for unknown interactions, as documented."""

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
CFG = online.ScoringConfig(churn_horizon_ms=30 * DAY, snapshot_every_ms=DAY)


def run(docs, models=None, state=None):
    models = models or ModelSet.from_config()
    state = state or CustomerState("customer_id:c1")
    report = online.ScoringReport()
    for i, doc in enumerate(docs):
        e = decode(serde.dumps(doc), Origin("in", 0, i), now_ms=T0 + 400 * DAY)
        online.learn_labels(models, state, e, report)
        text = online.text_of(e)
        if text:
            online.score_text(models, state, e, text, report)
        apply_event(state, e)
        online.score_churn(models, state, e, CFG, report)
    return models, state, report


def sentiment_labels(models):
    return models.model("sentiment").labels


def test_a_survey_teaches_the_text_it_rates_once():
    chat = event("chat", t=T0, event_id="x1", text="the box was crushed")
    survey = event("survey", t=T0 + DAY, kind="csat", score=1, rates_event_id="x1")
    models, _, report = run([chat, survey, {**survey, "event_id": "again", "event_time": T0 + 2 * DAY}])
    assert sentiment_labels(models) == 1
    assert report.labels[("sentiment", "learned")] == 1 and report.labels[("sentiment", "duplicate")] == 1


def test_an_agent_correction_is_learned_besides_the_survey():
    chat = event("chat", t=T0, event_id="x1", text="the box was crushed")
    survey = event("survey", t=T0 + 1, kind="csat", score=5, rates_event_id="x1")
    fix = event("agent_feedback", t=T0 + 2, channel="backoffice", target_id="x1", kind="sentiment", label="negative")
    _, _, report = run([chat, survey, fix, {**fix, "event_id": "fix2"}])
    assert report.labels[("sentiment", "learned")] == 2 and report.labels[("sentiment", "duplicate")] == 1


def test_labels_for_unknown_forgotten_or_future_interactions_are_unmatched():
    texts = [event("chat", t=T0 + i, event_id=f"m{i}", text=f"message {i}") for i in range(5)]
    early = event("survey", t=T0 - 1, kind="nps", score=2, rates_event_id="m9")  # before its interaction
    unknown = event("survey", t=T0 + 10, kind="nps", score=2, rates_event_id="nope")
    forgotten = event("survey", t=T0 + 11, kind="nps", score=2, rates_event_id="m0")  # only the last 3 are kept
    models, _, report = run([early, *texts, unknown, forgotten])
    assert report.labels[("sentiment", "unmatched")] == 3 and sentiment_labels(models) == 0


def test_a_survey_comment_is_labelled_by_its_own_score():
    _, _, report = run([event("survey", kind="csat", score=1, comment="slow and unhelpful")])
    assert report.labels[("sentiment", "learned")] == 1


def test_churn_snapshots_turn_positive_on_cancellation_within_the_horizon():
    docs = [event("call", t=T0, topic="billing"), event("call", t=T0 + 2 * DAY), event("cancellation", t=T0 + 5 * DAY)]
    models, state, report = run(docs)
    assert report.labels[("churn", "positive")] == 2 and report.labels[("churn", "negative")] == 0
    assert state.predictions["churn_pending"] == [] and state.predictions["churn"]["cancelled"]
    assert models.model("churn").validation.labels == 2


def test_churn_snapshots_turn_negative_when_the_horizon_passes():
    docs = [event("call", t=T0), event("order", t=T0 + 31 * DAY, order_id="o1", amount=5.0)]
    _, state, report = run(docs)
    assert report.labels[("churn", "negative")] == 1
    assert [s["t"] for s in state.predictions["churn_pending"]] == [T0 + 31 * DAY]


def test_a_cancellation_after_the_horizon_labels_only_recent_snapshots():
    docs = [event("call", t=T0), event("call", t=T0 + 20 * DAY), event("cancellation", t=T0 + 40 * DAY)]
    _, _, report = run(docs)
    assert report.labels[("churn", "negative")] == 1 and report.labels[("churn", "positive")] == 1


def test_scores_carry_probability_version_and_drivers():
    _, state, _ = run([event("call", t=T0, topic="billing")])
    churn = state.predictions["churn"]
    assert 0.0 <= churn["p"] <= 1.0 and churn["version"].startswith("churn-") and isinstance(churn["top"], list)


def test_churn_feature_order_is_the_snapshot_order():
    from operators.scoring.features import CHURN_FEATURES, churn_features

    assert tuple(churn_features(CustomerState("customer_id:c1"), T0)) == CHURN_FEATURES
