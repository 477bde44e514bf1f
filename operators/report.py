"""What one batch did (for logs, the demo view and tests), and its export to Prometheus."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from livesignals import metrics
from livesignals.contract import RawMessage
from livesignals.errors import DeadLetter
from models.registry import ModelSet
from operators.decisions import responses
from operators.decisions.actions import Decision
from operators.profile360 import kpis
from operators.routing import Reroute
from operators.rules.signals import Flag, Trigger
from operators.scoring import online


@dataclass(slots=True)
class BatchReport:
    """What one batch did (for logs, the demo view and tests)."""

    messages: int = 0
    applied: int = 0
    replay_skipped: int = 0
    duplicates: int = 0
    """Events skipped because their ``event_id`` was applied recently (see ``profile360.profile``)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    """Actions held back (by the contact policy, or consent at arbitration): ``(action, reason)``."""
    decisions: list[tuple[Decision, str]] = field(default_factory=list)
    """Next-best-action decisions with their outcome: ``sent`` or the suppression reason."""
    outcomes: list[responses.Outcome] = field(default_factory=list)
    """Responses to earlier decisions learned in this batch."""
    applied_by_type: dict[str, int] = field(default_factory=dict)
    scoring: online.ScoringReport = field(default_factory=online.ScoringReport)
    kpi: Counter[str] = field(default_factory=Counter)
    """KPI components of the batch (``channel|component``), for Prometheus."""
    complaints: int = 0
    reroutes: list[Reroute] = field(default_factory=list)
    """Events read on a partition that does not own their customer (re-published, not applied)."""
    late: int = 0
    """Events applied without flags or triggers: older than the customer's present by more than the grace."""
    erasures: list[Any] = field(default_factory=list)
    """Customers erased by this batch (:class:`operators.erasure.Erasure`): tombstones and cascades to publish."""
    erased_dropped: int = 0
    """Events dropped because their customer was erased after they happened (:mod:`operators.erasure`)."""

    def absorb(self, event: BatchReport) -> None:
        """Add what one event did (its own report, kept apart until it fully applied) to this batch's."""
        self.applied += event.applied
        for etype, n in event.applied_by_type.items():
            self.applied_by_type[etype] = self.applied_by_type.get(etype, 0) + n
        if event.flags:
            self.flags += event.flags
        if event.triggers:
            self.triggers += event.triggers
        if event.suppressed:
            self.suppressed += event.suppressed
        if event.decisions:
            self.decisions += event.decisions
        if event.outcomes:
            self.outcomes += event.outcomes
        if event.kpi:
            self.kpi.update(event.kpi)
        self.complaints += event.complaints
        self.late += event.late
        scoring = event.scoring
        if scoring.labels:
            self.scoring.labels.update(scoring.labels)
        if scoring.scored:
            self.scoring.scored.update(scoring.scored)
        self.scoring.learned |= scoring.learned
        self.scoring.snapshots += scoring.snapshots
        if scoring.scores:
            self.scoring.scores += scoring.scores

    def clear_event(self) -> None:
        """Empty what :meth:`absorb` reads, for the next event (one report per batch serves every event:
        building one per event cost more than clearing the few fields an event filled)."""
        self.applied = self.complaints = self.late = 0
        for items in (self.flags, self.triggers, self.suppressed, self.decisions, self.outcomes):
            if items:
                items.clear()
        if self.applied_by_type:
            self.applied_by_type.clear()
        if self.kpi:
            self.kpi.clear()
        scoring = self.scoring
        if scoring.labels:
            scoring.labels.clear()
        if scoring.scored:
            scoring.scored.clear()
        if scoring.scores:
            scoring.scores.clear()
        scoring.learned, scoring.snapshots = False, 0

    def export(self, messages: list[RawMessage], actions: set[str]) -> None:
        """Count this batch in Prometheus (``actions``: the declared ones; others are labelled ``other``)."""
        metrics.BATCH_EVENTS.observe(len(messages))
        for topic, n in Counter(m.origin.topic for m in messages).items():
            metrics.EVENTS_IN.labels(topic).inc(n)
        for etype, n in self.applied_by_type.items():
            metrics.EVENTS_APPLIED.labels(etype).inc(n)
        for reason, n in Counter(d.reason.value for d in self.dead_letters).items():
            metrics.DEAD_LETTERS.labels(reason).inc(n)
        for name, n in Counter(f.name for f in self.flags).items():
            metrics.FLAGS.labels(name).inc(n)
        for action, n in Counter(t.action for t in self.triggers).items():
            metrics.TRIGGERS.labels(action).inc(n)
        for (action, reason), n in Counter(self.suppressed).items():
            metrics.TRIGGERS_SUPPRESSED.labels(action, reason).inc(n)
        for d, _ in self.decisions:
            metrics.DECISIONS.labels(d.policy, d.chosen.action).inc()
        for o in self.outcomes:
            metrics.OFFER_OUTCOMES.labels(o.action if o.action in actions else "other", o.response).inc()
        if self.replay_skipped:
            metrics.EVENTS_REPLAY_SKIPPED.inc(self.replay_skipped)
        if self.duplicates:
            metrics.EVENTS_DUPLICATE.inc(self.duplicates)
        for name, value in self.kpi.items():
            channel, component = name.split("|", 1)
            if channel == "all":
                continue  # Prometheus sums over channels itself
            if component in kpis.VALUE_COMPONENTS:
                metrics.KPI_VALUES.labels(channel, component).inc(value)
            else:
                metrics.KPI_EVENTS.labels(channel, component).inc(value)
        if self.complaints:
            metrics.COMPLAINTS.inc(self.complaints)
        for topic, n in Counter(r.origin.topic for r in self.reroutes).items():
            metrics.EVENTS_REROUTED.labels(topic).inc(n)
        if self.late:
            metrics.LATE_EVENTS.inc(self.late)
        for e in self.erasures:
            metrics.ERASURES.labels("cascade" if e.cascade else "input").inc()
        if self.erased_dropped:
            metrics.ERASED_EVENTS_DROPPED.inc(self.erased_dropped)
        for model, n in self.scoring.scored.items():
            metrics.MODEL_SCORED.labels(model).inc(n)
        for (model, outcome), n in self.scoring.labels.items():
            metrics.MODEL_LABELS.labels(model, outcome).inc(n)


def export_model_metrics(models: ModelSet, learned: bool) -> None:
    """Live validation figures of the shared models (partition label ``all``), when they learned."""
    if not learned:
        return
    for row in models.summary():
        for metric in ("labels", "roc_auc", "log_loss", "accuracy", "macro_f1"):
            value = row.get(metric)
            if value is not None:
                metrics.MODEL_METRIC.labels(row["kind"], row["role"], metric, "all").set(value)
