"""The per-customer state the engine keeps live, and how one event updates it.

:class:`CustomerState` is plain data with a flat, compact mapping to a Redis
hash (:meth:`CustomerState.to_fields` / :meth:`CustomerState.from_fields`).
:func:`apply_event` is the only writer. Values are absolute (never
increments), so re-writing a state is idempotent; the ``applied`` offsets make
replays skippable (see :meth:`CustomerState.already_applied`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from livesignals.contract import Event

MAX_RECENT_CONTACTS = 20
"""Recent contacts kept for the repeat-contact rule (time, channel, topic)."""


@dataclass
class CustomerState:
    """Live figures for one customer.

    >>> s = CustomerState("customer_id:c1")
    >>> CustomerState.from_fields("customer_id:c1", s.to_fields()) == s
    True
    """

    customer_key: str
    events: int = 0
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    counts_by_channel: dict[str, int] = field(default_factory=dict)
    counts_by_type: dict[str, int] = field(default_factory=dict)
    last_by_channel: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Last interaction per channel: time, type, topic, event id."""
    orders: int = 0
    spend: float = 0.0
    last_order_ms: int = 0
    returns: int = 0
    refunded: float = 0.0
    recent_contacts: list[list[Any]] = field(default_factory=list)
    """``[time_ms, channel, topic]`` of the last contacts, oldest first."""
    consent: dict[str, bool] = field(default_factory=dict)
    """Per purpose (marketing, service, profiling); absent means not withdrawn."""
    active_flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Flags currently raised: name -> id, severity, raised and expiry times."""
    applied: dict[str, int] = field(default_factory=dict)
    """Last applied offset per ``topic:partition``: replays below it are skipped."""

    _JSON_FIELDS = (
        "counts_by_channel",
        "counts_by_type",
        "last_by_channel",
        "recent_contacts",
        "consent",
        "active_flags",
        "applied",
    )
    _INT_FIELDS = ("events", "first_seen_ms", "last_seen_ms", "orders", "last_order_ms", "returns")
    _FLOAT_FIELDS = ("spend", "refunded")

    def already_applied(self, event: Event) -> bool:
        """True when this event's offset was applied before (a replay)."""
        o = event.origin
        return self.applied.get(f"{o.topic}:{o.partition}", -1) >= o.offset

    def to_fields(self) -> dict[str, str]:
        """The Redis hash fields (compact JSON for nested values)."""
        out = {name: str(getattr(self, name)) for name in self._INT_FIELDS + self._FLOAT_FIELDS}
        for name in self._JSON_FIELDS:
            out[name] = serde.dumps(getattr(self, name)).decode()
        return out

    @classmethod
    def from_fields(
        cls, customer_key: str, fields: dict[bytes | str, bytes | str]
    ) -> CustomerState:
        """Rebuild from a Redis hash; missing fields take their defaults."""
        state = cls(customer_key)
        text = {_s(k): _s(v) for k, v in fields.items()}
        for name in cls._INT_FIELDS:
            if name in text:
                setattr(state, name, int(text[name]))
        for name in cls._FLOAT_FIELDS:
            if name in text:
                setattr(state, name, float(text[name]))
        for name in cls._JSON_FIELDS:
            if name in text:
                setattr(state, name, serde.loads(text[name]))
        return state


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def apply_event(state: CustomerState, event: Event) -> None:
    """Fold one valid event into the customer's state.

    >>> from livesignals.errors import Origin
    >>> ev = Event("e1", "order", "web", {"customer_id": "c1"}, 5000,
    ...            {"order_id": "o1", "amount": 40.0}, Origin("in", 0, 9))
    >>> s = CustomerState("customer_id:c1"); apply_event(s, ev)
    >>> (s.events, s.orders, s.spend, s.already_applied(ev))
    (1, 1, 40.0, True)
    """
    t = event.event_time_ms
    p = event.payload
    state.events += 1
    state.first_seen_ms = min(state.first_seen_ms or t, t)
    state.last_seen_ms = max(state.last_seen_ms, t)
    _bump(state.counts_by_channel, event.channel)
    _bump(state.counts_by_type, event.type)

    last = state.last_by_channel.get(event.channel)
    if last is None or last["t"] <= t:
        state.last_by_channel[event.channel] = {
            "t": t,
            "type": event.type,
            "topic": p.get("topic") or p.get("action"),
            "event_id": event.event_id,
        }

    if event.type == "order" and p.get("status", "placed") in ("placed", "paid"):
        state.orders += 1
        state.spend += float(p["amount"])
        state.last_order_ms = max(state.last_order_ms, t)
    elif event.type == "return":
        state.returns += 1
        state.refunded += float(p["amount"])
    elif event.type == "consent":
        state.consent[p["purpose"]] = bool(p["granted"])

    if event.is_contact and p.get("direction", "inbound") == "inbound":
        state.recent_contacts.append([t, event.channel, p.get("topic")])
        state.recent_contacts.sort(key=lambda c: c[0])
        del state.recent_contacts[:-MAX_RECENT_CONTACTS]

    o = event.origin
    state.applied[f"{o.topic}:{o.partition}"] = o.offset


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1
