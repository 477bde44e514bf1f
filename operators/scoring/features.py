"""Model features derived from a customer's facts (plain dicts of floats)."""

from __future__ import annotations

from livesignals.contract import Event
from operators.profile360.profile import CustomerState
from operators.profile360.surveys import is_negative_survey

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


CHURN_FEATURES = (
    "days_since_order", "orders_30d", "spend_30d", "events_7d", "contacts_7d", "contacts_24h",
    "complaints_30d", "errors_7d", "open_cases", "delivery_problems", "return_ratio",
    "negative_surveys", "mood", "offers_rejected", "marketing_opt_out",
)  # fmt: skip
"""The churn features, in the order :func:`churn_features` returns them (snapshots store values only)."""


def churn_features(state: CustomerState, now_ms: int) -> dict[str, float]:
    """What the churn model sees: activity, value, friction and mood over recent windows."""
    v, a = state.value, state.activity
    d30, d7 = state.windows.totals("30d", now_ms), state.windows.totals("7d", now_ms)
    h24 = state.windows.totals("24h", now_ms)
    last_order = v.get("last_order")
    mood = state.predictions.get("mood") or {}
    surveys = state.history.get("surveys", {})

    negative_surveys = sum(1 for kind, s in surveys.items() if is_negative_survey(kind, s["last"]))
    return {
        "days_since_order": min(365.0, (now_ms - last_order) / DAY_MS) if last_order else 365.0,
        "orders_30d": float(d30.get("orders", 0)),
        "spend_30d": float(d30.get("spend", 0.0)),
        "events_7d": float(d7.get("events", 0)),
        "contacts_7d": float(d7.get("contacts", 0)),
        "contacts_24h": float(h24.get("contacts", 0)),
        "complaints_30d": float(d30.get("complaints", 0)),
        "errors_7d": float(d7.get("errors", 0)),
        "open_cases": float(len(a.get("open_cases", {}))),
        "delivery_problems": float(sum(1 for d in a.get("deliveries", {}).values() if d["status"] != "shipped")),
        "return_ratio": v.get("returns", 0) / max(1, v.get("orders", 0)),
        "negative_surveys": float(negative_surveys),
        "mood": float(mood.get("avg", 0.0)),
        "offers_rejected": float(state.history.get("offers", {}).get("rejected", 0)),
        "marketing_opt_out": 1.0 if state.consent.get("marketing") is False else 0.0,
    }


MAX_ACTIONS_REMEMBERED = 16


def offer_history(state: CustomerState, action: str) -> list[int]:
    """``[answered, accepted]``: this customer's responses to ``action`` so far (expiries count as answers)."""
    history: list[int] = state.history.get("offers_by_action", {}).get(action, [0, 0])
    return history


def record_response(state: CustomerState, action: str, accepted: bool) -> None:
    """Count a response to ``action`` in the customer's history (a few actions kept per customer)."""
    by_action = state.history.setdefault("offers_by_action", {})
    if action not in by_action and len(by_action) >= MAX_ACTIONS_REMEMBERED:
        return
    answered, yes = by_action.get(action, [0, 0])
    by_action[action] = [answered + 1, yes + int(accepted)]


def response_features(history: list[int]) -> dict[str, float]:
    """The customer's own record with one action, for its propensity (the strongest signal once known).

    >>> response_features([3, 1])
    {'past_offers': 3.0, 'past_accepts': 1.0, 'past_accept_rate': 0.275}
    """
    answered, accepted = history
    return {
        "past_offers": float(answered),
        "past_accepts": float(accepted),
        "past_accept_rate": (accepted + 0.1) / (answered + 1.0),
    }


def fraud_features(state: CustomerState, event: Event) -> dict[str, float]:
    """What the anomaly model sees for an order, a return or an account change."""
    p, v, now = event.payload, state.value, event.event_time_ms
    amount = float(p.get("amount", 0.0) or 0.0)
    average = v.get("spend", 0.0) / v["orders"] if v.get("orders") else amount or 1.0
    merges = state.identity.get("merges", [])
    return {
        "amount": amount,
        "amount_ratio": amount / average if average else 1.0,
        "orders_1h": float(state.windows.query("orders", "1h", now)),
        "return_ratio": v.get("returns", 0) / max(1, v.get("orders", 0)),
        "new_identity_1h": 1.0 if merges and now - merges[-1]["t"] <= HOUR_MS else 0.0,
        "account_change": 1.0 if event.type in ("profile_update", "consent") else 0.0,
        "hour_of_day": (now // HOUR_MS % 24) / 23.0,
    }
