"""How one valid event updates a customer's facts: the only writer of :class:`CustomerState`.

Every list and map in the state is bounded (see the ``MAX_*`` constants, and
the table in :mod:`state.keys`) so that a profile's size does not grow with
the customer's history: history lives in the timeline and in window buckets,
not in the profile. ``tests/unit/test_bounds.py`` drives one customer through
a long random stream and checks every list and map against its bound.
"""

from __future__ import annotations

import functools
from typing import Any

from livesignals import metrics, serde
from livesignals.contract import Event
from operators.profile360 import identity, timeline
from operators.profile360.contacts import (  # noqa: F401 - CONTACT_* re-exported: read from here too
    CONTACT_END_GRACE_MS,
    CONTACT_IDLE_MS,
    OPEN_CONTACT_ENDED,
    open_contact,
)
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import digest, stored, stored_event
from operators.profile360.surveys import is_negative_survey
from operators.scoring.features import record_response

MAX_RECENT_CONTACTS = 20
MAX_OPEN_ITEMS = 10
"""Open orders, deliveries in flight, open cases kept (oldest dropped)."""
MAX_ERRORS = 10
MAX_IDS_PER_KIND = 5
MAX_MERGES = 20
MAX_PRODUCTS = 20
MAX_ATTRIBUTES = 30
MAX_ITEM_BYTES = 512
"""Largest attribute value or relationship (its JSON) kept from a profile update; larger ones are not stored."""
MAX_KEY_CHARS = 64
"""Longest attribute name kept from a profile update."""
MAX_LINKED = 32
"""Identifiers linked to a customer (devices, cookies, emails...) kept, newest last; the 360 merges these."""
MAX_CLAIMS = 500
"""Identifiers one profile claims in its life (``identity.claims_n`` counts them); later new ones are not linked
(counted in ``livesignals_identity_claims_refused_total``). Bounds its claims index ``ls:{<cust>}:claims`` and so
what its erasure reads and cascades in one batch (break-test 12j, J2: a script logging one account in with a fresh
cookie per request grew the index without bound and a 20,000-member erase stalled its partition for 24 s)."""
MAX_RELATIONSHIP_TYPES = 10
MAX_CAMPAIGN_ACTIONS = 16
"""Distinct campaign actions counted per customer (``history.campaigns``); new ones beyond are not counted."""
MAX_VIEWED = 10
"""Products viewed kept (``activity.viewed``: newest last, with when), for ``derived.product_to_offer``."""
MAX_FLAGS = 32
"""Flags held raised in a profile (the rules in force raise fewer; flags of rules since removed are
dropped, soonest expiring first, beyond it)."""
SELF_SERVICE_ACTIONS = frozenset({"help_article", "order_tracking", "chatbot_resolved", "faq"})
"""Digital actions that count as self-service (deflection KPI)."""


def apply_event(
    state: CustomerState, event: Event, sentiment: float | None = None, complaint: bool | None = None
) -> None:
    """Fold one valid event into the customer's facts.

    ``sentiment`` (-1..1) is the text's score when the event carries text; a
    score at or below :data:`COMPLAINT_SENTIMENT` makes the event a complaint.
    ``complaint``: :func:`is_complaint` of the event and its sentiment, when the caller has it.

    >>> from livesignals.errors import Origin
    >>> ev = Event("e1", "order", "web", {"customer_id": "c1"}, 5000,
    ...            {"order_id": "o1", "amount": 40.0}, Origin("in", 0, 9))
    >>> s = CustomerState("customer_id:c1"); apply_event(s, ev)
    >>> (s.events, s.value["orders"], s.value["spend"], list(s.activity["open_orders"]))
    (1, 1, 40.0, ['o1'])
    """
    event = stored_event(event)  # every payload string it keeps bounded in bytes (sizes.py)
    t = event.event_time_ms
    state.events += 1
    _identity(state, event)
    handler = _HANDLERS.get(event.type)
    if handler is not None:
        handler(state, event)
    if event.is_contact:
        _contact(state, event)
    _touch(state, event)
    state.windows.add(t, _window_values(state, event, sentiment, complaint))
    state.new_timeline.append((t, timeline.entry(event, sentiment)))
    o, position = event.origin, f"{event.origin.topic}:{event.origin.partition}"
    moved = getattr(event, "moved", False)  # rerouted again after a partition count change: maybe behind
    state.applied[position] = max(o.offset, state.applied.get(position, -1)) if moved else o.offset


