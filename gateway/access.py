"""Who may see which customer, and what of it: object-level authorisation and PII masking.

The rule (issue 12), decided on every read, push subscription and feedback:

* an **agent** sees a customer while serving them -- an open contact (the
  360's ``activity.open_contacts``, from the events' ``agent_id``/``queue``)
  assigned to them -- or while the customer waits, unassigned, in one of
  their team's queues (the token's ``queues``);
* a **supervisor** sees every customer with an open contact in their teams'
  queues, whoever serves it;
* an **analyst** sees any customer but no PII, and may not look a customer up
  by a PII identifier (email, phone): the lookup itself would reveal who it is.

An open contact older than ``gateway_contact_open_s`` grants nothing (a
contact whose end was never reported does not open a customer for ever).
Only the customer's own contacts grant: a contact keyed by an identifier the
customer once claimed (a cookie, a device, a phone number, an e-mail address)
grants nothing of them, since none of these is a credential -- a browser's
cookie can be copied, a device shared, a caller id or a From address spoofed,
an e-mail typed into a pre-chat form (break-tests 12, finding 15; 12b, B9;
12c, C6, C16). A contact opens the customer's 360 once its events name the
customer (``customer_id``: the contact was identified). A contact keyed by an
e-mail address or a phone number alone opens nothing either, not even that
identifier's own profile (anyone can type the address; it holds what was sent
from it); one keyed by a cookie or device alone opens that anonymous profile
(what the browser or app did), never a customer's.
A customer nobody may see and a customer that does not exist get the same
answer, so ids cannot be probed.

Masking for roles without PII: identity attributes (names, addresses),
relationships, the texts kept for the models, every free-text field whole
(:data:`FREE_TEXT_KEYS`: timeline summaries, topics, details, URLs, error
codes, order and ticket ids, reasons and summaries -- whatever a customer or
producer wrote, or a rule quoted from it), and
e-mail addresses (percent-encoded too), phone numbers and PII identifiers in
any other string; ids (:data:`ID_KEYS`) are left whole.

>>> p = Principal("a7", "agent", ("billing",), 0)
>>> contact = {"key": "customer_id:c1", "channel": "chat", "agent_id": None, "queue": "billing", "t": 1000}
>>> decide(p, "customer_id:c1", [contact], now_ms=2000, max_age_ms=3600_000)
Decision(allowed=True, reason='waiting in your queue billing')
>>> decide(p, "customer_id:c1", [{**contact, "agent_id": "a8"}], now_ms=2000, max_age_ms=3600_000)
Decision(allowed=False, reason='not assigned to you')
>>> mask({"email": "ann@example.com", "s": "call me on +44 20 7946 0958", "id": "f4b1f0cb-9bdf-821526b5d412"},
...      "analyst")
{'email': '***', 's': '***', 'id': 'f4b1f0cb-9bdf-821526b5d412'}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.auth import Principal

PII_KINDS: Final = frozenset({"email", "phone"})
"""Identifier kinds that are personal data in themselves."""
GRANTING_KINDS: Final = frozenset({"customer_id", "device_id", "cookie_id"})
"""Profiles whose own contacts grant: a customer's (identified), an anonymous device's or cookie's (what it
did); never a profile keyed by an e-mail address or phone number someone typed or spoofed (12c, C16)."""
SEES_PII: Final = {"agent": True, "supervisor": True, "analyst": False}
MAY_SEND_FEEDBACK: Final = frozenset({"agent", "supervisor"})
KEPT_ATTRIBUTES: Final = frozenset({"timezone", "tier", "segment", "lang"})
"""Identity attributes that stay readable when PII is masked; every other attribute value is masked."""
MASK: Final = "***"

_EMAIL = re.compile(r"[^\s@:%/?&=]+(?:@|%40)[^\s@%/?&=]+\.[^\s@/?&=]+", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d\s().-]{6,}\d(?![\w-])")
_PII_ID = re.compile(r"\b(email|phone):\S+")
FREE_TEXT_KEYS: Final = frozenset({
    "s", "topic", "detail", "text", "url", "error_code", "comment", "query", "message", "subject", "body",
    "note", "title", "order_id", "ticket_id", "case_id", "product_id", "address", "name", "errors", "evidence",
    "reason", "summary", "products", "items", "viewed", "names",
})  # fmt: skip
"""Fields that hold what a customer or a producer wrote: masked whole for roles without PII (a regex
misses a percent-encoded e-mail in a URL or a name in a ticket's topic). Lists under them are masked item
by item: products and order or cart items (an engraving text given as an item), products viewed, churn
feature names (derived from producers' web action names)."""
KEYED_BY_FREE_TEXT: Final = frozenset({"open_orders", "deliveries", "open_cases"})
"""Maps keyed by a producer's id (an order id may be made of a name): their keys are numbered instead."""
PRODUCER_NAMED: Final = frozenset({"campaigns"})
"""Maps whose keys and every string inside are a producer's names (campaign actions and ids, often made of a
customer's name): keys numbered, strings masked, numbers kept (break-test 12c, C1)."""
ID_KEYS: Final = frozenset({"id", "event_id", "decision_id", "event", "target_id", "flag_id", "customer"})
"""Fields that hold ids: left whole (a digit run inside a UUID is no phone number), bar a PII identifier."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why (the reason goes to the audit log)."""

    allowed: bool
    reason: str


def decide(
    principal: Principal, requested: str, open_contacts: Sequence[dict[str, Any]], *, now_ms: int, max_age_ms: int
) -> Decision:
    """May ``principal`` see the customer looked up as ``requested``, given its open contacts?"""
    role = principal.role
    if role == "analyst":
        kind = requested.partition(":")[0]
        if kind in PII_KINDS:
            return Decision(False, f"analysts may not look customers up by {kind}")
        return Decision(True, "analyst (PII masked)")
    fresh = [c for c in open_contacts if c.get("t", 0) >= now_ms - max_age_ms and _own(c)]
    if role == "agent":
        for c in fresh:
            if c.get("agent_id") == principal.subject:
                return Decision(True, f"serving on {c['channel']}")
        for c in fresh:
            if not c.get("agent_id") and c.get("queue") in principal.queues:
                return Decision(True, f"waiting in your queue {c['queue']}")
        return Decision(False, "not assigned to you")
    if role == "supervisor":
        for c in fresh:
            if c.get("queue") in principal.queues:
                return Decision(True, f"in your team's queue {c['queue']}")
        return Decision(False, "not in your teams' queues")
    return Decision(False, "unknown role")


def _own(contact: dict[str, Any]) -> bool:
    """A contact of the profile asked for itself (a linked identifier's carries ``linked_at``), keyed by a
    :data:`GRANTING_KINDS` kind: the only kind that grants (the module docstring says why).

    >>> _own({"t": 9, "linked_at": 5, "key": "customer_id:c1"}), _own({"t": 1, "key": "customer_id:c1"})
    (False, True)
    >>> _own({"t": 1, "key": "email:ann@example.com"}), _own({"t": 1, "key": "cookie_id:k1"})
    (False, True)
    """
    return (
        contact.get("linked_at") is None and str(contact.get("key", "customer_id:")).partition(":")[0] in GRANTING_KINDS
    )


def mask(doc: Any, role: str) -> Any:
    """``doc`` as ``role`` may see it (unchanged for roles that see PII; a masked copy otherwise)."""
    if SEES_PII.get(role, False):
        return doc
    return _scrub(_mask_sections(doc))


def mask_key(customer_key: str, role: str) -> str:
    """A customer key as ``role`` may see it: ``email:***`` for a PII kind without PII rights."""
    kind, _, _ = customer_key.partition(":")
    return f"{kind}:{MASK}" if kind in PII_KINDS and not SEES_PII.get(role, False) else customer_key


def _mask_sections(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return doc
    out = dict(doc)
    identity = out.get("identity")
    if isinstance(identity, dict):
        identity = dict(identity)
        ids = identity.get("ids")
        if isinstance(ids, dict):
            identity["ids"] = {k: ([MASK] * len(v) if k in PII_KINDS else v) for k, v in ids.items()}
        attributes = identity.get("attributes")
        if isinstance(attributes, dict):
            identity["attributes"] = {k: (v if k in KEPT_ATTRIBUTES else MASK) for k, v in attributes.items()}
        out["identity"] = identity
    if "relationships" in out:
        out["relationships"] = MASK
    value = out.get("value")
    loyalty = value.get("loyalty") if isinstance(value, dict) else None
    if isinstance(value, dict) and isinstance(loyalty, dict) and "tier" in loyalty:  # any producer text
        out["value"] = {**value, "loyalty": {**loyalty, "tier": MASK}}
    predictions = out.get("predictions")
    if isinstance(predictions, dict) and "recent_texts" in predictions:
        out["predictions"] = {k: v for k, v in predictions.items() if k != "recent_texts"}
    return out


def _scrub(value: Any, key: str = "") -> Any:
    if isinstance(value, str):
        if key in FREE_TEXT_KEYS:
            return MASK if value else value
        if key in ID_KEYS:
            return _PII_ID.sub(lambda m: f"{m[1]}:{MASK}", value)
        if "@" in value or "%" in value or ":" in value or any(ch.isdigit() for ch in value):
            value = _PII_ID.sub(lambda m: f"{m[1]}:{MASK}", value)
            value = _EMAIL.sub(MASK, value)
            value = _PHONE.sub(MASK, value)
        return value
    if isinstance(value, dict):
        if key in PRODUCER_NAMED:
            return {f"{MASK}{i}": _mask_strings(v) for i, v in enumerate(value.values(), 1)}
        if key in KEYED_BY_FREE_TEXT:
            return {f"{MASK}{i}": _scrub(v) for i, v in enumerate(value.values(), 1)}
        return {(_scrub(k) if isinstance(k, str) else k): _scrub(v, k if isinstance(k, str) else "")
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [_scrub(v, key) for v in value]
    return value


def _mask_strings(value: Any) -> Any:
    """``value`` with every string masked, numbers, field names and structure kept."""
    if isinstance(value, str):
        return MASK if value else value
    if isinstance(value, dict):  # the keys inside are the engine's field names
        return {k: _mask_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_strings(v) for v in value]
    return value
