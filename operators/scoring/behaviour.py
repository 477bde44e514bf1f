"""Behaviour features for churn, in the terms a product team uses.

Per customer, the scoring room keeps daily counts of what the customer did
(``predictions.churn_activity``): every event, and per *behaviour* -- the
``action`` of an app or web event (``post``, ``like``, ``login``, ...) or the
type of any other event (``order``, ``call``, ...). From them:

* ``<behaviour>_7d`` and ``<behaviour>_30d`` -- ``log1p`` of the count over the
  last 7 and 30 days (log: one heavy user must not dominate a linear model);
* ``events_30d`` (log1p), ``active_days_30d`` (days with any event, 0-30);
* ``trend_7d`` -- last 7 days against the 7 before: ``(a - b) / (a + b + 1)``, -1..1;
* ``days_since_active`` -- the gap before the current event (recency), capped at 365;
* ``tenure_days`` -- since ``customer_since`` (profile attribute, epoch ms or
  ``YYYY-MM-DD``) or else the first event seen, capped at 3650.

Bounded: at most :data:`MAX_BEHAVIOURS` behaviour names per customer and
:data:`KEEP_DAYS` days. Beyond it a new name takes the slot of the least seen
one (space-saving counts in ``hits``, :mod:`models.slots`): its daily counts
start from zero and the pending snapshots forget its values, so twelve junk
actions sent first cannot lock a customer's real behaviours out. The churn
model bounds the feature names it learns the same way (``max_features``).

>>> from operators.profile360.profile import CustomerState
>>> from livesignals.contract import decode
>>> from livesignals.errors import Origin
>>> from livesignals import serde
>>> s = CustomerState("customer_id:c1")
>>> for day, action in [(0, "post"), (1, "like"), (9, "post")]:
...     doc = {"schema_version": 1, "event_id": f"e{day}", "type": "app_event", "channel": "app",
...            "customer": {"customer_id": "c1"}, "event_time": 1_767_225_600_000 + day * DAY_MS,
...            "payload": {"action": action}}
...     record(s, decode(serde.dumps(doc), Origin("in", 0, day), now_ms=4_000_000_000_000))
>>> f = features(s, 1_767_225_600_000 + 9 * DAY_MS)
>>> f["post_30d"] == math.log1p(2), f["post_7d"] == math.log1p(1), f["days_since_active"], f["trend_7d"]
(True, True, 8.0, -0.25)
"""

from __future__ import annotations

import functools
import math
from datetime import date
from typing import Any

from livesignals.contract import Event
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import stored
from operators.scoring.features import CHURN_FEATURES

DAY_MS = 86_400_000
MAX_BEHAVIOURS = 12
"""Behaviour names counted per customer (the most seen: a new one takes the least seen's slot)."""
KEEP_DAYS = 30
MAX_NAME = 32
FIXED = ("events_30d", "active_days_30d", "trend_7d", "days_since_active", "tenure_days")
"""The behaviour features every customer has, first and in this order; then two per behaviour name."""


RESERVED = frozenset(
    {"events", "orders", "spend", "contacts", "complaints", "errors", "active_days", "trend", "days_since",
     "tenure", "days_since_order", "open_cases", "delivery_problems", "return_ratio", "negative_surveys",
     "mood", "offers_rejected", "marketing_opt_out", "contacts_24h"}
)  # fmt: skip
"""Names whose ``_7d``/``_30d`` features the churn model already has (fixed or in
:data:`operators.scoring.features.CHURN_FEATURES`): an action of that name is counted as
``<name>_action`` so that two features never share a name (a snapshot would lose a value)."""


def behaviour_of(event: Event) -> str:
    """The behaviour an event counts as: an app/web ``action``, else the event type (lower case, short).

    >>> from tests.helpers import T0, event
    >>> from livesignals.contract import decode
    >>> from livesignals import serde
    >>> from livesignals.errors import Origin
    >>> e = decode(serde.dumps(event("app_event", "c1", T0, action="Events")), Origin("in", 0, 0, 0), now_ms=T0)
    >>> behaviour_of(e)
    'events_action'
    """
    if event.type in ("app_event", "web_event"):
        action = event.payload.get("action")
        if isinstance(action, str) and action:
            return _action_name(action)
    return event.type


@functools.lru_cache(maxsize=1024)
def _action_name(action: str) -> str:
    """The behaviour name of an app/web ``action`` (cached: a few actions make most events)."""
    name = "".join(c if c.isalnum() else "_" for c in action.lower())[:MAX_NAME]
    return stored(f"{name}_action" if name in RESERVED else name)  # at most 64 bytes


