"""What a rule's condition sees: the customer's picture at one event.

:func:`context` builds the names a condition reads (see
:data:`operators.rules.rulebook.ROOTS`). Everything that costs something to compute
(window totals, RFM, the ``derived`` values) is computed only when a
condition reads it, once per event.

**Read at the customer's present.** Windows (``w1h`` ...), RFM and the
customer-wide ``derived`` values are read at ``present``, the customer's
newest event time at the event's input position (:mod:`operators.lateness`:
for a customer whose events share one Kafka key, its newest event time) --
not at the event's own time: a page view arriving 3 h
late must not make "the last hour" the hour three hours ago. Values about
*this* contact (``context_carried``, ``contact_topic``,
``same_topic_contacts``) and ``fraud_score`` (this event's score) stay at the
event's time; ``event.time`` is the event's own time.

``derived`` holds values no single profile field has:

=========================  ==================================================
``lifetime_value``         simple lifetime-value figure (:func:`views.lifetime_value`)
``vip``                    lifetime spend >= 2,000 or a gold/platinum loyalty tier
``cart_abandoned``         items in the cart, no order, idle 30 minutes
``oldest_case_days``       age of the oldest open case
``deliveries_in_trouble``  deliveries in flight that are delayed or failed
``negative_survey``        this event is a negative survey answer
``context_carried``        on an inbound contact: the latest touch on another
                           contact channel within the context window (with
                           ``summary``, ``event_id``, ``topic``, ``outcome``)
``contact_topic``          this contact's topic, else the latest recent one
``same_topic_contacts``    inbound contacts on ``contact_topic`` within the
                           repeat window (all contacts when no topic is known)
``product_to_offer``       the most recently viewed product (7 days) the customer does not hold
``churn_risk``             the churn probability, once the model has learned enough
                           labels to be trusted (null before, and after a cancellation)
``churn_drivers``          the features driving the churn score, as text
``fraud_score``            anomaly rank of *this* event among recent ones (once the model is warm)
=========================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livesignals.contract import CONTACT_TYPES, Event
from operators.profile360 import views
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import stored
from operators.profile360.surveys import is_negative_survey
from operators.profile360.windows import METRICS, Windows

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ContextWindows:
    """The look-back windows of the derived contact values (from settings)."""

    context_ms: int = DAY_MS
    repeat_ms: int = DAY_MS


class _Window(dict[str, Any]):
    """One window's metrics: totals in one pass on first read, distinct counts on demand, 0 when absent.

    Built by :func:`_window`, which sets its fields (no ``__init__`` of its own, as :class:`_Derived`)."""

    __slots__ = ("_distinct", "_name", "_now", "_totals", "_windows")  # no instance dict beside the dict itself

    _windows: Windows
    _name: str
    _now: int
    _totals: dict[str, Any] | None
    _distinct: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        if self._totals is None:
            self._totals = self._windows.totals(self._name, self._now)
        value = self._totals.get(key)
        if value is not None:
            return value
        if METRICS.get(key) != "distinct":
            return 0
        if key not in self._distinct:
            self._distinct[key] = self._windows.query(key, self._name, self._now)
        return self._distinct[key]


class _Derived(dict[str, Any]):
    """The ``derived`` values of one event, each computed on first read (see the module docstring).

    Built by :func:`_derived` (no ``__init__``, as :class:`_Window`)."""

    __slots__ = ("at", "cache", "event", "inbound", "now", "state", "windows")

    state: CustomerState
    event: Event
    inbound: bool
    windows: ContextWindows
    now: int
    """The customer's present (newest event time): customer-wide values are read at it."""
    at: int
    """This event's time: values about this contact are read at it."""
    cache: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        values = self.cache
        if key in values:
            return values[key]
        compute = _DERIVED.get(key)
        value = values[key] = compute(self) if compute is not None else default
        return value

    def lifetime_value(self) -> float:
        return views.lifetime_value(self.state, self.now)

    def vip(self) -> bool:
        v = self.state.value
        return v.get("spend", 0.0) >= 2000 or (v.get("loyalty") or {}).get("tier") in ("gold", "platinum")

    def cart_abandoned(self) -> bool:
        return views.cart_abandoned(self.state, self.now) is not None

    def oldest_case_days(self) -> float:
        cases = self.state.activity.get("open_cases")
        if not cases:  # most customers: read on every event (case_open_too_long)
            return 0.0
        return max(((self.now - c["opened"]) / DAY_MS for c in cases.values()), default=0.0)

    def deliveries_in_trouble(self) -> int:
        deliveries = self.state.activity.get("deliveries", {}).values()
        return sum(1 for d in deliveries if d["status"] in ("delayed", "failed"))

    def negative_survey(self) -> bool:
        e = self.event
        return e.type == "survey" and is_negative_survey(e.payload["kind"], e.payload["score"])

    def context_carried(self) -> dict[str, Any] | None:
        if not self.inbound:
            return None
        touch = views.context_carried(self.state, self.event.channel, self.at, self.windows.context_ms)
        return None if touch is None else {**touch, "summary": _carried_summary(touch)}

    def contact_topic(self) -> str | None:
        topic = self.event.payload.get("topic")
        if topic:
            return stored(str(topic))  # as recent contacts keep it (sizes.py): a long topic still matches
        since = self.at - self.windows.repeat_ms
        recent = [c for c in self.state.recent_contacts if since <= c[0] <= self.at and c[2]]
        return recent[-1][2] if recent else None

    def same_topic_contacts(self) -> int:
        topic, since = self.get("contact_topic"), self.at - self.windows.repeat_ms
        return sum(
            1 for c in self.state.recent_contacts
            if since <= c[0] <= self.at and (topic is None or c[2] in (topic, None))
        )  # fmt: skip

    def product_to_offer(self) -> str | None:
        held = self.state.value.get("products", [])
        since = (self.now // DAY_MS - 6) * DAY_MS  # the 7d window: UTC days including today
        viewed = self.state.activity.get("viewed", [])
        return next((p for p, t in reversed(viewed) if since <= t <= self.now and p not in held), None)

    def churn_risk(self) -> float | None:
        churn = self.state.predictions.get("churn")
        return churn["p"] if churn and churn.get("warm") and not churn.get("cancelled") else None

    def churn_drivers(self) -> str:
        top = (self.state.predictions.get("churn") or {}).get("top", [])
        return ", ".join(name for name, _ in top) or "overall profile"

    def fraud_score(self) -> float | None:
        fraud = self.state.predictions.get("fraud")
        return fraud["score"] if fraud and fraud.get("t") == self.at and fraud.get("warm") else None


_DERIVED = {
    name: getattr(_Derived, name)
    for name in (
        "lifetime_value", "vip", "cart_abandoned", "oldest_case_days", "deliveries_in_trouble", "negative_survey",
        "context_carried", "contact_topic", "same_topic_contacts", "product_to_offer", "churn_risk",
        "churn_drivers", "fraud_score",
    )
}  # fmt: skip
DERIVED_NAMES = frozenset(_DERIVED)
"""The names under ``derived``."""


class _Context(dict[str, Any]):
    """The condition context: the cheap roots up front, the costly ones built on first read (one per event)."""

    __slots__ = ("_event", "_kind", "_present", "_state", "_windows")
    _state: CustomerState
    _event: Event
    _windows: ContextWindows
    _present: int
    _kind: tuple[str, str, bool]

    def __missing__(self, root: str) -> Any:
        state, now = self._state, self._present
        if root == "derived":
            value: Any = _derived(state, self._event, self._kind[2], self._windows, now)
        elif root in _WINDOW_ROOTS:
            value = _window(state.windows, _WINDOW_ROOTS[root], now)
        elif root == "rfm":
            value = views.rfm(state, now)
        else:
            raise KeyError(root)
        self[root] = value
        return value


_WINDOW_ROOTS = {"w1h": "1h", "w24h": "24h", "w7d": "7d", "w30d": "30d"}


def context(
    state: CustomerState, event: Event, windows: ContextWindows = ContextWindows(), present: int | None = None
) -> dict[str, Any]:
    """What a condition sees for this event (windows, RFM and derived values built on first read).

    ``present`` is the customer's newest event time (default: the event's own time).
    """
    now, p, etype, channel = event.event_time_ms, event.payload, event.type, event.channel
    inbound = etype in CONTACT_TYPES and p.get("direction", "inbound") == "inbound"  # Event.is_contact, inlined
    ctx = _Context()  # filled item by item: no keyword dict built and copied per event
    ctx["event"] = {"type": etype, "channel": channel, "payload": p, "time": now, "inbound": inbound}
    ctx["identity"], ctx["activity"], ctx["history"] = state.identity, state.activity, state.history
    ctx["value"], ctx["consent"], ctx["flags"] = state.value, state.consent, state.flags
    ctx["predictions"] = state.predictions
    ctx._state, ctx._event, ctx._windows, ctx._kind = state, event, windows, (etype, channel, inbound)
    ctx._present = now if present is None else present
    return ctx


def _derived(state: CustomerState, event: Event, inbound: bool, windows: ContextWindows, present: int) -> _Derived:
    d = _Derived()
    d.state, d.event, d.inbound, d.windows, d.now, d.at, d.cache = (
        state, event, inbound, windows, present, event.event_time_ms, {}
    )  # fmt: skip
    return d


def _window(windows: Windows, name: str, now_ms: int) -> _Window:
    w = _Window()
    w._windows, w._name, w._now, w._totals, w._distinct = windows, name, now_ms, None, {}
    return w


def kind_of(ctx: dict[str, Any]) -> tuple[str, str, bool] | None:
    """The event's ``(type, channel, inbound)`` when :func:`context` built ``ctx`` (its ``derived`` values
    are then this module's: :mod:`operators.rules.guards` may fold them), else None."""
    return ctx._kind if type(ctx) is _Context else None


def _carried_summary(touch: dict[str, Any]) -> str:
    """``"social 12 min ago about billing (unresolved)"``."""
    etype, channel = touch["type"], touch["channel"]
    if etype == channel:
        how = channel
    elif etype in ("call", "chat", "email", "sms", "social"):
        how = f"{channel} {etype}"
    else:
        how = etype
    return (
        f"{how} {touch['minutes_ago']} min ago"
        + (f" about {touch['topic']}" if touch.get("topic") else "")
        + (f" ({touch['outcome']})" if touch.get("outcome") else "")
    )
