"""Aggregates shared by all customers, owned by one Kafka partition each.

Contact-centre KPIs and voice-of-the-customer counts span customers, so no
customer profile can hold them. Each input partition keeps its own share,
written by the one worker that reads the partition, in the same transaction
as that batch's profiles: replays never count twice. Readers sum the shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livesignals import serde
from operators import kpis, voc
from operators.windows import Windows


@dataclass
class PartitionAggregates:
    """KPI and complaint buckets of one input partition."""

    kpi: Windows = field(default_factory=kpis.new_windows)
    voc: Windows = field(default_factory=voc.new_windows)

    def to_fields(self) -> dict[str, bytes]:
        """Redis hash fields."""
        return {"kpi": serde.dumps(self.kpi.to_json()), "voc": serde.dumps(self.voc.to_json())}

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> PartitionAggregates:
        """Rebuild from a Redis hash (empty when the partition is new)."""
        return cls(
            kpis.new_windows(serde.loads(fields[b"kpi"]) if b"kpi" in fields else None),
            voc.new_windows(serde.loads(fields[b"voc"]) if b"voc" in fields else None),
        )
