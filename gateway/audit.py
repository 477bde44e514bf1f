"""The audit trail: every read, push subscription and feedback, allowed or denied, in a bounded Redis stream.

One entry per decision in ``<prefix>:audit``, fields ``at`` (epoch ms), ``who``
(token subject, or ``-`` when no valid token), ``role``, ``action``
(``read_360``, ``read_timeline``, ``read_flags``, ``read_actions``,
``subscribe``, ``feedback``), ``customer``, ``allowed`` (``1``/``0``) and
``reason``; for every refusal also ``source`` (the caller's address), and for
a refused token ``claimed`` (the subject the token claims, unverified), so a
forged or expired token's attempts can be attributed. Refusals are bounded
per caller (:mod:`gateway.refusals`: ``gateway_audit_refusals_per_min``, then
one ``refusals_over_limit`` entry per minute, the rest counted in a metric).

**No customer identifier in clear.** ``customer`` holds pseudonyms, the kind
and the keyed hash of the key as asked and as resolved (``email#<hash> ->
customer_id#<hash>`` when they differ): the erasure ledger's hash
(:func:`livesignals.privacy.subject_hash` keyed by the deployment's privacy
secret), so an operator finds a customer's entries with
``ErasureLedger.subject(key)`` while an erasure leaves nothing in the trail
that names the customer. Every entry has the same bounded size whatever the
caller sent (a queue followed is kept as ``queue:<name>``, cut at 64
characters).

**Bounded by count and by time.** Each XADD trims to ``MAXLEN ~
gateway_audit_maxlen``, and, at most once a second (:data:`TRIM_EVERY_S`), the
same round trip trims entries older than ``gateway_audit_max_age_s`` (``XTRIM
MINID ~``). Read it with ``XRANGE
<prefix>:audit - +`` or ship it on with a stream consumer. The stream lives
beside the engine's keys but the engine never reads it.

**Queue deliveries have a stream of their own**, ``<prefix>:audit:queues``
(same fields, ``gateway_queue_audit_maxlen``, the same age): which customers
were shown through a followed queue, once per queue and minute, and each
minute's roster of the desks shown them (:mod:`gateway.queue_audit`), so
customers' queue traffic never evicts the reads and denials above. An
investigation reads both (``XRANGE <prefix>:audit:queues - +``).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jwt

from livesignals import metrics
from livesignals.contract import IDENTIFIER_KINDS
from livesignals.privacy import subject_hash
from livesignals.settings import Settings
from state.reader import Keys, privacy_secret

QUEUE_CHARS = 64
"""Longest queue name kept in an entry."""
TRIM_EVERY_S = 1.0
"""How often (at most) an append also trims the trail by age; the count bound is applied on every append."""


def audit_key(prefix: str) -> str:
    """The audit stream's key for a deployment prefix.

    >>> audit_key("ls")
    'ls:audit'
    """
    return f"{prefix}:audit"


class AuditLog:
    """Appends audit entries (one round trip each) to the bounded stream (see the module docstring)."""

    def __init__(
        self, client: Any, prefix: str, maxlen: int, max_age_s: int = 0, secret: str = "", key: str = ""
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.key = key or audit_key(prefix)
        self.maxlen = maxlen
        self.max_age_s = max_age_s
        self._secret = secret
        self._trim_due = 0.0

    @classmethod
    def from_settings(cls, client: Any, settings: Settings) -> AuditLog:
        """The service's audit log: bounds and hashing secret from ``settings``."""
        return cls(client, settings.key_prefix, settings.gateway_audit_maxlen, settings.gateway_audit_max_age_s,
                   settings.erasure_ledger_secret)  # fmt: skip

    @classmethod
    def queues_from_settings(cls, client: Any, settings: Settings) -> AuditLog:
        """The log of queue deliveries, ``<prefix>:audit:queues``, bounded by ``gateway_queue_audit_maxlen``:
        a stream of its own, so customers' queue traffic (decided by customers, not by callers) never
        evicts the trail's reads, denials and subscriptions (break-test 12g, G2)."""
        return cls(client, settings.key_prefix, settings.gateway_queue_audit_maxlen, settings.gateway_audit_max_age_s,
                   settings.erasure_ledger_secret, key=audit_key(settings.key_prefix) + ":queues")  # fmt: skip

    @functools.cached_property
    def secret(self) -> str:
        """``erasure_ledger_secret``, else the deployment's privacy secret: the erasure ledger's own."""
        return self._secret or privacy_secret(self.client, Keys(self.prefix))

    def pseudonym(self, key: str) -> str:
        """How ``key`` (``kind:value``, as asked or resolved) appears in the trail: its kind and keyed hash."""
        kind, sep, _ = key.partition(":")
        if key == "-":
            return key
        if kind == "queue" and sep:
            return key[: len("queue:") + QUEUE_CHARS]
        return f"{kind if kind in IDENTIFIER_KINDS else '?'}#{subject_hash(key, self.secret)}"

    def record(
        self,
        who: str,
        role: str,
        action: str,
        asked: str,
        resolved: str | None,
        allowed: bool,
        reason: str,
        **refused: str,
    ) -> None:
        """Record one decision (a Redis failure propagates: an unaudited read is not served); ``refused``:
        :func:`refused_token`'s fields for a token that let nobody in."""
        customer = self.pseudonym(asked)
        other = self.pseudonym(asked if resolved is None else resolved)  # hashed either way: the same work
        if resolved not in (None, asked):
            customer = f"{customer} -> {other}"
        self.append(who, role, action, customer, allowed, reason, **refused)
        metrics.GATEWAY_DECISIONS.labels(action, "allowed" if allowed else "denied").inc()

    def append(self, who: str, role: str, action: str, customer: str, allowed: bool, reason: str,
               **extra: str) -> None:  # fmt: skip
        """Append one entry as given (``customer`` already pseudonymised) and trim: one round trip."""
        now_ms = int(time.time() * 1000)
        fields = {"at": now_ms, "who": who[:64], "role": role, "action": action, "customer": customer,
                  "allowed": int(allowed), "reason": reason[:200], **extra}  # fmt: skip
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
        if self.max_age_s and time.monotonic() >= self._trim_due:  # by age: once a second is enough
            self._trim_due = time.monotonic() + TRIM_EVERY_S
            pipe.xtrim(self.key, minid=f"{now_ms - self.max_age_s * 1000}-0", approximate=True)
        pipe.execute()

    def append_many(self, rows: list[tuple[str, str, str, str, bool, str, dict[str, str]]]) -> None:
        """Append entries given as :meth:`append`'s arguments (``customer`` already pseudonymised, the extra
        fields last) and trim: one round trip for them all (:class:`gateway.audit_writer.AuditWriter`)."""
        if not rows:
            return
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        for who, role, action, customer, allowed, reason, extra in rows:
            fields = {"at": now_ms, "who": who[:64], "role": role, "action": action, "customer": customer,
                      "allowed": int(allowed), "reason": reason[:200], **extra}  # fmt: skip
            pipe.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
        if self.max_age_s and time.monotonic() >= self._trim_due:
            self._trim_due = time.monotonic() + TRIM_EVERY_S
            pipe.xtrim(self.key, minid=f"{now_ms - self.max_age_s * 1000}-0", approximate=True)
        pipe.execute()

    def entries(self, count: int = 100) -> list[dict[str, str]]:
        """The newest ``count`` entries, newest first (tests, tooling)."""
        rows = self.client.xrevrange(self.key, count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} | {"id": i.decode()} for i, fields in rows]


def refused_token(request: Any, token: str) -> dict[str, str]:
    """What the trail keeps of a token that let nobody in: the subject it claims (unverified, printable,
    at most 64 characters; ``-`` when none can be read) and the caller's address.

    >>> class R: client = ("10.0.0.9", 5555)
    >>> refused_token(R(), "not-a-token")
    {'claimed': '-', 'source': '10.0.0.9'}
    """
    claimed = "-"
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub") if token else None
        if isinstance(sub, str) and sub:
            claimed = "".join(ch for ch in sub if ch.isprintable())[:64] or "-"
    except (jwt.InvalidTokenError, ValueError, AttributeError):
        pass
    client = getattr(request, "client", None)
    return {"claimed": claimed, "source": client[0] if client else "-"}
