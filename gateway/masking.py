"""What a role without PII rights (analysts) sees of a customer: an allow-list, not a deny-list.

Only what the service knows to be non-personal is shown in clear (break-test 12c, C1: a deny-list of key
names let through whatever a producer put under a key it did not list -- identity attributes a producer
added, campaign and web action names used as keys, e-mails and phone numbers inside event or campaign ids):

* **numbers, booleans and nulls** (counts, amounts, scores, times) under a field the engine writes;
* **field names** of the engine's documents (:data:`FIELDS`) and the contract's enumerations (event types,
  channels, identifier kinds, statuses, outcomes, ...): any other key is a producer's word (an order id, a
  campaign's action, an attribute's name) and is replaced by a number, its value masked whole;
* the keys of maps named by the deployment (:data:`NAMED_BY_DEPLOYMENT`: flag names, action names, window
  names);
* **enumeration values** (:data:`ENUM_FIELDS`: kinds, channels, statuses, flag and action names, queues)
  when they have the shape of a name (lower case, digits and ``_``, no spaces);
* **ids** (:data:`ID_FIELDS`): every id made from a customer's data -- the events' ids a producer wrote, the
  engine's flag and decision ids, verdicts' targets -- as its keyed re-hash, ``<kind>_<16 hex>``
  (:func:`livesignals.privacy.analyst_id`: ``e_`` events, ``f_`` flags, ``d_`` decisions, ``t_`` verdicts'
  targets, ``i_`` any other; the same id, the same hex, so analysts still correlate). Break-test 12l: the
  engine's flag and decision ids are unkeyed digests of the customer key and of what analysts see or can
  narrow, so shown as they were a candidate id could be tested offline (M2), and a producer's event id spelt
  the customer id in any case, without a separator, or another customer's id on a shared device (M1). Model
  versions and stream positions (:data:`SYSTEM_IDS`) are the engine's own and shown as they are, an e-mail
  address or phone number inside them masked (:func:`mask_id`);
* of the identity, the ``customer_id`` -- as its keyed pseudonym, ``p_<16 hex>``
  (:func:`livesignals.privacy.analyst_pseudonym`), everywhere a customer id appears (break-test 12k, K2: a
  rule guessing which ids "look made by a system" let card numbers, names with a birth date and phone
  numbers through) -- and the validated ``timezone`` and ``lang`` attributes only: other identifiers' values
  are masked, other attributes dropped.

Every other string is masked whole. Masking returns a copy; roles that see PII get the document unchanged.

>>> mask_document({"email": "ann@example.com", "status": "placed", "topic": "Ann's refund", "n": 3,
...                "id": "evt-+447700900999-1", "favourite": "Zelda"}, "analyst")
{'email': '***', 'status': 'placed', 'topic': '***', 'n': 3, 'id': '***', '***1': '***'}
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Callable
from typing import Any, Final

from livesignals.contract import IDENTIFIER_KINDS, load_schema
from livesignals.privacy import AnalystPseudonyms

MASK: Final = "***"
PII_KINDS: Final = frozenset({"email", "phone"})
"""Identifier kinds that are personal data in themselves."""
SEES_PII: Final = {"agent": True, "supervisor": True, "analyst": False}
"""Which roles see a customer's personal data (every other role gets the masked view)."""

