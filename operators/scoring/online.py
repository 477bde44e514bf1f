"""Scoring and delayed learning for one event: sentiment, churn risk, fraud risk.

Runs inside the batch engine with the models of the event's partition
(:class:`models.registry.ModelSet`). What it remembers for delayed labels lives
in the customer's own state (same partition as the labels, so restart-safe):

* ``recent_texts`` -- the last :data:`MAX_RECENT_TEXTS` texts (truncated; with who
  labelled them and the score they got), so a
  survey that rates an interaction (``rates_event_id``) or an agent's
  correction (``agent_feedback``) can teach the sentiment model;
* ``predictions.churn_pending`` -- feature snapshots taken at scoring time
  (values in :data:`~operators.scoring.features.CHURN_FEATURES` order, 4 significant
  digits), with what each model predicted then.

Delayed labels, as handled (each counted in
``livesignals_model_labels_total{model,outcome}``):

* a label for an interaction still remembered is learned once per source
  (survey, agent); a second label from the same source is a ``duplicate``;
* a label for an unknown, forgotten or not-yet-seen interaction is ``unmatched``;
* churn: a cancellation turns every snapshot taken within the horizon before
  it positive (older ones negative); a snapshot older than the horizon turns
  negative at the customer's next event (customers who go silent without cancelling stay
  unlabelled: they are neither).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from livesignals.contract import Event
from models.registry import ModelSet
from models.sentiment import label_from_survey
from operators.profile360.profile import CustomerState
from operators.scoring.features import CHURN_FEATURES, churn_features, fraud_features

MAX_RECENT_TEXTS = 3
TEXT_CHARS = 200
MAX_PENDING_SNAPSHOTS = 3
MOOD_ALPHA = 0.3
CHURN_WARM_LABELS = 200
"""Labels the churn champion needs before rules act on its scores (``predictions.churn.warm``)."""
FRAUD_TYPES = frozenset({"order", "return", "profile_update", "consent"})
BROWSING = frozenset({"page_view", "product_view", "search"})


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Horizon of churn labels and how often a customer's features are snapshotted."""

    churn_horizon_ms: int = 30 * 86_400_000
    snapshot_every_ms: int = 3 * 86_400_000


@dataclass(slots=True)
class ScoringReport:
    """What scoring did in a batch (for metrics)."""

    labels: Counter[tuple[str, str]] = field(default_factory=Counter)
    scored: Counter[str] = field(default_factory=Counter)
    learned: bool = False


def text_of(event: Event) -> str | None:
    """The event's text (message, transcript or survey comment), if any."""
    text = event.payload.get("text") or event.payload.get("comment")
    return text if isinstance(text, str) and text.strip() else None


def score_text(models: ModelSet, state: CustomerState, event: Event, text: str, report: ScoringReport) -> float:
    """Score a text with the champion, remember it for delayed labels, update the mood."""
    score = models.model("sentiment").score(text)
    report.scored["sentiment"] += 1
    texts = state.predictions.setdefault("recent_texts", [])
    texts.append([event.event_id, event.event_time_ms, text[:TEXT_CHARS], [], score])
    del texts[:-MAX_RECENT_TEXTS]
    mood = state.predictions.get("mood") or {"n": 0, "avg": 0.0}
    avg = score if mood["n"] == 0 else (1 - MOOD_ALPHA) * mood["avg"] + MOOD_ALPHA * score
    state.predictions["mood"] = {
        "last": score, "avg": round(avg, 4), "trend": round(avg - mood["avg"], 4) if mood["n"] else 0.0,
        "n": mood["n"] + 1, "t": event.event_time_ms,
    }  # fmt: skip
    return score


def learn_labels(models: ModelSet, state: CustomerState, event: Event, report: ScoringReport) -> None:
    """Learn the sentiment labels this event carries (survey answers, agent corrections)."""
    p = event.payload
    if event.type == "survey":
        label = label_from_survey(p["kind"], p["score"])
        if p.get("comment"):
            _learn_text(models, p["comment"], label, report)  # the answer labels its own comment
        if p.get("rates_event_id"):
            _learn_remembered(models, state, p["rates_event_id"], label, "survey", report)
    elif event.type == "agent_feedback" and p["kind"] == "sentiment":
        _learn_remembered(models, state, p["target_id"], p["label"], "agent", report)


