"""The facts LiveSignals keeps live for each customer, in the 360's sections.

:class:`CustomerState` holds *facts* only; everything that depends on the
time of reading (why the customer is contacting us now, recency, RFM,
lifetime value, window values, "context carried") is derived from it by
:mod:`operators.views`. Each section is one field of the customer's Redis
hash (compact JSON), so a desktop can ``HGET`` just the section it needs.

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
* ``windows`` -- event-time window buckets (:mod:`operators.windows`);
* ``applied`` -- last applied offset per ``topic:partition`` (replays are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from livesignals.contract import Event
from operators.windows import Windows

SECTIONS = (
    "identity", "relationships", "activity", "history", "value", "consent",
    "flags", "predictions", "recent_contacts", "applied",
)  # fmt: skip
"""Hash fields holding a JSON section (``windows`` and ``events`` are handled apart)."""


@dataclass
class CustomerState:
    """Live facts about one customer (see the module docstring for the sections).

    >>> s = CustomerState("customer_id:c1")
    >>> CustomerState.from_fields("customer_id:c1", s.to_fields()) == s
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
    new_links: list[str] = field(default_factory=list, compare=False)
    """Identifiers linked by events of the current batch (written by the store, not kept)."""
    new_timeline: list[tuple[int, bytes]] = field(default_factory=list, compare=False)
    """Timeline entries of the current batch (written by the store, not kept)."""

    def already_applied(self, event: Event) -> bool:
        """True when this event's offset was applied before (a replay)."""
        o = event.origin
        return self.applied.get(f"{o.topic}:{o.partition}", -1) >= o.offset

    def to_fields(self) -> dict[str, str]:
        """The Redis hash fields (compact JSON per section)."""
        out = {name: serde.dumps(getattr(self, name)).decode() for name in SECTIONS}
        out["events"] = str(self.events)
        out["windows"] = serde.dumps(self.windows.to_json()).decode()
        return out

    @classmethod
    def from_fields(cls, customer_key: str, fields: dict[bytes | str, bytes | str]) -> CustomerState:
        """Rebuild from a Redis hash; missing fields take their defaults."""
        state = cls(customer_key)
        text = {_s(k): v for k, v in fields.items()}
        for name in SECTIONS:
            if name in text:
                setattr(state, name, serde.loads(text[name]))
        if "events" in text:
            state.events = int(text["events"])
        if "windows" in text:
            state.windows = Windows.from_json(serde.loads(text["windows"]))
        return state


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
