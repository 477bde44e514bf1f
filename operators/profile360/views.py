"""The 360's three tenses, derived from a customer's facts at a given time.

Nothing here is stored: it depends on ``now``. The 360 reader
(:mod:`state.reader`) and the rules call these functions.

* **past** -- a short summary of the history;
* **present** -- who this is and *why they are contacting us now*: a ranked
  list of likely contact reasons, and the context carried over from a recent
  touch on another channel;
* **future** -- the models' predictions (churn, negotiation, up-sell), as slots.
"""

from __future__ import annotations

from typing import Any

from livesignals.contract import CONTACT_CHANNELS
from operators.profile360.profile import CustomerState
from operators.profile360.surveys import is_negative_survey

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
CART_ABANDONED_AFTER_MS = 30 * MINUTE_MS
EXPECTED_LIFETIME_MONTHS = 24
"""Horizon of the simple lifetime-value figure."""


def context_carried(state: CustomerState, channel: str, now_ms: int, window_ms: int = DAY_MS) -> dict[str, Any] | None:
    """The latest touch on *another* contact channel within ``window_ms`` before ``now_ms``.

    When a customer who posted on social media 12 minutes ago now calls, this
    returns the social touch, so the agent need not ask again.
    """
    best: dict[str, Any] | None = None
    for other, touch in state.history.get("touch", {}).items():
        if other == channel or other not in CONTACT_CHANNELS:
            continue
        age = now_ms - touch["t"]
        if 0 <= age <= window_ms and (best is None or touch["t"] > best["t"]):
            best = {"channel": other, **touch, "minutes_ago": age // MINUTE_MS}
    return best


def cart_abandoned(state: CustomerState, now_ms: int) -> dict[str, Any] | None:
    """The cart, if items were added, nothing was ordered, and it has sat for 30 minutes."""
    cart = state.activity.get("cart")
    if cart and cart.get("items") and now_ms - cart.get("last", 0) >= CART_ABANDONED_AFTER_MS:
        return cart
    return None


def why_now(state: CustomerState, now_ms: int) -> list[dict[str, Any]]:
    """Likely reasons for contacting us now, most likely first.

    Each reason: ``{"reason": code, "detail": text, "evidence": [...]}``.
    """
    a = state.activity
    reasons: list[dict[str, Any]] = []
    for case_id, case in sorted(a.get("open_cases", {}).items(), key=lambda kv: -kv[1]["t"]):
        days = (now_ms - case["opened"]) / DAY_MS
        reasons.append(_reason("open_case", f"case {case_id} about {case.get('topic', 'an issue')} "
                               f"open for {days:.1f} days", case_id))  # fmt: skip
    for order_id, d in a.get("deliveries", {}).items():
        if d["status"] in ("delayed", "failed", "returned") and now_ms - d["t"] <= 14 * DAY_MS:
            reasons.append(_reason("delivery_problem", f"delivery of order {order_id} {d['status']}", order_id))
    for channel, touch in sorted(state.history.get("touch", {}).items(), key=lambda kv: -kv[1]["t"]):
        if (
            channel in CONTACT_CHANNELS
            and touch.get("outcome") in ("unresolved", "escalated", "abandoned", "transferred")
            and 0 <= now_ms - touch["t"] <= 2 * DAY_MS
        ):
            about = f" about {touch['topic']}" if touch.get("topic") else ""
            reasons.append(
                _reason(
                    "unresolved_contact",
                    f"{touch['outcome']} {channel} contact{about} {_ago(now_ms - touch['t'])} ago",
                    touch["event_id"],
                )
            )
    errors = [e for e in a.get("errors", []) if now_ms - e[0] <= DAY_MS]
    if errors:
        codes = sorted({str(e[1]) for e in errors})
        reasons.append(
            _reason(
                "recent_errors",
                f"{len(errors)} errors in the last 24 h ({', '.join(codes)})",
                *codes,
            )
        )
    cart = cart_abandoned(state, now_ms)
    if cart:
        reasons.append(_reason("abandoned_cart", f"abandoned cart with {len(cart['items'])} items", *cart["items"]))
    for order_id, o in a.get("open_orders", {}).items():
        if now_ms - o["t"] <= 7 * DAY_MS and order_id not in a.get("deliveries", {}):
            reasons.append(_reason("order_status", f"order {order_id} placed {_ago(now_ms - o['t'])} ago", order_id))
    for kind, s in state.history.get("surveys", {}).items():
        if is_negative_survey(kind, s["last"]) and now_ms - s["t"] <= 7 * DAY_MS:
            reasons.append(_reason("negative_survey", f"{kind} answer {s['last']:g} {_ago(now_ms - s['t'])} ago"))
    ret = a.get("last_return")
    if ret and now_ms - ret["t"] <= 14 * DAY_MS:
        reasons.append(
            _reason(
                "return_refund",
                f"return of order {ret['order_id']} ({ret['status']})",
                ret["order_id"],
            )
        )
    camp = state.history.get("campaigns", {}).get("last")
    if camp and now_ms - camp["t"] <= 3 * DAY_MS:
        reasons.append(_reason("campaign", f"campaign {camp['id']} {_ago(now_ms - camp['t'])} ago", str(camp["id"])))
    return reasons


def rfm(state: CustomerState, now_ms: int) -> dict[str, Any]:
    """Recency (days since last order), frequency (orders), monetary (net spend)."""
    v = state.value
    last = v.get("last_order")
    return {
        "recency_days": round((now_ms - last) / DAY_MS, 1) if last else None,
        "frequency": v.get("orders", 0),
        "monetary": round(v.get("spend", 0.0) - v.get("refunded", 0.0), 2),
    }


def lifetime_value(state: CustomerState, now_ms: int) -> float:
    """Simple LTV: net spend so far + monthly net spend rate x the expected lifetime.

    The rate is net spend over tenure (at least one month); a deliberately
    plain figure that a data scientist can replace with a model.
    """
    first = state.identity.get("first_seen") or now_ms
    months = max(1.0, (now_ms - first) / (30 * DAY_MS))
    net = state.value.get("spend", 0.0) - state.value.get("refunded", 0.0)
    return round(net + net / months * EXPECTED_LIFETIME_MONTHS, 2)


def past(state: CustomerState, now_ms: int) -> dict[str, Any]:
    """A short summary of the history, plus one line an agent can read aloud."""
    ident, h, v = state.identity, state.history, state.value
    first = ident.get("first_seen")
    tenure_days = round((now_ms - first) / DAY_MS, 1) if first else 0
    contacts_30d = state.windows.query("contacts", "30d", now_ms)
    channels = sorted((h.get("by_channel") or {}).items(), key=lambda kv: -kv[1])
    line = (f"customer for {tenure_days:g} days; {v.get('orders', 0)} orders "
            f"({v.get('spend', 0.0):.2f} spent, {v.get('returns', 0)} returns); "
            f"{contacts_30d} contacts in 30 days")  # fmt: skip
    return {
        "summary": line, "tenure_days": tenure_days, "contacts": h.get("contacts", 0),
        "contacts_30d": contacts_30d, "top_channels": [c for c, _ in channels[:3]],
        "cases": h.get("cases", {}), "campaigns": h.get("campaigns", {}), "surveys": h.get("surveys", {}),
    }  # fmt: skip


def present(state: CustomerState, now_ms: int, channel: str | None = None) -> dict[str, Any]:
    """Who this is and why they are contacting us now (``channel``: where they are now)."""
    reasons = why_now(state, now_ms)
    if channel is None:
        latest = max(state.history.get("touch", {}).items(), key=lambda kv: kv[1]["t"], default=None)
        channel = latest[0] if latest else None
    return {
        "why_now": reasons[0] if reasons else None,
        "reasons": reasons,
        "context_carried": context_carried(state, channel, now_ms) if channel else None,
        "activity": state.activity,
        "active_flags": {k: f for k, f in state.flags.items() if f.get("expires_at", 0) > now_ms},
    }


def future(state: CustomerState) -> dict[str, Any]:
    """The models' predictions; ``None`` where no model has scored yet."""
    p = state.predictions
    out = {slot: p.get(slot) for slot in ("churn", "negotiation", "upsell", "mood")}
    nba = p.get("next_best_actions")
    out["next_best_actions"] = nba and {
        **nba,
        "ranked": [dict(zip(("action", "score", "propensity", "reason"), row, strict=True)) for row in nba["ranked"]],
    }
    return out


def _reason(code: str, detail: str, *evidence: str) -> dict[str, Any]:
    return {"reason": code, "detail": detail, "evidence": list(evidence)}


def _ago(ms: int) -> str:
    if ms < HOUR_MS:
        return f"{ms // MINUTE_MS} min"
    if ms < DAY_MS:
        return f"{ms / HOUR_MS:.1f} h"
    return f"{ms / DAY_MS:.1f} days"