COMPLAINT_SENTIMENT = -0.3


def is_complaint(event: Event, sentiment: float | None) -> bool:
    """A negative text, a bad survey answer, or a case opened."""
    if sentiment is not None and sentiment <= COMPLAINT_SENTIMENT:
        return True
    p = event.payload
    if event.type == "survey":
        return is_negative_survey(p["kind"], p["score"])
    return event.type == "ticket" and p["status"] == "opened"


# --- sections ------------------------------------------------------------------


def _identity(state: CustomerState, event: Event) -> None:
    ident = state.identity
    t = event.event_time_ms
    if t < ident.get("first_seen", t + 1):
        ident["first_seen"] = t
    if t > ident.get("last_seen", -1):
        ident["last_seen"] = t
    ids = ident.get("ids")
    if ids is None:
        ids = ident["ids"] = {}
    for kind, value in event.ids.items():
        known = ids.get(kind)
        if known is None:
            ids[kind] = [value]
        elif value not in known:
            known.append(value)
            del known[:-MAX_IDS_PER_KIND]
    lang = event.payload.get("lang")
    if lang:
        ident["lang"] = lang
    if len(event.ids) > 1:
        _link(state, event)


def _link(state: CustomerState, event: Event) -> None:
    linked = state.identity.setdefault("linked", [])
    for other in identity.links(event.ids):
        if other not in linked:
            if state.identity.get("claims_n", 0) >= MAX_CLAIMS:  # no new claim: bounds its claims index (12j J2)
                metrics.IDENTITY_CLAIMS_REFUSED.inc()
                continue
            state.identity["claims_n"] = state.identity.get("claims_n", 0) + 1
            linked.append(other)
            state.new_links.append(other)
            del linked[:-MAX_LINKED]
            merges = state.identity.setdefault("merges", [])
            merges.append({"id": stored(other), "t": event.event_time_ms, "event": event.event_id})
            del merges[:-MAX_MERGES]


def _contact(state: CustomerState, event: Event) -> None:
    h = state.history
    h["contacts"] = h.get("contacts", 0) + 1
    open_contact(state, event)
    if event.payload.get("direction", "inbound") == "inbound":
        state.recent_contacts.append([event.event_time_ms, event.channel, event.payload.get("topic"), event.event_id])
        state.recent_contacts.sort(key=lambda c: c[0])
        del state.recent_contacts[:-MAX_RECENT_CONTACTS]


def _touch(state: CustomerState, event: Event) -> None:
    h = state.history
    channel, etype = event.channel, event.type
    by_channel = h.get("by_channel")
    if by_channel is None:
        by_channel = h["by_channel"] = {}
    by_channel[channel] = by_channel.get(channel, 0) + 1
    by_type = h.get("by_type")
    if by_type is None:
        by_type = h["by_type"] = {}
    by_type[etype] = by_type.get(etype, 0) + 1
    touches = h.get("touch")
    if touches is None:
        touches = h["touch"] = {}
    last = touches.get(channel)
    if last is None or last["t"] <= event.event_time_ms:
        p = event.payload
        touches[channel] = {
            "t": event.event_time_ms, "type": etype, "event_id": event.event_id,
            "topic": p.get("topic") or p.get("action") or p.get("kind"),
            "outcome": p.get("outcome") or p.get("status") or p.get("response"),
        }  # fmt: skip


def _order(state: CustomerState, event: Event) -> None:
    p, t, v, a = event.payload, event.event_time_ms, state.value, state.activity
    status = p.get("status", "placed")
    open_orders = a.setdefault("open_orders", {})
    if status in ("placed", "paid"):
        if p["order_id"] not in open_orders:
            v["orders"] = v.get("orders", 0) + 1
            v["spend"] = round(v.get("spend", 0.0) + float(p["amount"]), 2)
            v["first_order"] = min(v.get("first_order") or t, t)
            v["last_order"] = max(v.get("last_order", 0), t)
            products = v.setdefault("products", [])
            for item in p.get("items", []):
                pid = item.get("product_id") if isinstance(item, dict) else item
                if isinstance(pid, str) and pid not in products:
                    products.append(pid)
            del products[:-MAX_PRODUCTS]
        _put(open_orders, p["order_id"], {"amount": p["amount"], "t": t, "status": status})
        a.pop("cart", None)
    elif status == "cancelled" and open_orders.pop(p["order_id"], None) is not None:
        v["orders"] = v.get("orders", 1) - 1
        v["spend"] = round(v.get("spend", 0.0) - float(p["amount"]), 2)
        v["cancelled_orders"] = v.get("cancelled_orders", 0) + 1


