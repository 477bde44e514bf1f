"""Personal data helpers every layer may use: the subject hash, analysts' pseudonyms and dead-letter redaction.

**Subject hash.** The erasure ledger and the audit stream must recognise an
erased customer again without holding the customer's key (``email:alice@...``
is personal data). They hold :func:`subject_hash`: BLAKE2b-128 of the key,
keyed with ``erasure_ledger_secret``, or when that is not set with the
deployment's own random secret kept in Redis
(:func:`state.erasure.deployment_secret`). Unkeyed, anyone who guesses a key
could confirm it was erased; keyed, only holders of the secret can.

**Analysts' pseudonyms.** A role without PII rights (analysts, :mod:`gateway.masking`) sees a customer id
as :func:`analyst_pseudonym`: ``p_`` and 16 hex characters of HMAC-SHA256 of the customer key, keyed with
``analyst_pseudonym_secret`` (else the deployment's random secret kept in Redis, ``ls:secret:pseudonym``):
stable, distinct per customer, not reversible without the key. The engine records each customer's
pseudonym (``ls:{pseudonym:<p>}``, :mod:`state.keys`) so that the service can look one up. Every other id made
from a customer's data that analysts see (flag, decision and event ids) is shown as :func:`analyst_id`, keyed
the same way: an unkeyed digest of the customer key and what analysts can see or narrow (a flag's name, topic,
partition, offset, time) let them test candidate customer ids offline (break-test 12l, M2).

**Dead-letter redaction** (``dead_letter_redact``). A dead letter keeps a
bounded prefix of the original bytes so that people can see what was wrong.
With redaction on, :func:`redact_dead_letter` keeps the shape and drops the
personal data: known personal fields (:data:`PII_FIELDS`) and every string
value outside the contract's vocabulary (:data:`KEPT_FIELDS`: types, topics,
statuses, reference ids ...) become ``"[redacted]"`` -- a malformed event can
carry a name in any field --, numbers and booleans stay, customer identifiers,
the record key and the ids a producer makes up per customer (:data:`HASHED_FIELDS`: event, target, order and
case ids) become their subject hash, and bytes that are not a JSON
object (or a prefix cut mid-document) are dropped entirely; their size and
SHA-256 stay in the headers, and the detail header loses the values it quotes
(:func:`redact_detail`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Final

from livesignals import serde
from livesignals.errors import DeadLetter

PII_FIELDS: Final = frozenset({"email", "phone", "name", "first_name", "last_name", "address", "text", "comment"})
"""Payload fields (and profile ``fields``) a redacted dead letter never shows."""
REDACTED: Final = "[redacted]"
KEPT_FIELDS: Final = frozenset({
    "schema_version", "type", "channel", "event_id", "topic", "action", "status", "kind", "response", "direction",
    "outcome", "label", "currency", "lang", "tier", "purpose", "error_code", "order_id", "case_id", "product_id",
    "campaign_id", "decision_id", "rates_event_id", "target_id", "request_id",
})  # fmt: skip
"""Fields whose string values a redacted dead letter keeps: the contract's vocabulary and reference ids."""
HASHED_FIELDS: Final = frozenset({"event_id", "target_id", "rates_event_id", "order_id", "case_id"})
"""Reference ids a producer makes up per customer (they may embed a name or an email): a redacted dead letter
holds their subject hash, which still matches another dead letter of the same id."""
PSEUDONYM: Final = re.compile(r"p_[0-9a-f]{16}")
"""The shape of an analyst's pseudonym of a customer id (:func:`analyst_pseudonym`)."""
ANALYST_ID: Final = re.compile(r"[a-z]_[0-9a-f]{16}")
"""The shape of what analysts see of any other id (:func:`analyst_id`): a kind letter, ``_``, 16 hex."""
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?")


def analyst_pseudonym(customer_key: str, secret: str) -> str:
    """What analysts see in place of ``customer_key``'s id: ``p_`` + the first 16 hex characters (64 bits) of
    HMAC-SHA256(``secret``, the key). Stable (the same customer, the same pseudonym), distinct per customer
    (a collision among a million customers has odds of about 3 in 100 million), and not reversible without
    the secret: a customer id shaped like a phone number, a card number or a name with a birth date gives
    nothing away, as a shape rule could not promise (break-test 12k, K2).

    >>> p = analyst_pseudonym("customer_id:jsmith19800512", "k" * 32)
    >>> PSEUDONYM.fullmatch(p) is not None, p == analyst_pseudonym("customer_id:jsmith19800512", "k" * 32)
    (True, True)
    >>> p != analyst_pseudonym("customer_id:jsmith19800513", "k" * 32), p != analyst_pseudonym(
    ...     "customer_id:jsmith19800512", "j" * 32)
    (True, True)
    """
    return "p_" + hmac.new(secret.encode(), customer_key.encode(), hashlib.sha256).hexdigest()[:16]


