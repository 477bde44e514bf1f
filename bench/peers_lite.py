"""The "360-lite" workload of ``bench.peers``, in plain Python, for the peer frameworks.

One customer's state is a small JSON-serialisable dict: lifetime counters
(events, events by type, orders, spend), 5-minute buckets of events and errors
for the last hour and hourly buckets of spend for the last day (the same window
definition as :mod:`operators.profile360.windows`: the bucket holding the
customer's newest event time and the 11 / 23 before it), and the flags raised.
Three rules, the same as ``bench/peers_rules.toml`` gives LiveSignals:

* ``busy_hour``: 8+ events in the last hour (cleared at 2 or fewer, 1 h TTL);
* ``big_spender_day``: 300+ spent in the last 24 h (cleared under 100, 24 h TTL);
* ``errors_hour``: 2+ errors in the last hour (cleared at none, 4 h TTL).

A flag is published when raised and when cleared (hysteresis) or found
expired by a later event, as LiveSignals' rulebook does; each published flag
carries the Kafka timestamp of the event that caused it (``source_timestamp``).
Quix Streams (``bench.peers_quix``) and the Bytewax ``stateful_map`` flow
(``bench.peers_bytewax``) both call :func:`apply`, so they do the same work.

>>> state = new_state()
>>> out = [apply(state, "c1", {"type": "web_event", "event_time": 1000 + i, "payload": {"action": "error"}}, 5)
...        for i in range(8)]
>>> [f["flag"] for flags in out for f in flags]
['errors_hour', 'busy_hour']
>>> state["events"], sum(b[1] for b in state["b5"].values())
(8, 8)
"""

from __future__ import annotations

from typing import Any

FIVE_MIN_MS = 300_000
HOUR_MS = 3_600_000
ORDERED = ("placed", "paid")

RULES: tuple[tuple[str, int], ...] = (
    ("busy_hour", HOUR_MS),
    ("big_spender_day", 24 * HOUR_MS),
    ("errors_hour", 4 * HOUR_MS),
)
"""Flag name and time to live, in the order the rules are evaluated."""


def new_state() -> dict[str, Any]:
    """An empty customer state (string keys only: it round-trips through JSON)."""
    return {"events": 0, "types": {}, "orders": 0, "spend": 0.0, "now": 0, "b5": {}, "bh": {}, "flags": {}}


def _conditions(name: str, w1h_events: int, w1h_errors: int, w24h_spend: float) -> tuple[bool, bool]:
    """(raise, clear) of one rule."""
    if name == "busy_hour":
        return w1h_events >= 8, w1h_events <= 2
    if name == "big_spender_day":
        return w24h_spend >= 300, w24h_spend < 100
    return w1h_errors >= 2, w1h_errors == 0


def apply(state: dict[str, Any], key: str, event: dict[str, Any], source_timestamp: int) -> list[dict[str, Any]]:
    """Fold one decoded event of customer ``key`` into ``state`` (in place); return the flags it raises or clears."""
    t = int(event["event_time"])
    kind = event["type"]
    p = event.get("payload") or {}
    state["events"] += 1
    types = state["types"]
    types[kind] = types.get(kind, 0) + 1
    spend = 0.0
    if kind == "order" and p.get("status", "placed") in ORDERED:
        spend = float(p["amount"])
        state["orders"] += 1
        state["spend"] = round(state["spend"] + spend, 2)
    error = 1 if p.get("action") == "error" or (kind == "ticket" and p.get("error_code")) else 0
    now = state["now"] = max(state["now"], t)

    first5, firsth = now // FIVE_MIN_MS - 11, now // HOUR_MS - 23
    b5, bh = state["b5"], state["bh"]
    if t // FIVE_MIN_MS >= first5:
        cell = b5.setdefault(str(t // FIVE_MIN_MS), [0, 0])
        cell[0] += 1
        cell[1] += error
    if spend and t // HOUR_MS >= firsth:
        key = str(t // HOUR_MS)
        bh[key] = bh.get(key, 0.0) + spend
    for k in [k for k in b5 if int(k) < first5]:
        del b5[k]
    for k in [k for k in bh if int(k) < firsth]:
        del bh[k]
    w1h_events = sum(c[0] for c in b5.values())
    w1h_errors = sum(c[1] for c in b5.values())
    w24h_spend = sum(bh.values())

    flags = state["flags"]
    out: list[dict[str, Any]] = []
    for name, ttl in RULES:
        expires = flags.get(name)
        if expires is not None and expires <= t:
            del flags[name]
            out.append(_flag(key, name, "cleared", "expired", t, source_timestamp))
            expires = None
        raise_it, clear_it = _conditions(name, w1h_events, w1h_errors, w24h_spend)
        if expires is None:
            if raise_it:
                flags[name] = t + ttl
                reason = f"{w1h_events} events, {w1h_errors} errors in 1 h; {w24h_spend:.0f} spent in 24 h"
                out.append(_flag(key, name, "raised", reason, t, source_timestamp))
        elif clear_it:
            del flags[name]
            out.append(_flag(key, name, "cleared", "cleared", t, source_timestamp))
    return out


def _flag(key: str, name: str, state: str, reason: str, t: int, source_timestamp: int) -> dict[str, Any]:
    return {"customer": key, "flag": name, "state": state, "reason": reason,
            "raised_at": t, "source_timestamp": source_timestamp}  # fmt: skip
