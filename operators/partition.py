"""Aggregates shared by all customers, owned by one Kafka partition each.

Contact-centre KPIs and voice-of-the-customer counts span customers, so no
customer profile can hold them. Each input partition keeps its own share,
written by the one worker that reads the partition, in the same transaction
as that batch's profiles: replays never count twice. Readers sum the shares.

The partition also indexes its customers' pending churn snapshots by the day
they fall due (``churn_due``), so the engine can label a silent customer's
snapshots negative once the partition's event time has passed the horizon
(:func:`operators.scoring.online.expire_churn`). The index is a ring of
:data:`DUE_RING_DAYS` hash fields, one per due day, each rewritten only when it
changes; it holds at most one entry per customer with pending snapshots, plus
entries made stale by a later event (skipped at the sweep).

The models are not here: every partition shares one learner
(:mod:`operators.scoring.learner`), checkpointed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livesignals import serde
from operators.profile360 import kpis, voc
from operators.profile360.windows import Windows

DAY_MS = 86_400_000
DUE_RING_DAYS = 400
"""Due days indexed at once (field ``churn_due:<day mod ring>``): the churn horizon must be shorter."""


@dataclass
class PartitionAggregates:
    """KPI and complaint buckets of one input partition, and its churn due index."""

    kpi: Windows = field(default_factory=kpis.new_windows)
    voc: Windows = field(default_factory=voc.new_windows)
    churn_due: dict[int, set[str]] = field(default_factory=dict)
    """Due day -> customers with a pending churn snapshot falling due that day."""
    watermark_ms: int = 0
    """The newest event time this partition has applied."""
    applied: int = -1
    """The next offset these aggregates include (Redis field ``applied``; -1: not known). A replayed event
    below it is already counted (a Cluster batch's write-ahead record was applied: :mod:`state.write_ahead`)."""
    _dirty_days: set[int] = field(default_factory=set, repr=False, compare=False)

    def index_due(self, due_ms: int, customer_key: str) -> None:
        """Remember that ``customer_key`` has a snapshot falling due at ``due_ms``."""
        day = due_ms // DAY_MS
        self.churn_due.setdefault(day, set()).add(customer_key)
        self._dirty_days.add(day)

    def forget(self, customer_key: str) -> None:
        """Drop ``customer_key`` from the due index (the customer was erased).

        >>> p = PartitionAggregates()
        >>> p.index_due(5 * DAY_MS, "customer_id:c1"); p.index_due(5 * DAY_MS, "customer_id:c2")
        >>> p.forget("customer_id:c1"); p.take_due(7 * DAY_MS)
        ['customer_id:c2']
        """
        for day, keys in self.churn_due.items():
            if customer_key in keys:
                keys.discard(customer_key)
                self._dirty_days.add(day)

    def take_due(self, now_ms: int) -> list[str]:
        """The customers indexed on days that have fully passed by ``now_ms`` (removed from the index)."""
        out: set[str] = set()
        for day in sorted(d for d in self.churn_due if (d + 1) * DAY_MS <= now_ms):
            out |= self.churn_due.pop(day)
            self._dirty_days.add(day)
        return sorted(out)

    def to_fields(self) -> dict[str, bytes]:
        """Redis hash fields (due-index days only when they changed)."""
        out = {
            "kpi": serde.dumps(self.kpi.to_json()),
            "voc": serde.dumps(self.voc.to_json()),
            "watermark": str(self.watermark_ms).encode(),
        }
        for day in self._dirty_days:
            keys = sorted(self.churn_due.get(day, ()))
            out[f"churn_due:{day % DUE_RING_DAYS}"] = serde.dumps({"day": day, "keys": keys})
        self._dirty_days.clear()
        return out

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> PartitionAggregates:
        """Rebuild from a Redis hash (new aggregates when absent)."""
        due: dict[int, set[str]] = {}
        for name, value in fields.items():
            if name.startswith(b"churn_due:"):
                doc = serde.loads(value)
                if doc["keys"]:
                    due[doc["day"]] = set(doc["keys"])
        return cls(
            kpis.new_windows(serde.loads(fields[b"kpi"]) if b"kpi" in fields else None),
            voc.new_windows(serde.loads(fields[b"voc"]) if b"voc" in fields else None),
            due,
            int(fields.get(b"watermark", b"0")),
            int(fields.get(b"applied", b"-1")),
        )


class ForgettingAggregates:
    """A partition's aggregates that count as touched (committed) once an erase made them forget a key."""

    def __init__(
        self, part: PartitionAggregates, pos: tuple[str, int], touched: dict[tuple[str, int], PartitionAggregates]
    ) -> None:
        self.part, self.pos, self.touched = part, pos, touched

    def forget(self, customer_key: str) -> None:
        """Forget ``customer_key`` in the due index; mark the aggregates touched when it was there."""
        if any(customer_key in keys for keys in self.part.churn_due.values()):
            self.part.forget(customer_key)
            self.touched[self.pos] = self.part


def advance_watermark(part: PartitionAggregates, event_time_ms: int) -> None:
    """Move ``part``'s event-time watermark up to ``event_time_ms`` (never back); staged per event by the engine."""
    part.watermark_ms = max(part.watermark_ms, event_time_ms)
