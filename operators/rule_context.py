"""What a rule's condition sees: the customer's picture at one event.

:func:`context` builds the names a condition reads (see
:data:`operators.rulebook.ROOTS`). Everything that costs something to compute
(window totals, RFM, the ``derived`` values) is computed only when a
condition reads it, once per event.

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
``churn_risk``             the churn probability, once the model has learned enough
                           labels to be trusted (null before, and after a cancellation)
``churn_drivers``          the features driving the churn score, as text
``fraud_score``            anomaly score of *this* event (once the model is warm)
=========================  ==================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livesignals.contract import Event
from operators import views
from operators.profile import CustomerState
from operators.surveys import is_negative_survey

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ContextWindows:
    """The look-back windows of the derived contact values (from settings)."""

    context_ms: int = DAY_MS
    repeat_ms: int = DAY_MS


class _Lazy(dict[str, Any]):
    """A context entry computed only when a condition reads it, then kept for the event."""

    def __init__(self, compute: Callable[[], dict[str, Any]], missing: Any = None) -> None:
        super().__init__()
        self._compute = compute
        self._missing = missing
        self._value: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        if self._value is None:
            self._value = self._compute()
        return self._value.get(key, self._missing)


class _LazyFields(dict[str, Any]):
    """Each field computed on first read (conditions usually read one or two)."""

    def __init__(self, fields: dict[str, Callable[[], Any]]) -> None:
        super().__init__()
        self._fields = fields
        self._values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._values:
            compute = self._fields.get(key)
            self._values[key] = compute() if compute is not None else default
        return self._values[key]


def context(state: CustomerState, event: Event, windows: ContextWindows = ContextWindows()) -> dict[str, Any]:
    """What a condition sees for this event (windows, RFM and derived values computed on demand)."""
    now = event.event_time_ms
    p = event.payload
    inbound = event.is_contact and p.get("direction", "inbound") == "inbound"

    def oldest_case_days() -> float:
        cases = state.activity.get("open_cases", {}).values()
        return max(((now - c["opened"]) / DAY_MS for c in cases), default=0.0)

    def vip() -> bool:
        loyalty = state.value.get("loyalty") or {}
        return state.value.get("spend", 0.0) >= 2000 or loyalty.get("tier") in ("gold", "platinum")

    def carried() -> dict[str, Any] | None:
        touch = views.context_carried(state, event.channel, now, windows.context_ms) if inbound else None
        return None if touch is None else {**touch, "summary": _carried_summary(touch)}

    def contact_topic() -> str | None:
        if p.get("topic"):
            return str(p["topic"])
        recent = [c for c in state.recent_contacts if 0 <= now - c[0] <= windows.repeat_ms and c[2]]
        return recent[-1][2] if recent else None

    def same_topic_contacts() -> int:
        topic = derived.get("contact_topic")
        return sum(
            1 for c in state.recent_contacts
            if 0 <= now - c[0] <= windows.repeat_ms and (topic is None or c[2] in (topic, None))
        )  # fmt: skip

    def churn_risk() -> float | None:
        churn = state.predictions.get("churn")
        return churn["p"] if churn and churn.get("warm") and not churn.get("cancelled") else None

    def fraud_score() -> float | None:
        fraud = state.predictions.get("fraud")
        return fraud["score"] if fraud and fraud.get("t") == now and fraud.get("warm") else None

    derived = _LazyFields({
        "lifetime_value": lambda: views.lifetime_value(state, now),
        "vip": vip,
        "cart_abandoned": lambda: views.cart_abandoned(state, now) is not None,
        "oldest_case_days": oldest_case_days,
        "deliveries_in_trouble": lambda: sum(
            1 for d in state.activity.get("deliveries", {}).values() if d["status"] in ("delayed", "failed")
        ),
        "negative_survey": lambda: event.type == "survey" and is_negative_survey(p["kind"], p["score"]),
        "context_carried": carried,
        "contact_topic": contact_topic,
        "same_topic_contacts": same_topic_contacts,
        "churn_risk": churn_risk,
        "churn_drivers": lambda: ", ".join(n for n, _ in (state.predictions.get("churn") or {}).get("top", []))
        or "overall profile",
        "fraud_score": fraud_score,
    })  # fmt: skip

    def window(name: str) -> _Lazy:
        return _Lazy(lambda: state.windows.totals(name, now), missing=0)  # no events: 0, not null

    return {
        "event": {"type": event.type, "channel": event.channel, "payload": p, "time": now, "inbound": inbound},
        "identity": state.identity, "activity": state.activity, "history": state.history,
        "value": state.value, "consent": state.consent, "flags": state.flags,
        "predictions": state.predictions,
        "w1h": window("1h"), "w24h": window("24h"), "w7d": window("7d"), "w30d": window("30d"),
        "rfm": _Lazy(lambda: views.rfm(state, now)), "derived": derived,
    }  # fmt: skip


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
