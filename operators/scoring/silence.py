"""Churn snapshots of silent stretches: the model also learns what a customer's silence says.

A churn snapshot is taken when the customer's event scores (at most one per
cadence, :func:`operators.scoring.online.score_churn`). A customer who goes
quiet has no event to score, so without more the model would only ever learn
from moments right at an event -- while a risk is read at any moment (a
renewal, a month end), often in the middle of a silence. So a silent customer
is also snapshotted on a grid of its own: at ``last + k x snapshot_every`` for
k = 1, 2, ... while ``k x snapshot_every <= churn_horizon`` (``last`` is the
customer's newest event time), with the features as of that moment
(``days_since_active`` 5, 10, ... 30 days at the default cadence). Like every
snapshot, each is learned exactly once: positive if the customer cancels
within the horizon after it, negative when the horizon passes. A cancelled
customer, or one never scored, is not snapshotted.

**Deterministic.** The grid times depend on the customer's own events only,
and a grid time is taken with the customer's state *before* its next event,
by whichever comes first:

* the customer's next event, before anything of it is applied: every grid time
  earlier than the event's time (:func:`take` from the engine's ``_apply_one``);
* the partition's silent-customer sweep: every grid time at least
  :func:`settle_ms` (one cadence) before the partition's event time.

So the same input gives the same snapshots (times, values, labels) whatever
the batch boundaries, restarts or partition count -- with one exception: an
event older than its customer's newest event *and* more than a cadence behind
its partition's event time may count, or not, in a silent snapshot taken before
it arrived (the sweep cannot wait for ever). What the model *said* at a
snapshot (``p``, for progressive validation) is the model of that moment, as
for every snapshot. Memory stays bounded: snapshots are a cadence apart, so a
customer holds at most ``horizon / cadence + 1`` pending ones after the due
ones are learned.
"""

from __future__ import annotations

from typing import Any

from models.registry import Models
from operators.profile360.profile import CustomerState
from operators.scoring import behaviour
from operators.scoring.online import ScoringConfig, ScoringReport, churn_inputs

QUIET_KEY = "quiet"
"""Field of ``predictions.churn_activity``: the newest silent grid time taken (the grid restarts after an event)."""


def settle_ms(cfg: ScoringConfig) -> int:
    """How far behind the partition's event time the sweep takes a grid time: one cadence."""
    return cfg.snapshot_every_ms


def due_times(state: CustomerState, before_ms: int, cfg: ScoringConfig) -> list[int]:
    """The silent grid times not yet taken that fall before ``before_ms`` (see the module docstring).

    >>> from operators.profile360.profile import CustomerState
    >>> s = CustomerState("customer_id:c1")
    >>> s.predictions["churn_activity"] = {"last": 0, "first": 0, "prev": None, "names": [], "days": {}}
    >>> s.predictions["churn"] = {"p": 0.1, "t": 0}
    >>> cfg = ScoringConfig(churn_horizon_ms=30, snapshot_every_ms=5)
    >>> due_times(s, 12, cfg), due_times(s, 100, cfg)
    ([5, 10], [5, 10, 15, 20, 25, 30])
    >>> s.predictions["churn"]["cancelled"] = True
    >>> due_times(s, 100, cfg)
    []
    """
    act = state.predictions.get("churn_activity")
    shown = state.predictions.get("churn") or {}
    if not act or "t" not in shown or shown.get("cancelled"):
        return []
    last, step = act["last"], max(1, cfg.snapshot_every_ms)
    if before_ms <= last + step:
        return []  # the first grid time after the last event is not before ``before_ms`` (most events)
    done = max(act.get(QUIET_KEY) or last, last)
    out = []
    g = last + ((done - last) // step + 1) * step
    while g - last <= cfg.churn_horizon_ms and g < before_ms:
        out.append(g)
        g += step
    return out


def take(models: Models, state: CustomerState, before_ms: int, cfg: ScoringConfig, report: ScoringReport) -> int:
    """Snapshot the customer at each silent grid time before ``before_ms``; how many were taken.

    Each snapshot has the form of an event's (values in feature order, ``k``
    behaviour names, what each churn role predicted); the due ones are learned
    as every snapshot is (:func:`operators.scoring.online.expire_churn`, or the
    customer's next event).
    """
    times = due_times(state, before_ms, cfg)
    if not times:
        return 0
    pending: list[dict[str, Any]] = state.predictions.setdefault("churn_pending", [])
    for t in times:
        x = churn_inputs(state, t)
        predicted = {role: slot.model.predict_proba_one(x) for role, slot in models.all("churn")}
        pending.append({"t": t, "x": [float(f"{v:.4g}") for v in x.values()], "k": behaviour.behaviours(state),
                        "p": predicted})  # fmt: skip
    state.predictions["churn_activity"][QUIET_KEY] = times[-1]
    report.snapshots += len(times)
    return len(times)
