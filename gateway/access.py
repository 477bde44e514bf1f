"""Who may see which customer, and what of it: object-level authorisation and PII masking.

The rule (issue 12), decided on every read, push subscription and feedback:

* an **agent** sees a customer while serving them -- an open contact (the
  360's ``activity.open_contacts``, from the events' ``agent_id``/``queue``)
  assigned to them -- or while the customer waits, unassigned, in one of
  their team's queues (the token's ``queues``);
* a **supervisor** sees every customer with an open contact in their teams'
  queues, whoever serves it;
* an **analyst** sees any customer but no PII -- a customer id as its keyed
  pseudonym (:func:`livesignals.privacy.analyst_pseudonym`) -- and may not look
  a customer up by a PII identifier (email, phone: the lookup itself would
  reveal who it is) nor by a raw customer id: by the pseudonym it sees.

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
(what the browser or app did), never a customer's -- and only while nobody
claimed that cookie or device: a claimed one's profile is part of its
claimant's 360 (merged into it), so its own contacts grant nothing either,
whichever identifier leads to it (a cookie linked to a claimed device) and
however many claimed it (a copied cookie made "shared" by linking it to
another device) -- break-tests 12d, D7 (decision: fail-closed) and 12f, F2.
A customer nobody may see and a customer that does not exist get the same
answer, so ids cannot be probed.

Masking for roles without PII (an allow-list of what is known to be non-personal):
:mod:`gateway.masking`.

>>> p = Principal("a7", "agent", ("billing",), 0)
>>> contact = {"key": "customer_id:c1", "channel": "chat", "agent_id": None, "queue": "billing", "t": 1000}
>>> decide(p, "customer_id:c1", [contact], now_ms=2000, max_age_ms=3600_000)
Decision(allowed=True, reason='waiting in your queue billing')
>>> decide(p, "customer_id:c1", [{**contact, "agent_id": "a8"}], now_ms=2000, max_age_ms=3600_000)
Decision(allowed=False, reason='not assigned to you')
>>> mask({"email": "ann@example.com", "s": "call me on +44 20 7946 0958", "id": "f4b1f0cb-9bdf-821526b5d412"},
...      "analyst")
{'email': '***', 's': '***', 'id': '***'}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.auth import Principal
from gateway.masking import MASK, PII_KINDS, SEES_PII, Pseudonym, mask_document, mask_id
from livesignals.privacy import PSEUDONYM, AnalystPseudonyms

__all__ = [
    "GRANTING_KINDS", "MASK", "MAY_SEND_FEEDBACK", "PII_KINDS", "SEES_PII", "Decision", "analyst_lookup_refused",
    "decide", "mask", "mask_key", "pseudonym_asked",
]  # fmt: skip

GRANTING_KINDS: Final = frozenset({"customer_id", "device_id", "cookie_id"})
"""Profiles whose own contacts grant: a customer's (identified), an anonymous device's or cookie's (what it
did); never a profile keyed by an e-mail address or phone number someone typed or spoofed (12c, C16)."""
MAY_SEND_FEEDBACK: Final = frozenset({"agent", "supervisor"})


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
    :data:`GRANTING_KINDS` kind, on a profile nobody claimed (``claimed``: a cookie or device someone logged
    in with): the only contacts that grant (the module docstring says why).

    >>> _own({"t": 9, "linked_at": 5, "key": "customer_id:c1"}), _own({"t": 1, "key": "customer_id:c1"})
    (False, True)
    >>> _own({"t": 1, "key": "email:ann@example.com"}), _own({"t": 1, "key": "cookie_id:k1"})
    (False, True)
    >>> _own({"t": 1, "key": "cookie_id:k1", "claimed": True})
    False
    """
    kind = str(contact.get("key", "customer_id:")).partition(":")[0]
    return contact.get("linked_at") is None and not contact.get("claimed") and kind in GRANTING_KINDS


def mask(doc: Any, role: str, pseudonyms: AnalystPseudonyms | None = None) -> Any:
    """``doc`` as ``role`` may see it (unchanged for roles that see PII; the allow-listed copy otherwise, customer
    ids as their pseudonyms, other ids made from customer data as keyed re-hashes, both from ``pseudonyms``:
    :func:`gateway.masking.mask_document`)."""
    return mask_document(doc, role, pseudonyms)


def pseudonym_asked(customer_key: str) -> str | None:
    """The pseudonym a ``customer_id`` key names (``customer_id:p_<16 hex>``), else None.

    >>> pseudonym_asked("customer_id:p_0123456789abcdef"), pseudonym_asked("customer_id:c42")
    ('p_0123456789abcdef', None)
    """
    kind, _, value = customer_key.partition(":")
    return value if kind == "customer_id" and PSEUDONYM.fullmatch(value) else None


def analyst_lookup_refused(customer_key: str) -> bool:
    """Whether analysts may not look a customer up by this key: by a PII kind (e-mail, phone: the lookup itself
    would reveal who it is), or by a ``customer_id`` that is not a pseudonym -- analysts see pseudonyms only, so
    they look customers up by those (the service resolves them: :func:`state.reader.resolve_pseudonym`), and a
    raw id is refused like a probe (break-test 12k, K2; before, a shape rule let card numbers and names with a
    birth date through). Devices and cookies are looked up as they are.

    >>> [analyst_lookup_refused(k) for k in ("email:ann@example.com", "customer_id:c42", "customer_id:07700900456")]
    [True, True, True]
    >>> analyst_lookup_refused("customer_id:p_0123456789abcdef"), analyst_lookup_refused("device_id:d1")
    (False, False)
    """
    kind = customer_key.partition(":")[0]
    return kind in PII_KINDS or (kind == "customer_id" and pseudonym_asked(customer_key) is None)


def mask_key(customer_key: str, role: str, pseudonym: Pseudonym | None = None) -> str:
    """A customer key as ``role`` may see it: for a role without PII rights ``email:***`` for a PII kind and
    ``customer_id:<pseudonym>`` for a customer (``customer_id:***`` when no ``pseudonym`` is given).

    >>> mask_key("customer_id:c42", "analyst", lambda key: "p_0123456789abcdef"), mask_key("customer_id:c42", "agent")
    ('customer_id:p_0123456789abcdef', 'customer_id:c42')

    A device or cookie key keeps its id, with the e-mail addresses and phone numbers inside it masked
    (:func:`gateway.masking.mask_id`), as the same id is everywhere else on an analyst's card: a cookie's card
    named the unclaimed device it leads to, ``device_id:ann.smith@example.com``, in clear (break-test 12m, N1).

    >>> mask_key("phone:+447700900456", "analyst"), mask_key("device_id:d1", "analyst")
    ('phone:***', 'device_id:d1')
    >>> mask_key("device_id:ann.smith@example.com", "analyst"), mask_key("cookie_id:ck-+447700900123", "analyst")
    ('device_id:***', 'cookie_id:ck-***')
    """
    if SEES_PII.get(role, False):
        return customer_key
    kind, _, value = customer_key.partition(":")
    if kind == "customer_id":
        return f"{kind}:{pseudonym(customer_key) if pseudonym is not None else MASK}"
    return f"{kind}:{MASK}" if kind in PII_KINDS else f"{kind}:{mask_id(value)}"