def _learn_remembered(
    models: ModelSet, state: CustomerState, event_id: str, label: str, source: str, report: ScoringReport
) -> None:
    for entry in state.predictions.get("recent_texts", []):
        if entry[0] == event_id:
            if source in entry[3]:
                report.labels[("sentiment", "duplicate")] += 1
                return
            entry[3].append(source)
            _learn_text(models, entry[2], label, report)
            return
    report.labels[("sentiment", "unmatched")] += 1


def _learn_text(models: ModelSet, text: str, label: str, report: ScoringReport) -> None:
    for _, slot in models.all("sentiment"):
        slot.model.learn_one(text, label)
    report.labels[("sentiment", "learned")] += 1
    report.learned = True


def score_churn(
    models: ModelSet, state: CustomerState, event: Event, cfg: ScoringConfig, report: ScoringReport
) -> None:
    """Learn the churn labels that are due, then score and maybe snapshot."""
    now = event.event_time_ms
    pending = state.predictions.get("churn_pending", [])
    if event.type == "cancellation":
        for snap in pending:
            _learn_churn(models, snap, now - snap["t"] <= cfg.churn_horizon_ms, report)
        state.predictions["churn_pending"] = []
        state.predictions["churn"] = {"p": 1.0, "t": now, "cancelled": True}
        return
    due = [s for s in pending if now - s["t"] > cfg.churn_horizon_ms]
    for snap in due:
        _learn_churn(models, snap, False, report)
    pending = [s for s in pending if now - s["t"] <= cfg.churn_horizon_ms]
    if event.type in ("web_event", "app_event") and event.payload.get("action") in BROWSING:
        state.predictions["churn_pending"] = pending
        return  # browsing alone barely moves the risk: not scored, to keep the hot path cheap
    x = churn_features(state, now)
    predicted = {role: slot.model.predict_proba_one(x) for role, slot in models.all("churn")}
    champion = models.champions["churn"]
    report.scored["churn"] += 1
    state.predictions["churn"] = {
        "p": round(predicted["champion"], 4), "t": now, "version": champion.version,
        "top": champion.model.explain_one(x), "warm": champion.model.validation.labels >= CHURN_WARM_LABELS,
    }  # fmt: skip
    if not pending or now - pending[-1]["t"] >= cfg.snapshot_every_ms:
        pending.append({"t": now, "x": [float(f"{v:.4g}") for v in x.values()], "p": predicted})
        del pending[:-MAX_PENDING_SNAPSHOTS]
    state.predictions["churn_pending"] = pending


def _learn_churn(models: ModelSet, snap: dict[str, Any], y: bool, report: ScoringReport) -> None:
    x = dict(zip(CHURN_FEATURES, snap["x"], strict=True))
    for role, slot in models.all("churn"):
        slot.model.learn_one(x, y, snap["p"].get(role))
    report.labels[("churn", "positive" if y else "negative")] += 1
    report.learned = True


def score_fraud(models: ModelSet, state: CustomerState, event: Event, report: ScoringReport) -> None:
    """Score orders, returns and account changes for anomaly, then learn them."""
    if event.type not in FRAUD_TYPES:
        return
    x = fraud_features(state, event)
    model = models.model("fraud")
    warm = model.seen >= 2 * model.window_size
    score = model.score_one(x) if warm else 0.0
    reason, z = model.reason(x)
    for _, slot in models.all("fraud"):
        slot.model.learn_one(x)
    report.scored["fraud"] += 1
    report.learned = True
    state.predictions["fraud"] = {
        "score": score, "reason": reason, "z": z, "t": event.event_time_ms,
        "version": models.champions["fraud"].version, "warm": warm,
    }  # fmt: skip