def analyst_id(kind: str, value: str, secret: str) -> str:
    """What analysts see in place of an id made from a customer's data (an event id a producer wrote, the
    engine's flag and decision ids): ``kind`` (a letter: ``f`` flag, ``d`` decision, ``e`` event, ...), ``_``
    and 16 hex characters of HMAC-SHA256(``secret``, the id), the same key as :func:`analyst_pseudonym`'s
    (domain-separated from it). Stable, so analysts can still tell one flag, decision or event from another
    and find the same event wherever it is named (the hex part does not depend on ``kind``: a verdict's
    ``t_<h>`` names the flag ``f_<h>``); not a function of anything analysts can compute: the engine's flag
    and decision ids are unkeyed digests of the customer key and of a flag's name, topic, partition, offset
    and time, which analysts see or can narrow, so shown as they are they let a candidate customer id be
    tested offline without the key (break-test 12l, M2); an event id may spell the customer id in any case
    or form (M1).

    >>> a = analyst_id("f", "97bd47985c9239e358742138", "k" * 32)
    >>> ANALYST_ID.fullmatch(a) is not None, a == analyst_id("f", "97bd47985c9239e358742138", "k" * 32)
    (True, True)
    >>> a[2:] == analyst_id("t", "97bd47985c9239e358742138", "k" * 32)[2:], a != analyst_id(
    ...     "f", "97bd47985c9239e358742138", "j" * 32)
    (True, True)
    >>> analyst_id("e", "customer_id:c1", "k" * 32)[2:] != analyst_pseudonym("customer_id:c1", "k" * 32)[2:]
    True
    """
    digest = hmac.new(secret.encode(), b"id\x00" + value.encode(), hashlib.sha256).hexdigest()
    return f"{kind}_{digest[:16]}"


class AnalystPseudonyms:
    """Analysts' pseudonyms under one key: called with a customer key, its :func:`analyst_pseudonym`;
    :meth:`of_id` any other id's :func:`analyst_id`. What :mod:`gateway.masking` shows analysts with."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, customer_key: str) -> str:
        """The pseudonym of ``customer_key``'s id (``p_<16 hex>``)."""
        return analyst_pseudonym(customer_key, self._secret)

    def of_id(self, kind: str, value: str) -> str:
        """What analysts see of the id ``value`` of that ``kind`` (``<kind>_<16 hex>``)."""
        return analyst_id(kind, value, self._secret)

    def __repr__(self) -> str:
        return "AnalystPseudonyms(<secret>)"  # never the key


def subject_hash(customer_key: str, secret: str = "") -> str:
    """The ledger's stand-in for a customer key: 32 hex characters, keyed by ``secret``.

    >>> subject_hash("customer_id:c1") == subject_hash("customer_id:c1")
    True
    >>> subject_hash("customer_id:c1") != subject_hash("customer_id:c1", "s3cret")
    True
    >>> len(subject_hash("email:a@b.c"))
    32
    """
    key = hashlib.sha256(secret.encode()).digest() if secret else b""
    return hashlib.blake2b(customer_key.encode(), digest_size=16, key=key, person=b"ls-erasure").hexdigest()


def redact_dead_letter(value: bytes, key: bytes | None, secret: str = "") -> tuple[bytes, bytes | None]:
    """``(value, key)`` of a dead letter without personal data (see the module docstring).

    >>> v, k = redact_dead_letter(b'{"customer":{"email":"a@b.c"},"payload":{"text":"hi Al","topic":"x"}}',
    ...                           b"email:a@b.c")
    >>> b"a@b.c" in v or b"hi Al" in v or b"a@b.c" in k
    False
    >>> serde.loads(v)["payload"]["topic"]
    'x'
    >>> serde.loads(redact_dead_letter(b'{"event_id": "zelda-1"}', None, "k")[0])["event_id"] != "zelda-1"
    True
    >>> serde.loads(redact_dead_letter(b'{"event_time": "Al Smith", "payload": {"note": "Al"}}', None)[0])
    {'event_time': '[redacted]', 'payload': {'note': '[redacted]'}}
    >>> redact_dead_letter(b"not json, Alice", None)
    (b'', None)
    """
    new_key = subject_hash(key.decode(errors="replace"), secret).encode() if key else key
    try:
        doc = serde.loads(value)
    except serde.JSONDecodeError:
        return b"", new_key
    if not isinstance(doc, dict):
        return b"", new_key
    customer = doc.pop("customer", None)
    doc = _redacted(doc, secret=secret)
    if isinstance(customer, dict):
        doc["customer"] = {k: subject_hash(f"{k}:{v}", secret) for k, v in customer.items()}
    elif customer is not None:
        doc["customer"] = REDACTED
    return serde.dumps(doc), new_key


def dead_letter_record(
    dead: DeadLetter, redact: bool, secret: str = ""
) -> tuple[bytes | None, bytes, list[tuple[str, str | bytes | None]]]:
    """``(key, value, headers)`` of a dead letter for Kafka; without personal data when ``redact``."""
    if not redact:
        return dead.key, dead.value, dead.headers()
    value, key = redact_dead_letter(dead.value, dead.key, secret)
    headers = [(k, redact_detail(v) if k == "ls.dlq.detail" else v) for k, v in dead.headers()]
    return key, value, [*headers, ("ls.dlq.redacted", b"true")]


def redact_detail(value: str | bytes | None) -> bytes:
    """A rejection's detail without the values it quotes (they may be personal data).

    >>> redact_detail(b"event_time 'alice@example.com' is not RFC 3339")
    b"event_time '\xe2\x80\xa6' is not RFC 3339"
    """
    text = value.decode(errors="replace") if isinstance(value, bytes) else (value or "")
    return _QUOTED.sub("'…'", text).encode()


def _redacted(node: Any, name: str = "", secret: str = "") -> Any:
    """Numbers, booleans and the strings of :data:`KEPT_FIELDS` kept (those of :data:`HASHED_FIELDS` as their
    subject hash); every other string redacted."""
    if isinstance(node, dict):
        return {k: _redacted(v, k, secret) for k, v in node.items()}
    if isinstance(node, list):
        return [_redacted(v, name, secret) for v in node]
    if isinstance(node, str) and name in HASHED_FIELDS:
        return subject_hash(f"{name}:{node}", secret)
    if isinstance(node, str) and (name not in KEPT_FIELDS or name.lower() in PII_FIELDS):
        return REDACTED
    return node