FIELDS: Final = frozenset({
    "access", "accepted", "action", "active_flags", "activity", "agent_id", "amount", "as_of", "attributes",
    "avg", "by_channel", "by_type", "campaigns", "cancelled", "cases", "ch", "channel", "channels", "chosen",
    "churn", "churn_activity", "churn_pending", "churn_visit", "complaints", "consent", "contacts",
    "contacts_30d", "context_carried", "orders", "customer", "days", "decision_id", "deliveries", "detail", "entries",
    "errors", "event", "event_id", "events", "evidence", "exp", "expires_at", "first", "first_order",
    "first_seen", "flag", "flag_id", "flags", "fraud", "frequency", "future", "h", "history", "id", "identity",
    "ids", "ids_via", "ignored", "kind", "known", "label", "last", "last_order", "last_return", "last_seen",
    "lifetime_value", "linked", "loyalty", "merged", "merges", "minutes_ago", "monetary", "mood", "n", "names",
    "negotiation", "next", "next_best_actions", "offers", "offers_by_action", "offers_pending", "offer_streak",
    "open_cases", "open_contacts", "open_orders", "opened", "outcome", "p", "past", "points", "predictions",
    "present", "prev", "products", "products_viewed", "propensity", "proposed", "queue", "quiet", "raised_at",
    "ranked", "reason", "reasons", "recency_days", "recent_flags", "refunded", "relationships", "relevance",
    "returns", "role", "s", "lang", "timezone", "score", "sent", "severity", "shared_identifiers", "since",
    "source_timestamp", "spend", "state", "status", "stream_id", "summary", "surveys", "t", "target_id",
    "tenure_days", "tier", "timeline", "top", "top_channels", "topic", "touch", "trend", "type", "upsell",
    "value", "version", "via", "warm", "web_sessions", "why", "why_now", "windows", "x", "z",
})  # fmt: skip
"""Field names of the engine's documents (the 360, its timeline, flags, updates): shown as they are."""
NAMED_BY_DEPLOYMENT: Final = frozenset({"flags", "active_flags", "proposed", "windows"})
"""Maps keyed by names the deployment chose (rules' flag names, the action catalogue, window lengths), not
a producer: their keys are shown when they have the shape of a name."""
NAMED_BY_PRODUCER: Final = frozenset({"campaigns", "offers_by_action"})
"""Maps whose keys (campaign actions, offers made elsewhere) and every string inside are a producer's
words: keys numbered, strings masked, numbers kept."""
ENUM_FIELDS: Final = frozenset({
    "type", "ch", "channel", "severity", "status", "outcome", "direction", "chosen", "action", "kind", "label",
    "purpose", "response", "role", "queue", "flag", "state", "top_channels", "sent", "recent_flags", "via",
})  # fmt: skip
"""Fields whose string values are engine or contract enumerations (flag, action, queue names included)."""
ENUM_UNDER: Final = {"why_now": frozenset({"reason"}), "reasons": frozenset({"reason"})}
"""Fields that are enumerations under one parent only (a why-now ``reason`` is a code; a flag's or a
return's ``reason`` is text)."""
VALIDATED_UNDER: Final = {"attributes": frozenset({"timezone", "lang"}), "identity": frozenset({"lang"})}
"""Identity fields shown as they are: kept only when valid (a known time zone, a language tag)."""
ID_FIELDS: Final = frozenset({
    "id", "event_id", "decision_id", "event", "target_id", "flag_id", "customer", "stream_id", "version",
    "customer_id", "linked", "merged", "shared_identifiers",
})  # fmt: skip
"""Fields that hold ids: identifiers (:data:`IDENTIFIER_FIELDS`), the engine's own (:data:`SYSTEM_IDS`), and
every other one re-hashed with the analysts' key (:data:`ID_KINDS`)."""
IDENTIFIER_FIELDS: Final = frozenset({"customer", "customer_id", "linked", "merged", "shared_identifiers"})
"""Fields that hold a customer's identifiers (``kind:value``): a customer id as its pseudonym, a device or
cookie id as it is (analysts look them up by it), any other kind's value masked."""
SYSTEM_IDS: Final = frozenset({"stream_id", "version"})
"""Ids the engine makes from no customer's data (a position in the push streams, a model's version)."""
ID_KINDS: Final = {"flag_id": "f", "decision_id": "d", "event_id": "e", "event": "e", "target_id": "t"}
"""The kind letter of each id field's re-hash (:func:`livesignals.privacy.analyst_id`)."""
ID_CONTEXT: Final = {"timeline": "e", "entries": "e", "flags": "f", "active_flags": "f", "recent_flags": "f",
                     "offers_pending": "d", "merges": ""}  # fmt: skip