def record(state: CustomerState, event: Event) -> None:
    """Count the event in the customer's daily behaviour buckets (older than :data:`KEEP_DAYS` dropped)."""
    t = event.event_time_ms
    act: dict[str, Any] = state.predictions.get("churn_activity") or {"first": t, "last": t, "prev": None,
                                                                       "names": [], "days": {}}  # fmt: skip
    state.predictions["churn_activity"] = act
    act["first"] = min(act["first"], t)
    newest_before = act["last"] // DAY_MS
    if t >= act["last"]:
        act["prev"], act["last"] = act["last"] if t > act["last"] else act["prev"], t
    name = behaviour_of(event)
    names: list[str] = act["names"]
    slot = _admit(state, act, names, name) + 1
    day = t // DAY_MS
    newest = act["last"] // DAY_MS
    if day <= newest - KEEP_DAYS:
        return  # too late to count in any window
    days: dict[str, list[int]] = act["days"]
    counts = days.setdefault(str(day), [0])
    counts[0] += 1
    if slot < len(counts):
        counts[slot] += 1
    else:
        counts.extend([0] * (slot - len(counts)))
        counts.append(1)
    if newest != newest_before:  # the last purge was at the same newest day otherwise: nothing is older now
        for old in [d for d in days if int(d) <= newest - KEEP_DAYS]:
            del days[old]


def _admit(state: CustomerState, act: dict[str, Any], names: list[str], name: str) -> int:
    """Count a sighting of ``name``; a new name beyond :data:`MAX_BEHAVIOURS` takes the least seen slot.
    Returns the name's slot."""
    hits: list[int] | None = act.get("hits")
    if hits is None:  # a profile from before: all equal (not setdefault: it would build the list every event)
        hits = act["hits"] = [1] * len(names)
    if name in names:
        slot = names.index(name)
        hits[slot] += 1
        return slot
    if len(names) < MAX_BEHAVIOURS:
        names.append(name)
        hits.append(1)
        return len(names) - 1
    slot = min(range(len(names)), key=hits.__getitem__)  # the first least seen: deterministic
    names[slot], hits[slot] = name, hits[slot] + 1
    for counts in act["days"].values():
        if len(counts) > slot + 1:
            counts[slot + 1] = 0
    at = len(CHURN_FEATURES) + len(FIXED) + 2 * slot  # a snapshot's values: CHURN_FEATURES, FIXED, then per slot
    for snap in state.predictions.get("churn_pending", []):
        if snap.get("k", 0) > slot and len(snap["x"]) > at + 1:
            snap["x"][at] = snap["x"][at + 1] = None  # that name's values: not taught under the new name
    return slot


def features(state: CustomerState, now_ms: int, into: dict[str, float] | None = None) -> dict[str, float]:
    """The behaviour features at ``now_ms`` (see the module docstring); zeros before any event.
    ``into``: a dict to add them to and return (the churn inputs: no copy), else a new one."""
    act = state.predictions.get("churn_activity")
    out = {} if into is None else into
    if not act:
        out.update(dict.fromkeys(FIXED, 0.0))
        return out
    today = now_ms // DAY_MS
    names = act["names"]
    last7 = [0] * (len(names) + 1)
    last30 = [0] * (len(names) + 1)
    prev7, active = 0, 0
    for d, counts in act["days"].items():
        age = today - int(d)
        if age < 0 or age >= 30:
            continue
        active += 1
        if age < 7:
            for i, c in enumerate(counts):
                last30[i] += c
                last7[i] += c
            continue
        for i, c in enumerate(counts):
            last30[i] += c
        if age < 14:
            prev7 += counts[0]
    out["events_30d"] = math.log1p(last30[0])
    out["active_days_30d"] = float(active)
    out["trend_7d"] = round((last7[0] - prev7) / (last7[0] + prev7 + 1), 4)
    previous = act["prev"] if act["last"] >= now_ms and act["prev"] is not None else act["last"]
    out["days_since_active"] = min(365.0, max(0.0, (now_ms - previous) / DAY_MS)) if previous is not None else 0.0
    out["tenure_days"] = min(3650.0, max(0.0, (now_ms - _since(state, act["first"])) / DAY_MS))
    for i, name in enumerate(names, 1):
        name7, name30 = _window_names(name)
        out[name7] = math.log1p(last7[i])
        out[name30] = math.log1p(last30[i])
    return out


@functools.lru_cache(maxsize=1024)
def _window_names(name: str) -> tuple[str, str]:
    """The two feature names of a behaviour (cached: a few behaviours make most customers')."""
    return f"{name}_7d", f"{name}_30d"


def feature_names(state: CustomerState, behaviours: int) -> list[str]:
    """The names of :func:`features` in order, when the customer had ``behaviours`` behaviour names."""
    names = (state.predictions.get("churn_activity") or {}).get("names", [])[:behaviours]
    return [*FIXED, *(f"{name}_{w}" for name in names for w in ("7d", "30d"))]


def behaviours(state: CustomerState) -> int:
    """How many behaviour names the customer has now (a snapshot records it)."""
    return len((state.predictions.get("churn_activity") or {}).get("names", []))


def _since(state: CustomerState, first_seen: int) -> int:
    """``customer_since`` from the profile attributes when it parses, else the first event seen."""
    since = state.identity.get("attributes", {}).get("customer_since")
    if isinstance(since, int | float) and since > 0:
        return min(int(since), first_seen)
    if isinstance(since, str):
        try:
            return min(int(date.fromisoformat(since[:10]).toordinal() - 719_163) * DAY_MS, first_seen)
        except ValueError:
            return first_seen
    return first_seen
