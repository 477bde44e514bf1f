"""Aggregates shared by all customers, owned by one Kafka partition each.

Contact-centre KPIs, voice-of-the-customer counts and the online models span
customers, so no customer profile can hold them. The models are checkpointed
here, in the same transaction as the batch that taught them, so a restart
neither forgets what was learned nor learns a label twice. Each input partition keeps its own share,
written by the one worker that reads the partition, in the same transaction
as that batch's profiles: replays never count twice. Readers sum the shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from models.registry import ModelSet
from operators.profile360 import kpis, voc
from operators.profile360.windows import Windows


@dataclass
class PartitionAggregates:
    """KPI and complaint buckets of one input partition."""

    kpi: Windows = field(default_factory=kpis.new_windows)
    voc: Windows = field(default_factory=voc.new_windows)
    models: ModelSet = field(default_factory=ModelSet.from_config)
    models_dirty: bool = False
    """Set when the models learned in this batch: only then is the checkpoint rewritten."""

    def to_fields(self) -> dict[str, bytes]:
        """Redis hash fields (the model checkpoint only when it changed)."""
        out = {"kpi": serde.dumps(self.kpi.to_json()), "voc": serde.dumps(self.voc.to_json())}
        if self.models_dirty:
            out["models"] = self.models.to_bytes()
            out["models_summary"] = serde.dumps(self.models.summary())
            self.models_dirty = False
        return out

    @classmethod
    def from_fields(
        cls, fields: dict[bytes, bytes], models_config: dict[str, Any] | None = None
    ) -> PartitionAggregates:
        """Rebuild from a Redis hash (new aggregates and configured models when absent).

        A checkpoint's champions are kept (promotion is by command); a challenger
        whose configuration changed in the settings is replaced by a fresh one.
        """
        configured = ModelSet.from_config(models_config)
        models = ModelSet.from_bytes(fields[b"models"]) if b"models" in fields else configured
        for kind, slot in configured.champions.items():
            models.champions.setdefault(kind, slot)  # a kind added since the checkpoint starts fresh
        for kind, slot in configured.challengers.items():
            current = models.challengers.get(kind)
            if current is None or current.version != slot.version:
                models.challengers[kind] = slot
        return cls(
            kpis.new_windows(serde.loads(fields[b"kpi"]) if b"kpi" in fields else None),
            voc.new_windows(serde.loads(fields[b"voc"]) if b"voc" in fields else None),
            models,
            models_dirty=b"models" not in fields,
        )
