"""What the engine emits: live flags for agent desktops, triggers for marketing.

Both carry deterministic ids (derived from the customer, the signal and the
Kafka position of the event that caused it), so a replay after a crash
re-emits the same ids and consumers can deduplicate. Their JSON shapes are
published as ``livesignals/schemas/flag-v1.json`` and ``trigger-v1.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from livesignals.contract import Event


@dataclass(frozen=True, slots=True)
class Flag:
    """A live flag on a customer, raised by one event."""

    flag_id: str
    customer_key: str
    name: str
    severity: str
    reason: str
    evidence: tuple[str, ...]
    raised_at_ms: int
    expires_at_ms: int
    source_timestamp_ms: int
    """Kafka timestamp of the triggering message: flag latency is measured from it."""
    cleared: bool = False
    """True for the record that clears a flag (hysteresis, expiry)."""
    relevance: float | None = None
    """Chance agents find this flag relevant for this customer (learned from their verdicts)."""

    def to_json(self) -> dict[str, Any]:
        """The published flag document (``flag-v1.json``)."""
        return {
            "schema_version": 1,
            "flag_id": self.flag_id,
            "customer": self.customer_key,
            "flag": self.name,
            "severity": self.severity,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "raised_at": self.raised_at_ms,
            "expires_at": self.expires_at_ms,
            "source_timestamp": self.source_timestamp_ms,
            "state": "cleared" if self.cleared else "raised",
            "relevance": self.relevance,
        }


@dataclass(frozen=True, slots=True)
class Trigger:
    """A next-best-action trigger for marketing systems.

    ``trigger_id`` is the id of the decision that chose the action: systems
    send it back as ``decision_id`` in the customer's ``offer_response``.
    """

    trigger_id: str
    customer_key: str
    action: str
    channel: str
    reasons: tuple[str, ...]
    created_at_ms: int
    expires_at_ms: int
    evidence: tuple[str, ...] = field(default=())
    purpose: str = "marketing"
    """Consent purpose the action needs: ``marketing`` or ``service``."""
    score: float | None = None
    propensity: float | None = None
    alternatives: tuple[dict[str, Any], ...] = ()
    """The other top-ranked candidates (action, score, reason), best first."""
    item: str | None = None
    """What exactly to offer, when the action names it (a product id)."""

    def to_json(self) -> dict[str, Any]:
        """The published trigger document (``trigger-v1.json``)."""
        return {
            "schema_version": 1,
            "trigger_id": self.trigger_id,
            "customer": self.customer_key,
            "action": self.action,
            "channel": self.channel,
            "reasons": list(self.reasons),
            "created_at": self.created_at_ms,
            "expires_at": self.expires_at_ms,
            "evidence": list(self.evidence),
            "purpose": self.purpose,
            "score": self.score,
            "propensity": self.propensity,
            "alternatives": list(self.alternatives),
            "item": self.item,
        }


def new_flag(
    event: Event,
    name: str,
    severity: str,
    reason: str,
    ttl_ms: int,
    evidence: tuple[str, ...] = (),
    cleared: bool = False,
) -> Flag:
    """A flag raised (or cleared) by ``event``; its id depends only on the event and the flag name."""
    o = event.origin
    kind = "flag-cleared" if cleared else "flag"
    return Flag(
        flag_id=serde.deterministic_id(kind, event.customer_key, name, o.topic, o.partition, o.offset, o.timestamp_ms),
        customer_key=event.customer_key,
        name=name,
        severity=severity,
        reason=reason,
        evidence=evidence or (event.event_id,),
        raised_at_ms=event.event_time_ms,
        expires_at_ms=event.event_time_ms + ttl_ms,
        source_timestamp_ms=o.timestamp_ms,
        cleared=cleared,
    )
