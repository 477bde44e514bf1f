"""The silent-customer sweep at the end of a batch: churn snapshots of customers who went quiet get labelled.

A churn snapshot is labelled when the customer's horizon passes; a customer who
sends nothing more would never reach that point on an event of its own, so each
batch looks up the customers whose due day the partition's event time has
passed (moved out of :mod:`operators.engine`, unchanged).
"""

from __future__ import annotations

import logging
from typing import Any

from livesignals import metrics
from operators.partition import PartitionAggregates
from operators.profile360.profile import CustomerState
from operators.scoring import online, silence
from operators.scoring.learner import ModelView

log = logging.getLogger(__name__)

SWEEP_SEQ = 1_000_000
"""Lessons of the silent-customer sweep number from here (after any event's own lessons)."""


def sweep_silent(
    view: ModelView,
    store: Any,
    scoring: online.ScoringConfig,
    partitions: dict[tuple[str, int], PartitionAggregates],
    report: Any,
    touched: dict[str, CustomerState],
    resume_at: dict[tuple[str, int], int],
) -> list[CustomerState]:
    """Label the churn snapshots of customers gone silent: those indexed on due days the
    partition's event time has passed (see :func:`operators.scoring.online.expire_churn`),
    after snapshotting their silence (:mod:`operators.scoring.silence`); the states it loaded
    (those not in ``touched``), to commit with the batch.

    Their lessons carry the batch's last offset of the partition (``resume_at`` - 1) and sequence
    numbers from :data:`SWEEP_SEQ`, after every lesson of the batch's events. ``report`` is the
    batch's :class:`operators.report.BatchReport`.

    A customer whose stored document cannot be read (:attr:`CustomerState.unreadable`) is labelled nothing and
    kept in the due index on the partition's current event-time day, so it is loaded again (one ERROR line)
    once a day of event time has passed, not at every batch; once its document is repaired, that visit labels
    its snapshots without waiting for an event of its own (outside review, C6: they were then never labelled)."""
    swept: list[CustomerState] = []
    for (topic, partition), part in sorted(partitions.items()):
        keys = part.take_due(part.watermark_ms)
        if not keys:
            continue
        view.at(f"{topic}:{partition}", resume_at.get((topic, partition), 1) - 1, SWEEP_SEQ)
        missing = [k for k in keys if k not in touched]
        loaded = store.load(missing) if missing else {}
        for key in keys:
            state = touched.get(key) or loaded[key]
            if state.unreadable is not None:  # its stored document could not be read: nothing to label now,
                part.index_due(part.watermark_ms, key)  # but kept: visited again the next event-time day
                continue
            state.changed()  # changed outside an event: its next undo record is encoded afresh
            try:
                silence.take(view, state, part.watermark_ms - silence.settle_ms(scoring) + 1, scoring, report.scoring)
                due = online.expire_churn(view, state, part.watermark_ms, scoring, report.scoring)
            except Exception:  # one customer's snapshots must never fail every retry of the batch
                log.exception("churn snapshots of %s could not be labelled; dropped", key)
                metrics.MODEL_LESSONS.labels("failed").inc()
                state.predictions.pop("churn_pending", None)
                due = None
            if due is not None:
                part.index_due(due, key)
            if key not in touched:
                swept.append(state)
    return swept