"""The kind of a plain ``id`` inside these fields (a timeline entry's is an event's, a flag's a flag's, a
pending offer's a decision's; a merge's is an identifier: ``""``); ``i`` elsewhere."""

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DEPLOYMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
_LANG = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Za-z]{2}|\d{3}))?")
"""A language tag: language, optional script, optional region (``en``, ``en-GB``, ``zh-Hant-TW``, ``es-419``);
not any three words joined by dashes (``ann-Smith-London`` was kept: break-test 12f, F5)."""
_OPAQUE_ID = re.compile(r"[0-9a-f]{16,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_EMAIL = re.compile(r"[^\s@:%/?&=|]+(?:@|%40)[^\s@%/?&=|]+(?:\.|%2E)[^\s@/?&=|]+", re.IGNORECASE)
_DIGITS = re.compile(r"(?<!\d)\+?\d+(?:[\s().\-/]?\d{2,})*(?!\d)")
_EPOCH = re.compile(r"1\d{9}(?:\d{3})?")
_PII_ID = re.compile(r"\b(email|phone):[^\s,;]+")
_CUSTOMER_ID = "customer_id:"


Pseudonym = Callable[[str], str]
"""A customer key (``customer_id:c42``) -> the pseudonym analysts see for its id (``p_<16 hex>``,
:func:`livesignals.privacy.analyst_pseudonym`)."""


def mask_document(doc: Any, role: str, pseudonyms: AnalystPseudonyms | None = None) -> Any:
    """``doc`` as ``role`` may see it: unchanged for roles that see PII, the allow-listed copy otherwise, each
    ``customer_id`` replaced by its pseudonym and every other id made from customer data by its keyed re-hash
    (``pseudonyms``; ``***`` without them).

    >>> from livesignals.privacy import AnalystPseudonyms
    >>> shown = mask_document({"customer": "customer_id:jsmith19800512", "ids": {"customer_id": ["jsmith19800512"]},
    ...                        "timeline": [{"id": "E-JSMITH19800512-7"}], "flags": {"late": {"id": "9a1c"}},
    ...                        "version": "v3"}, "analyst", AnalystPseudonyms("k" * 32))
    >>> shown["customer"] == "customer_id:" + shown["ids"]["customer_id"][0], shown["version"]
    (True, 'v3')
    >>> shown["timeline"][0]["id"][:2], shown["flags"]["late"]["id"][:2], "jsmith" in str(shown).lower()
    ('e_', 'f_', False)
    """
    if SEES_PII.get(role, False):
        return doc
    return _walk(_identity_masked(doc), "", "", _Ids(pseudonyms), "i")


class _Ids:
    """How ids are shown while masking one document: customer ids as pseudonyms, other ids re-hashed."""

    def __init__(self, pseudonyms: AnalystPseudonyms | None) -> None:
        self.pseudonyms = pseudonyms

    def customer_id(self, value: str) -> str:
        """A customer id's value as shown: its pseudonym, or ``***`` when there is none to give."""
        return self.pseudonyms(_CUSTOMER_ID + value) if self.pseudonyms is not None else MASK

    def identifier(self, value: str) -> str:
        """An identifier ``kind:value``: a customer id as its pseudonym, a device or cookie id as it is (with
        any e-mail address or phone number in it masked), any other kind's value masked."""
        kind, sep, rest = value.partition(":")
        if sep and kind == "customer_id":
            return _CUSTOMER_ID + self.customer_id(rest)
        if sep and kind in IDENTIFIER_KINDS and kind not in PII_KINDS:
            return mask_id(value)
        return f"{kind}:{MASK}" if sep and kind in IDENTIFIER_KINDS else MASK

    def of_id(self, kind: str, value: str) -> str:
        """Any other id: its keyed re-hash (:func:`livesignals.privacy.analyst_id`), ``***`` without a key."""
        return self.pseudonyms.of_id(kind, value) if self.pseudonyms is not None else MASK


def mask_id(value: str) -> str:
    """An id with the e-mail addresses and phone numbers inside it masked; a UUID or a hex digest whole.
    Digit groups joined by spaces, dots, dashes, slashes or brackets are read left to right: an epoch time
    (10 or 13 digits from 1...) is kept and splits them; of the others, the longest run of groups from the
    first one that holds at most 15 digits is a phone number when it holds at least 7 (masked), else its
    first group is kept; and so on from the next group. So a phone number beside a time or a counter is
    masked and the time or counter kept (break-test 12f, F1: E3's first fix judged the glued whole and showed
    ``<phone>-<epoch ms>`` and ``<phone>-<counter>`` in clear).

    >>> mask_id("spring|ann.other@example.com"), mask_id("evt-+447700900999-1"), mask_id("e-c1-1795732275721-chat")
    ('spring|***', 'evt-***-1', 'e-c1-1795732275721-chat')
    >>> mask_id("evt-555-867-5309-z"), mask_id("evt-+1-555-867-5309"), mask_id("evt-+44/7700/900456")
    ('evt-***-z', 'evt-***', 'evt-***')
    >>> mask_id("+447700900456-1795746583562"), mask_id("ord-447700900456-0001")
    ('***-1795746583562', 'ord-***-0001')
    >>> mask_id("sms-07700900456-1795746583"), mask_id("t-5558675309/20261127"), mask_id("ord-123456-4477009001")
    ('sms-***-1795746583', 't-***/***', 'ord-123456-***')
    >>> mask_id("550e8400-e29b-41d4-a716-446655440000"), mask_id("email:ann@example.com")
    ('550e8400-e29b-41d4-a716-446655440000', 'email:***')
    >>> mask_id("e|ann%40example%2Ecom"), mask_id("e|ann%40example.com")
    ('e|***', 'e|***')
    """
    if _OPAQUE_ID.fullmatch(value):
        return value
    value = _PII_ID.sub(lambda m: f"{m[1]}:{MASK}", value)
    value = _EMAIL.sub(MASK, value)
    return _DIGITS.sub(_phone_or_time, value)


def _phone_or_time(match: re.Match[str]) -> str:
    """One run of joined digit groups with every phone number in it masked (:func:`mask_id` says how)."""
    text = match[0]
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", text)]
    out, done, i = [], 0, 0
    while i < len(groups):
        start, end = groups[i]
        if _EPOCH.fullmatch(text[start:end]):
            i += 1
            continue  # a time: kept, and no phone number runs across it
        j, digits = i, 0
        while j < len(groups) and not _EPOCH.fullmatch(text[slice(*groups[j])]):
            if digits + groups[j][1] - groups[j][0] > 15:
                break
            digits += groups[j][1] - groups[j][0]
            j += 1
        if digits < 7:
            i += 1  # this group is no part of a phone number that starts here
            continue
        begin = start - 1 if start > 0 and text[start - 1] == "+" else start
        out += [text[done:begin], MASK]
        done, i = groups[j - 1][1], j
    return "".join(out) + text[done:]


def _identifier(key: str) -> str:
    """``kind:value`` with the value masked unless it is a ``customer_id`` (cookies and devices are online
    identifiers, e-mail addresses and phone numbers PII)."""
    kind, sep, _ = key.partition(":")
    return key if not sep or kind == "customer_id" else f"{kind}:{MASK}"


def _identity_masked(doc: Any) -> Any:
    if not isinstance(doc, dict) or not isinstance(doc.get("identity"), dict):
        return doc
    identity = dict(doc["identity"])
    for name in ("ids", "ids_via"):
        ids = identity.get(name)
        if isinstance(ids, dict):
            identity[name] = {k: (v if k == "customer_id" else [MASK] * len(v) if isinstance(v, list) else MASK)
                              for k, v in ids.items()}  # fmt: skip
    for name in ("linked", "merged", "shared_identifiers"):
        if isinstance(identity.get(name), list):
            identity[name] = [_identifier(i) if isinstance(i, str) else MASK for i in identity[name]]
    if isinstance(identity.get("merges"), list):
        identity["merges"] = [{**m, "id": _identifier(str(m.get("id", "")))} if isinstance(m, dict) else MASK
                              for m in identity["merges"]]  # fmt: skip
    attributes = identity.get("attributes")
    if isinstance(attributes, dict):
        identity["attributes"] = {k: v for k, v in attributes.items() if _kept_attribute(k, v)}
    if "lang" in identity and not _kept_attribute("lang", identity["lang"]):
        identity["lang"] = MASK
    return {**doc, "identity": identity, **({"relationships": MASK} if "relationships" in doc else {})}


def _kept_attribute(name: str, value: Any) -> bool:
    """Attributes shown to roles without PII: a known time zone, a language tag; nothing else.

    >>> [_kept_attribute("lang", v) for v in ("en-GB", "zh-Hant-TW", "es-419", "ann-Smith-London")]
    [True, True, True, False]
    """
    if not isinstance(value, str):
        return False
    if name == "timezone":
        return value in _time_zones()
    return name == "lang" and _LANG.fullmatch(value) is not None


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _vocabulary() -> frozenset[str]:
    """:data:`FIELDS` and every enumeration of the event contract (types, channels, statuses, ...)."""
    words: set[str] = set(FIELDS)

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "enum" and isinstance(v, list):
                    words.update(w for w in v if isinstance(w, str))
                else:
                    collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(load_schema())
    collect(load_schema("flag-v1.json"))
    return frozenset(words | set(IDENTIFIER_KINDS))


def _walk(value: Any, key: str, parent: str, ids: _Ids, kind: str) -> Any:
    """``value`` (under ``key``, in ``parent``) as shown; ``kind``: the kind of a plain ``id`` here
    (:data:`ID_CONTEXT`)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _string(value, key, parent, ids, kind)
    kind = ID_CONTEXT.get(key, kind)
    if key == "recent_flags" and isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str):
        # a [flag id, flag name] pair: the id re-hashed (a hex id can have the shape of a name: 12l, M2)
        return [ids.of_id("f", value[0]), _walk(value[1], key, parent, ids, kind)]
    if isinstance(value, list | tuple):
        return [_walk(v, key, parent, ids, kind) for v in value]
    if not isinstance(value, dict):
        return MASK
    if key in NAMED_BY_PRODUCER:
        return {f"{MASK}{i}": _strings_masked(v) for i, v in enumerate(value.values(), 1)}
    vocabulary = _vocabulary()
    out: dict[str, Any] = {}
    hidden = 0
    for k, v in value.items():
        name = k if isinstance(k, str) else ""
        if name in vocabulary or (key in NAMED_BY_DEPLOYMENT and _DEPLOYMENT_NAME.fullmatch(name)):
            out[name] = _walk(v, name, key, ids, kind)
        else:  # a producer's word used as a key (an order id, an attribute's name): numbered, value walked
            hidden += 1
            out[f"{MASK}{hidden}"] = _walk(v, "", key, ids, kind) if isinstance(v, dict | list) else MASK
    return out


def _string(value: str, key: str, parent: str, ids: _Ids, kind: str) -> str:
    if not value:
        return value
    if key == "customer_id":
        return ids.customer_id(value)
    if key in IDENTIFIER_FIELDS or (key == "id" and kind == ""):
        return ids.identifier(value)
    if key in SYSTEM_IDS:
        return mask_id(value)
    if key in ID_FIELDS:
        return ids.of_id(ID_KINDS.get(key, kind or "i"), value)
    if key in VALIDATED_UNDER.get(parent, ()) and _kept_attribute(key, value):
        return value
    if (key in ENUM_FIELDS or key in ENUM_UNDER.get(parent, ())) and _NAME.fullmatch(value):
        return value
    return MASK


def _strings_masked(value: Any) -> Any:
    """``value`` with every string masked, numbers, field names and structure kept."""
    if isinstance(value, str):
        return MASK if value else value
    if isinstance(value, dict):
        return {k: _strings_masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strings_masked(v) for v in value]
    return value
