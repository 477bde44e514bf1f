"""Scoring and delayed learning for one event: sentiment, churn risk, fraud risk.

Runs inside the batch engine with the models every partition shares
(:class:`models.registry.ModelSet`). What it remembers for delayed labels lives
in the customer's own state (same partition as the labels, so restart-safe):

* ``recent_texts`` -- the last :data:`MAX_RECENT_TEXTS` texts (truncated; with who
  labelled them and the score they got), so a
  survey that rates an interaction (``rates_event_id``) or an agent's
  correction (``agent_feedback``) can teach the sentiment model;
* ``predictions.churn_pending`` -- feature snapshots taken at scoring time, at
  most one per ``snapshot_every_ms`` (values only, 4 significant digits, in
  :data:`~operators.scoring.features.CHURN_FEATURES` order then the customer's
  behaviour features -- ``k`` behaviour names then), with what each model predicted then;
* ``predictions.churn_activity`` -- daily behaviour counts
  (:mod:`operators.scoring.behaviour`).

Learning goes through ``models.teach``: the engine hands in a view that records
lessons for the shared learner (:mod:`operators.scoring.learner`), so every
partition's labels reach the same model; tests may pass a plain
:class:`~models.registry.ModelSet`, which learns at once.

Delayed labels, as handled (each counted in
``livesignals_model_labels_total{model,outcome}``):

* a label for an interaction still remembered is learned once per source
  (survey, agent); a second label from the same source is a ``duplicate``;
* a label for an unknown, forgotten or not-yet-seen interaction is ``unmatched``;
* churn: **every snapshot is learned exactly once.** A cancellation turns every
  pending snapshot taken within the horizon before it positive (older ones
  negative). A snapshot whose horizon has passed turns negative at the
  customer's next event, or -- for a customer who goes silent -- at the sweep
  of its due day (:func:`expire_churn`, run by the engine once the partition's
  event time has passed that day). The sweep also rescores a customer who has
  been silent for less than a horizon each day that passes
  (:attr:`ScoringConfig.rescore_silent_ms`; ``predictions.churn_visit`` books
  the visit), so the profile's risk follows the silence: read at month ends,
  risks left as they were at the last event ranked 0.61 where the model itself
  ranked 0.71, and risks rescored every 5-day snapshot cadence still ranked
  0.04 below the model (``bench.models``, a sparse subscription stream).
  Memory is bounded by the cadence: at most
  ``horizon / snapshot_every + 1`` pending snapshots per customer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from livesignals.contract import Event
from models.registry import Models
from operators.profile360.profile import CustomerState
from operators.scoring import behaviour
from operators.scoring.features import CHURN_FEATURES, churn_features, fraud_features
from operators.scoring.texts import (  # noqa: F401 - text scoring re-exported: the engine and tests call it here
    MAX_RECENT_TEXTS,
    MOOD_ALPHA,
    TEXT_CHARS,
    learn_labels,
    score_text,
    text_of,
)

CHURN_WARM_LABELS = 200
"""Labels the churn champion needs before rules act on its scores (``predictions.churn.warm``) ..."""
CHURN_WARM_EACH = 20
"""... of which at least this many of each class: until a horizon has passed, every label is positive."""
CHURN_TRUST_AUC = 0.65
"""... and whose rolling ROC AUC on its own labels (each scored before it was learned) is at least this:
a model that ranks no better than chance raises no ``high_churn_risk`` (better silent than crying wolf)."""
DIGITAL_RESCORE_MS = 6 * 3_600_000
"""App and web events re-score churn at most this often (unless a snapshot is due)."""
STEADY_RESCORE_MS = 3_600_000
"""Other events that move no strong churn signal (a contact, a loyalty, campaign or profile update, a
survey answer that is not bad) re-score churn at most this often per customer, in event time: a chat
of ten messages is scored once, not ten times (see :func:`_steady`)."""
MATERIAL_TYPES = frozenset({"order", "return", "delivery", "ticket", "offer_response", "consent"})
"""Event types that always re-score churn: each moves a feature the risk turns on (orders, spend,
recency of the last order, returns, delivery problems, open cases, offers rejected, marketing opt-out)."""
EXPLAIN_STEP = 0.05
"""The churn explanation (``predictions.churn.top``) is recomputed when the shown risk moves by at least
this much, or into another tenth, or the model version changes; otherwise the drivers shown stay."""
SWEEP_EVENT_ID = "sweep"
"""The event id of a churn score the silent-customer sweep gave (no event of the customer's own)."""
FRAUD_TYPES = frozenset({"order", "return", "profile_update", "consent"})
BROWSING = frozenset({"page_view", "product_view", "search"})


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Horizon of churn labels and how often a customer's features are snapshotted."""

    churn_horizon_ms: int = 30 * 86_400_000
    snapshot_every_ms: int = 5 * 86_400_000
    rescore_silent_ms: int = 12 * 3_600_000
    """How soon after its last score the sweep rescores a customer gone silent (at most a snapshot cadence).
    The sweep's due index is by day, so 12 h means about once a day: each day that passes is news."""
    rescore_steady_ms: int = STEADY_RESCORE_MS
    """How often, at most, events that move no strong churn signal re-score a customer (:func:`_steady`)."""

    @property
    def rescore_every_ms(self) -> int:
        """The silent-customer rescoring cadence: :attr:`rescore_silent_ms`, at most a snapshot cadence."""
        return max(1, min(self.rescore_silent_ms, self.snapshot_every_ms))

    @property
    def max_pending(self) -> int:
        """Most pending churn snapshots a customer can hold (the cadence bounds them)."""
        return self.churn_horizon_ms // max(1, self.snapshot_every_ms) + 2


@dataclass(slots=True)
class ScoringReport:
    """What scoring did in a batch (for metrics)."""

    labels: Counter[tuple[str, str]] = field(default_factory=Counter)
    scored: Counter[str] = field(default_factory=Counter)
    learned: bool = False
    snapshots: int = 0
    """Churn snapshots taken (each is learned exactly once, later)."""
    scores: list[tuple[str, str, str, int, float]] = field(default_factory=list)
    """Every score of the batch: ``(model, customer_key, event_id, event_time_ms, score)`` (offline evaluation)."""


def churn_inputs(state: CustomerState, now_ms: int) -> dict[str, float]:
    """What the churn model sees: profile features and behaviour features (see the modules)."""
    return behaviour.features(state, now_ms, churn_features(state, now_ms))  # one dict: no merged copy


def score_churn(
    models: Models,
    state: CustomerState,
    event: Event,
    cfg: ScoringConfig,
    report: ScoringReport,
    complaint: bool | None = None,
) -> int | None:
    """Count the behaviour, learn the churn labels that are due, then score and maybe snapshot.

    Scoring has a cadence (a snapshot that is due is always taken, so what
    the model learns does not depend on it): app and web events as
    :func:`_skip_digital` says; other events always when they are of
    :data:`MATERIAL_TYPES` or a ``complaint`` the event itself says (the
    engine: a bad survey answer, a case opened; ``None``: unknown, scored),
    else at most every :attr:`ScoringConfig.rescore_steady_ms` of event time; and always when the risk
    shown came from another champion (a promotion reaches the customer's next event).
    Only the event and the customer's state decide, never a model's score (a
    text's sentiment follows the shared models' learning, hence the batch
    boundaries): when churn is scored is the same whatever the batch
    boundaries and restarts (``tests/faults_models.py``: ``scored_when``).

    Returns when the partition's sweep should visit the customer (the engine
    indexes it) when no visit was booked before that time, else None
    (see :func:`_book_visit`).
    """
    now = event.event_time_ms
    behaviour.record(state, event)
    pending = state.predictions.get("churn_pending", [])
    if event.type == "cancellation":
        for snap in pending:
            _learn_churn(models, state, snap, now - snap["t"] <= cfg.churn_horizon_ms, report)
        state.predictions["churn_pending"] = []
        state.predictions["churn"] = {"p": 1.0, "t": now, "cancelled": True}
        return None
    pending = _learn_due(models, state, pending, now, cfg, report)
    snapshot_due = not pending or now - pending[-1]["t"] >= cfg.snapshot_every_ms
    shown_by = (state.predictions.get("churn") or {}).get("version")
    version = models.champions["churn"].version
    if shown_by not in (None, version):
        skip = False  # a promotion (or new settings) since: the next event shows the new champion's figure
    elif event.type in ("web_event", "app_event"):
        skip = _skip_digital(state, event, pending, cfg)
    else:
        skip = not snapshot_due and not complaint and complaint is not None and _steady(state, event, cfg)
    if skip:
        state.predictions["churn_pending"] = pending
        return None
    x, predicted = _show_churn(models, state, event.customer_key, event.event_id, now, report, snapshot_due, version)
    if snapshot_due:
        values = [float(f"{v:.4g}") for v in x.values()]
        pending.append({"t": now, "x": values, "k": behaviour.behaviours(state), "p": predicted})
        report.snapshots += 1
        del pending[: -cfg.max_pending]  # only reached if the clock jumps back: the cadence bounds the list
    state.predictions["churn_pending"] = pending
    booked = state.predictions.get("churn_visit")
    if booked is None or booked <= now or booked > now + cfg.rescore_every_ms:
        return _book_visit(state, pending, now, cfg)
    return None


def _show_churn(
    models: Models,
    state: CustomerState,
    customer_key: str,
    event_id: str,
    now: int,
    report: ScoringReport,
    every_role: bool = False,
    version: str | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Score churn at ``now``; the champion's figure is what the profile shows. ``every_role``: the
    challenger's too (a snapshot keeps what each role said; nothing else reads it). ``version``: the
    champion's, when the caller has it (naming a version hashes its configuration)."""
    x = churn_inputs(state, now)
    champion = models.champions["churn"]
    z = champion.model.transform_one(x)  # once: the prediction and the explanation read it
    predicted = {"champion": champion.model.proba_of(z)}
    if every_role:
        predicted.update(
            (role, slot.model.predict_proba_one(x)) for role, slot in models.all("churn") if role != "champion"
        )
    report.scored["churn"] += 1
    report.scores.append(("churn", customer_key, event_id, now, predicted["champion"]))
    p = round(predicted["champion"], 4)
    before = state.predictions.get("churn") or {}
    top = before.get("top")
    version = champion.version if version is None else version
    if top is None or _explanation_moved(before, p, version):
        top = champion.model.drivers_of(z)
    state.predictions["churn"] = {
        "p": p, "t": now, "version": version, "top": top, "warm": _warm(champion.model.validation),
    }  # fmt: skip
    return x, predicted


def _explanation_moved(before: dict[str, Any], p: float, version: str) -> bool:
    """Whether the drivers shown with the risk ``before`` may no longer be those of ``p``: the risk moved
    by :data:`EXPLAIN_STEP` or more or into another tenth, the model version changed, or there was none.

    >>> _explanation_moved({"p": 0.52, "version": "v1", "top": []}, 0.56, "v1")
    False
    >>> [_explanation_moved({"p": 0.52, "version": "v1", "top": []}, p, v) for p, v in
    ...  [(0.58, "v1"), (0.49, "v1"), (0.52, "v2")]]
    [True, True, True]
    """
    shown = before.get("p")
    if shown is None or before.get("cancelled") or before.get("version") != version:
        return True
    return abs(p - shown) >= EXPLAIN_STEP or int(p * 10) != int(shown * 10)


def _book_visit(state: CustomerState, pending: list[dict[str, Any]], now: int, cfg: ScoringConfig) -> int | None:
    """When the partition's sweep should next look at the customer: the oldest pending snapshot's due
    time, or sooner, one cadence after the last score while the customer has been silent for less
    than a horizon (the shown risk then follows the silence). None: nothing to come back for."""
    times = [pending[0]["t"] + cfg.churn_horizon_ms + 1] if pending else []
    shown = state.predictions.get("churn") or {}
    last_event = (state.predictions.get("churn_activity") or {}).get("last")
    silent_for = None if last_event is None else now - last_event
    if "t" in shown and not shown.get("cancelled") and silent_for is not None and silent_for < cfg.churn_horizon_ms:
        times.append(shown["t"] + cfg.rescore_every_ms)
    visit = min(times) if times else None
    state.predictions["churn_visit"] = visit
    return visit


def _warm(validation: Any) -> bool:
    """Enough labels of both classes, and a measured ranking quality, to trust the churn champion
    (all partitions' labels count)."""
    positives = validation.positives
    if not (
        validation.labels >= CHURN_WARM_LABELS
        and positives >= CHURN_WARM_EACH
        and validation.labels - positives >= CHURN_WARM_EACH
    ):
        return False
    auc = validation.recent_auc()
    return auc is not None and auc >= CHURN_TRUST_AUC


def _skip_digital(state: CustomerState, event: Event, pending: list[dict[str, Any]], cfg: ScoringConfig) -> bool:
    """App and web events are not scored when they are browsing (it barely moves the risk), nor within
    :data:`DIGITAL_RESCORE_MS` of the last score unless a snapshot is due: a 30-day risk does not move
    in minutes of app use, and scoring every tap would dominate the hot path."""
    if event.payload.get("action") in BROWSING:
        return True
    now = event.event_time_ms
    if not pending or now - pending[-1]["t"] >= cfg.snapshot_every_ms:
        return False
    last = (state.predictions.get("churn") or {}).get("t")
    return last is not None and 0 <= now - last < DIGITAL_RESCORE_MS


def _steady(state: CustomerState, event: Event, cfg: ScoringConfig) -> bool:
    """True when the event moves no strong churn signal and the risk shown was scored less than
    :attr:`ScoringConfig.rescore_steady_ms` before it (event time): it then waits for the cadence."""
    if event.type in MATERIAL_TYPES:
        return False
    last = (state.predictions.get("churn") or {}).get("t")
    return last is not None and 0 <= event.event_time_ms - last < cfg.rescore_steady_ms


def expire_churn(
    models: Models, state: CustomerState, now_ms: int, cfg: ScoringConfig, report: ScoringReport
) -> int | None:
    """The silent-customer sweep: learn as negative the snapshots whose horizon passed by ``now_ms``,
    and rescore a customer silent for less than a horizon whose shown risk is a cadence old.

    Returns when to visit again (to index), or None (nothing due, or a later visit is booked).
    """
    pending = _learn_due(models, state, state.predictions.get("churn_pending", []), now_ms, cfg, report)
    state.predictions["churn_pending"] = pending
    shown = state.predictions.get("churn") or {}
    last_event = (state.predictions.get("churn_activity") or {}).get("last")
    silent = last_event is not None and 0 <= now_ms - last_event <= cfg.churn_horizon_ms
    if silent and "t" in shown and not shown.get("cancelled") and now_ms - shown["t"] >= cfg.rescore_every_ms:
        _show_churn(models, state, state.customer_key, SWEEP_EVENT_ID, now_ms, report)  # silence is news: rescore
    booked = state.predictions.get("churn_visit")
    if booked is not None and booked > now_ms:
        return None  # a later visit is booked already (the customer's events booked it)
    return _book_visit(state, pending, now_ms, cfg)


def _learn_due(
    models: Models,
    state: CustomerState,
    pending: list[dict[str, Any]],
    now: int,
    cfg: ScoringConfig,
    report: ScoringReport,
) -> list[dict[str, Any]]:
    """Learn the snapshots older than the horizon as negatives; the rest stay pending."""
    keep = []
    for snap in pending:
        if now - snap["t"] > cfg.churn_horizon_ms:
            _learn_churn(models, state, snap, False, report)
        else:
            keep.append(snap)
    return keep


def _learn_churn(models: Models, state: CustomerState, snap: dict[str, Any], y: bool, report: ScoringReport) -> None:
    """Teach one snapshot: its values follow :data:`CHURN_FEATURES` then the customer's behaviour
    feature names (``k`` behaviours; a slot reused since the snapshot holds None: skipped)."""
    names = [*CHURN_FEATURES, *behaviour.feature_names(state, snap["k"])] if "k" in snap else list(CHURN_FEATURES)
    values = snap["x"][: len(names)]
    x = {n: v for n, v in zip(names, values, strict=True) if v is not None}  # None: a behaviour slot reused since
    models.teach("churn", [x, y], snap["p"])
    report.labels[("churn", "positive" if y else "negative")] += 1
    report.learned = True


def score_fraud(models: Models, state: CustomerState, event: Event, report: ScoringReport) -> None:
    """Score orders, returns and account changes for anomaly, then learn them."""
    if event.type not in FRAUD_TYPES:
        return
    x = fraud_features(state, event)
    model = models.model("fraud")
    warm = model.seen >= 2 * model.window_size
    score = model.score_one(x) if warm else 0.0
    reason, z = model.reason(x)
    models.teach("fraud", [x])
    report.scored["fraud"] += 1
    report.scores.append(("fraud", event.customer_key, event.event_id, event.event_time_ms, score))
    report.learned = True
    state.predictions["fraud"] = {
        "score": score, "reason": reason, "z": z, "t": event.event_time_ms,
        "version": models.champions["fraud"].version, "warm": warm,
    }  # fmt: skip
