"""What one event changes outside its customer's state, held back until the event has fully applied.

An event changes all or nothing (issue 9). The customer's state is put back
from an undo record when any stage fails
(:meth:`~operators.profile360.profile.CustomerState.undo_record`); what lives
outside the state is *staged* instead and kept only once every stage of the
event succeeded:

* **model learning** -- River models cannot be rolled back: an event's labels
  are recorded as lessons (:class:`operators.scoring.learner.ModelView`),
  dropped if the event fails, and learned by the shared learner after the
  batch; an event's predictions use the models as they were before it;
* **partition aggregates** (KPI and voice-of-the-customer buckets, the
  watermark, the index of churn snapshots due) -- recorded here
  (:class:`StagedAggregates`) and applied on success;
* **the batch report** (flags, triggers, decisions, outcomes, counters) --
  each event writes its own :class:`~operators.report.BatchReport`, merged
  into the batch's on success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from operators.profile360.windows import Windows


@dataclass(slots=True)
class StagedAggregates:
    """Changes to partition aggregates of one event, applied on success.

    >>> w = Windows()
    >>> staged = StagedAggregates()
    >>> staged.add(w, 0, {"events": 1})
    >>> w.query("events", "1h", 0)
    0
    >>> staged.commit(); w.query("events", "1h", 0)
    1
    """

    changes: list[tuple[Callable[..., Any], tuple[Any, ...]]] = field(default_factory=list)

    def add(self, windows: Windows, t_ms: int, values: dict[str, Any]) -> None:
        """Record ``windows.add(t_ms, values)`` for :meth:`commit`."""
        self.changes.append((windows.add, (t_ms, values)))

    def later(self, change: Callable[..., Any], *args: Any) -> None:
        """Record ``change(*args)`` for :meth:`commit`."""
        self.changes.append((change, args))

    def commit(self) -> None:
        """Apply the recorded changes in order (then forget them)."""
        for change, args in self.changes:
            change(*args)
        self.changes.clear()

    def discard(self) -> None:
        """Forget the recorded changes (the event failed)."""
        self.changes.clear()