def _return(state: CustomerState, event: Event) -> None:
    p, v = event.payload, state.value
    v["returns"] = v.get("returns", 0) + 1
    v["refunded"] = round(v.get("refunded", 0.0) + float(p["amount"]), 2)
    state.activity["last_return"] = {
        "order_id": p["order_id"], "amount": p["amount"], "t": event.event_time_ms,
        "status": p.get("status", "requested"), "reason": p.get("reason"),
    }  # fmt: skip


def _delivery(state: CustomerState, event: Event) -> None:
    p, a = event.payload, state.activity
    deliveries = a.setdefault("deliveries", {})
    if p["status"] == "delivered":
        deliveries.pop(p["order_id"], None)
        a.setdefault("open_orders", {}).pop(p["order_id"], None)
    else:
        _put(deliveries, p["order_id"], {"status": p["status"], "t": event.event_time_ms})


def _ticket(state: CustomerState, event: Event) -> None:
    p, a, h = event.payload, state.activity, state.history
    cases = a.setdefault("open_cases", {})
    counts = h.setdefault("cases", {})
    if p["status"] in ("resolved", "closed"):
        if cases.pop(p["case_id"], None) is not None:
            _bump(counts, "resolved")
        return
    if p["status"] in ("opened", "reopened"):
        _bump(counts, p["status"])
    case = cases.get(p["case_id"]) or {"opened": event.event_time_ms}
    case.update({"status": p["status"], "t": event.event_time_ms})
    if p.get("topic"):
        case["topic"] = p["topic"]
    if p.get("error_code"):
        case["error_code"] = p["error_code"]
    _put(cases, p["case_id"], case)


def _digital(state: CustomerState, event: Event) -> None:
    p, a, t = event.payload, state.activity, event.event_time_ms
    action = p["action"]
    if action == "add_to_cart":
        cart = a.get("cart") or {"items": [], "since": t}
        if p.get("product_id") and p["product_id"] not in cart["items"]:
            cart["items"] = [*cart["items"], p["product_id"]][-MAX_PRODUCTS:]
        cart["last"] = max(cart.get("last", 0), t)
        a["cart"] = cart
    elif action == "checkout_start" and a.get("cart"):
        a["cart"]["checkout"] = t
    elif action == "error":
        errors = a.setdefault("errors", [])
        errors.append([t, p.get("error_code"), event.channel])
        errors.sort(key=lambda e: e[0])
        del errors[:-MAX_ERRORS]
    elif action == "login":
        state.identity["last_login"] = max(state.identity.get("last_login", 0), t)
    elif action == "product_view" and p.get("product_id"):
        viewed = [v for v in a.get("viewed", []) if v[0] != p["product_id"]]
        viewed.append([p["product_id"], t])
        viewed.sort(key=lambda v: v[1])
        a["viewed"] = viewed[-MAX_VIEWED:]


def _survey(state: CustomerState, event: Event) -> None:
    p = event.payload
    surveys = state.history.setdefault("surveys", {})
    last = surveys.get(p["kind"], {"n": 0})
    surveys[p["kind"]] = {"n": last["n"] + 1, "last": p["score"], "t": event.event_time_ms}


def _campaign(state: CustomerState, event: Event) -> None:
    campaigns = state.history.setdefault("campaigns", {})
    action = str(event.payload.get("action", "received"))
    if action == "last":  # the key of the latest campaign: an action of that name is counted beside it
        action = "last_action"
    if action in campaigns or len(campaigns) <= MAX_CAMPAIGN_ACTIONS:  # "last" is one of the keys
        _bump(campaigns, action)
    campaigns["last"] = {"id": event.payload.get("campaign_id"), "t": event.event_time_ms}


