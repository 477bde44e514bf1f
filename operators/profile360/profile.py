"""The facts LiveSignals keeps live for each customer, in the 360's sections.

:class:`CustomerState` holds *facts* only; everything that depends on the
time of reading (why the customer is contacting us now, recency, RFM,
lifetime value, window values, "context carried") is derived from it by
:mod:`operators.profile360.views`. The whole state is stored as one compact JSON
document (one string key): one encode and one cheap write per customer and
batch, and a fraction of the memory of a hash with a field per section.

Sections (issue 3, the seeds' "360 snapshot"):

* ``identity`` -- identifiers seen (by kind), attributes from profile updates,
  first/last seen, language, merges (identifiers linked, when, by which event);
* ``relationships`` -- links to other people or organisations from profile updates;
* ``activity`` -- the present: open orders, deliveries in flight, open cases,
  recent errors, the cart;
* ``history`` -- counts by channel and type, campaigns, cases, surveys, offers,
  and the last touchpoint per channel (topic, outcome) for omnichannel continuity;
* ``value`` -- orders, spend, returns, refunds, products held, loyalty;
* ``consent`` -- per purpose (marketing, service, profiling);
* ``flags`` -- flags currently raised;
* ``predictions`` -- the future, filled by the online models (churn, negotiation,
  up-sell, mood) -- empty slots until then;
* ``windows`` -- event-time window buckets (:mod:`operators.profile360.windows`);
* ``applied`` -- last applied offset per ``topic:partition`` (replays are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from livesignals.contract import Event
from operators.profile360.windows import Windows

SECTIONS = (
    "identity", "relationships", "activity", "history", "value", "consent",
    "flags", "predictions", "recent_contacts", "applied", "timeline_meta",
)  # fmt: skip
"""Keys of the stored document holding a section as is (``windows`` and ``events`` apart)."""


@dataclass
class CustomerState:
    """Live facts about one customer (see the module docstring for the sections).

    >>> s = CustomerState("customer_id:c1")
    >>> CustomerState.from_bytes("customer_id:c1", s.to_bytes()) == s
    True
    """

    customer_key: str
    events: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    relationships: dict[str, Any] = field(default_factory=dict)
    activity: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    value: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, bool] = field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    recent_contacts: list[list[Any]] = field(default_factory=list)
    """``[time_ms, channel, topic, event_id]`` of the last inbound contacts, oldest first."""
    windows: Windows = field(default_factory=Windows)
    applied: dict[str, int] = field(default_factory=dict)
    timeline_meta: dict[str, int] = field(default_factory=dict)
    """Upkeep of the timeline key: ``n``, an upper bound of its entries (replays only
    overcount), and ``ttl_day``, the event day its TTL was last refreshed."""
    new_links: list[str] = field(default_factory=list, compare=False)
    """Identifiers linked by events of the current batch (written by the store, not kept)."""
    new_timeline: list[tuple[int, bytes]] = field(default_factory=list, compare=False)
    """Timeline entries of the current batch (written by the store, not kept)."""

    def already_applied(self, event: Event) -> bool:
        """True when this event's offset was applied before (a replay)."""
        o = event.origin
        return self.applied.get(f"{o.topic}:{o.partition}", -1) >= o.offset

    def to_bytes(self) -> bytes:
        """The stored document (compact JSON)."""
        doc: dict[str, Any] = {name: getattr(self, name) for name in SECTIONS}
        doc["events"] = self.events
        doc["windows"] = self.windows.to_json()
        return serde.dumps(doc)

    @classmethod
    def from_bytes(cls, customer_key: str, data: bytes | None) -> CustomerState:
        """Rebuild from the stored document; ``None`` (no such key) gives a new customer."""
        state = cls(customer_key)
        if not data:
            return state
        doc = serde.loads(data)
        for name in SECTIONS:
            if name in doc:
                setattr(state, name, doc[name])
        state.events = doc.get("events", 0)
        state.windows = Windows.from_json(doc.get("windows"))
        return state