def _loyalty(state: CustomerState, event: Event) -> None:
    p = event.payload
    state.value["loyalty"] = {k: p[k] for k in ("tier", "points") if k in p}


def _consent(state: CustomerState, event: Event) -> None:
    state.consent[event.payload["purpose"]] = bool(event.payload["granted"])


def _profile_update(state: CustomerState, event: Event) -> None:
    p = event.payload
    attributes = state.identity.setdefault("attributes", {})
    for key, value in (p.get("fields") or {}).items():
        if len(key) > MAX_KEY_CHARS or len(serde.dumps(value)) > MAX_ITEM_BYTES:
            continue
        if key in attributes or len(attributes) < MAX_ATTRIBUTES:
            attributes[str(key)] = value
    for link in (p.get("relationships") or [])[:MAX_OPEN_ITEMS]:
        if isinstance(link, dict) and link.get("type") and len(serde.dumps(link)) <= MAX_ITEM_BYTES:
            kind = str(link["type"])
            if kind not in state.relationships and len(state.relationships) >= MAX_RELATIONSHIP_TYPES:
                continue
            known = state.relationships.setdefault(kind, [])
            if link not in known:
                known.append(link)
                del known[:-MAX_OPEN_ITEMS]


def _cancellation(state: CustomerState, event: Event) -> None:
    state.activity["cancelled"] = {"t": event.event_time_ms, "reason": event.payload.get("reason")}


def _offer_response(state: CustomerState, event: Event) -> None:
    response = event.payload["response"]
    _bump(state.history.setdefault("offers", {}), response)
    if event.payload.get("action"):
        record_response(state, event.payload["action"], response == "accepted")
    streak = state.history.setdefault("offer_streak", {"ignored": 0})
    streak["ignored"] = 0 if response == "accepted" else streak["ignored"] + 1


_HANDLERS = {
    "order": _order, "return": _return, "delivery": _delivery, "ticket": _ticket,
    "web_event": _digital, "app_event": _digital, "survey": _survey, "campaign": _campaign,
    "loyalty": _loyalty, "consent": _consent, "profile_update": _profile_update,
    "cancellation": _cancellation, "offer_response": _offer_response,
}  # fmt: skip


_digest = functools.lru_cache(maxsize=4096)(digest)
""":func:`~operators.profile360.sizes.digest`, cached: a session's or product's events come close together."""


def _window_values(
    state: CustomerState, event: Event, sentiment: float | None, complaint: bool | None = None
) -> dict[str, Any]:
    p = event.payload
    values: dict[str, Any] = {"events": 1, "channels": event.channel}
    if event.is_contact and p.get("direction", "inbound") == "inbound":
        values["contacts"] = 1
    if event.type == "order" and p.get("status", "placed") in ("placed", "paid"):
        values["orders"] = 1
        values["spend"] = float(p["amount"])
    if p.get("action") == "error" or (event.type == "ticket" and p.get("error_code")):
        values["errors"] = 1
    if p.get("session_id"):
        values["web_sessions"] = _digest(p["session_id"])  # only counted
    if p.get("product_id") and p.get("action") == "product_view":
        values["products_viewed"] = _digest(p["product_id"])  # counted; the ids: activity.viewed
    if is_complaint(event, sentiment) if complaint is None else complaint:
        values["complaints"] = 1
    return values


def bound_flags(state: CustomerState) -> None:
    """Keep at most :data:`MAX_FLAGS` raised flags (after the rules ran): the soonest expiring go first."""
    flags = state.flags
    if len(flags) > MAX_FLAGS:
        for name in sorted(flags, key=lambda n: flags[n].get("expires_at", 0))[: len(flags) - MAX_FLAGS]:
            del flags[name]


def _put(mapping: dict[str, Any], key: str, value: Any) -> None:
    """Insert or refresh ``key``, dropping the oldest entries beyond :data:`MAX_OPEN_ITEMS`."""
    mapping.pop(key, None)
    mapping[key] = value
    while len(mapping) > MAX_OPEN_ITEMS:
        del mapping[next(iter(mapping))]


def _bump(counter: dict[str, Any], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1
