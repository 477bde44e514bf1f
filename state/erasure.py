"""Erasure in Redis: what an erased customer's commit deletes, the ledger, the audit stream, export.

================================  ======  =========================================  ==========================
key                               type    holds                                      bound / TTL
================================  ======  =========================================  ==========================
``ls:erased:<hash>``              string  the erasure cut-off (ms) of one erased     ``erasure_ledger_ttl_s``
                                          customer key; ``<hash>`` =                 (400 days; 0 = no TTL)
                                          :func:`livesignals.privacy.subject_hash`
``ls:erasures``                   stream  audit: one entry per key erased --         MAXLEN ~
                                          ``subject`` (hash), ``request``,           ``erasure_audit_maxlen``
                                          ``origin``, ``cutoff``, ``cascade``,
                                          ``at``; no personal data
``ls:secret:privacy``             string  the deployment's hashing secret when       none (made once,
                                          ``erasure_ledger_secret`` is not set       ``SET NX``)
                                          (:func:`deployment_secret`)
================================  ======  =========================================  ==========================

The commit of a batch that erased customer ``K`` (:meth:`ErasureLedger.plan`,
run by :class:`state.store.ProfileStore` in the batch's own commit: one
MULTI/EXEC on one Redis, the ordered Cluster commit on Redis Cluster) sets the
ledger entry first, then deletes ``K``'s profile, timeline and writer key,
removes ``K`` from the claim set of every identifier it linked (a claim set is
never deleted while a claimant stays: Redis drops it when its last claimant
goes), and appends the audit entry. Before that commit the flags stream is scrubbed of
``K``'s entries (:meth:`ErasureLedger.scrub_flags`, a script run in chunks;
idempotent, so a retried batch scrubs again). The keys of linked identifiers
owned by other partitions are erased by their own owner (:mod:`operators.erasure`).
"""

from __future__ import annotations

import base64
import functools
import time
from typing import Any

from livesignals import documents, metrics, serde
from livesignals.privacy import analyst_pseudonym, subject_hash
from operators.erasure import links_of, reach
from operators.profile360.identity import ERASED_CLAIMANT, TOMBSTONE, erasure_owner
from operators.profile360.profile import CustomerState
from state.keys import Keys
from state.retention import ANONYMOUS_KINDS, Retention
from state.secrets import deployment_secret as shared_secret
from state.secrets import pseudonym_secret

SCRUB_CHUNK = 2000
"""Flags-stream entries one scrub call reads; each call blocks Redis while it runs (``python -m bench.erase``
measured 8-15 ms per 1,000 entries read, whoever they belong to, on a shared 2-core machine)."""

# Delete the entries of the given customers among COUNT entries after a cursor; return how many,
# the last id read and how many were read. KEYS[1] stream; ARGV: start ('-' or '(<id>'), count, customers...
_SCRUB = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local wanted = {}
for i = 3, #ARGV do wanted[ARGV[i]] = true end
local n = 0
for _, e in ipairs(entries) do
  local f = e[2]
  local who = f[4]  -- the engine writes flag_id, customer, flag, doc
  if f[3] ~= 'customer' then
    who = nil
    for j = 1, #f, 2 do
      if f[j] == 'customer' then who = f[j + 1] end
    end
  end
  if who and wanted[who] then
    redis.call('XDEL', KEYS[1], e[1])
    n = n + 1
  end
end
local last = entries[#entries]
return {n, last and last[1] or '', #entries}
"""


# Remove an erased customer's claim from a claim set KEYS[1] kept for its other claimants (ARGV[1]), leave the
# erased claimant there and as the first claimant KEYS[2] when ARGV[2] is 1 (plan: where it claimed first), and
# when no known claimant is left (only anonymous kinds ARGV[4..] and the erased claimant) give the set back the
# anonymous claims' TTL ARGV[3]: it no longer outlives its last claim for good (break-test 12j, J5). The first
# claimant gets the set's lifetime and goes with it (12k, K4: it was kept for good). At most MAX_OWNERS_KEPT + 1
# members.
_UNCLAIM = (
    """
redis.call('SREM', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[1], '"""
    + TOMBSTONE
    + """')
  redis.call('SET', KEYS[2], '"""
    + TOMBSTONE
    + """')
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) return 0 end
local ttl = redis.call('TTL', KEYS[1])
if ttl ~= -1 then
  if ttl > 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ttl) end
  return 0
end
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local kind = string.match(member, '^([^:]*):')
  local anonymous = kind == '"""
    + ERASED_CLAIMANT.rstrip(":")
    + """'
  for i = 4, #ARGV do anonymous = anonymous or kind == ARGV[i] end
  if not anonymous then redis.call('PERSIST', KEYS[2]) return 0 end
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3])) end
return redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
"""
)


class ErasureLedger:
    """The ledger of erased customers, the audit stream, and the writes that erase a customer."""

    def __init__(self, client: Any, keys: Keys, retention: Retention | None = None) -> None:
        self.client = client
        self.keys = keys
        self.retention = retention or Retention()
        self._scrub = client.register_script(_SCRUB)
        self.unclaim = client.register_script(_UNCLAIM)
        """Runs the ``unclaim`` writes :meth:`plan` returns (``keys=[claim set, first claimant]``, ``args``: the
        rest)."""

    def ledger_key(self, customer_key: str) -> str:
        """The ledger entry of ``customer_key`` (no personal data in the name)."""
        return f"{self.keys.prefix}:erased:{self.subject(customer_key)}"

    def subject(self, customer_key: str) -> str:
        """The customer key's hash, as the ledger and the audit stream hold it."""
        return subject_hash(customer_key, self.secret)

    @functools.cached_property
    def secret(self) -> str:
        """``erasure_ledger_secret``, else this deployment's own (:func:`deployment_secret`): never unkeyed."""
        return self.retention.erasure_ledger_secret or deployment_secret(self.client, self.keys)

    @functools.cached_property
    def pseudonym_secret(self) -> str:
        """The key of analysts' pseudonyms: ``analyst_pseudonym_secret``, else the deployment's (Redis)."""
        return pseudonym_secret(self.client, self.keys, self.retention.analyst_pseudonym_secret)

    def pseudonym(self, customer_key: str) -> str | None:
        """What analysts see of a ``customer_id`` key (:func:`livesignals.privacy.analyst_pseudonym`); None for
        other kinds (analysts see no e-mail or phone key, and devices and cookies as they are)."""
        if not customer_key.startswith("customer_id:"):
            return None
        return analyst_pseudonym(customer_key, self.pseudonym_secret)

    def pseudonyms_of(self, customer_key: str) -> list[str]:
        """Every pseudonym a lookup key was written for, for ``customer_key`` (none for other kinds than a
        ``customer_id``, without a round trip)."""
        if not customer_key.startswith("customer_id:"):
            return []
        return sorted(_text(m) for m in self.client.smembers(self.keys.pseudonyms(customer_key)))

    @property
    def audit_key(self) -> str:
        """The audit stream of erasures."""
        return f"{self.keys.prefix}:erasures"

    def cutoffs(self, customer_keys: list[str]) -> dict[str, int]:
        """Erasure cut-offs of those of ``customer_keys`` that were erased (one round trip; none if no keys)."""
        if not customer_keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for key in customer_keys:
            pipe.get(self.ledger_key(key))
        rows = pipe.execute()
        metrics.REDIS_ROUNDTRIPS.labels("ledger").inc()
        return {k: int(v) for k, v in zip(customer_keys, rows, strict=True) if v is not None}

    def claimants(self, identifiers: list[str]) -> dict[str, set[str]]:
        """The claim sets of ``identifiers`` (one round trip; none if no identifiers)."""
        if not identifiers:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for identifier in identifiers:
            pipe.smembers(self.keys.owners(identifier))
        rows = pipe.execute()
        metrics.REDIS_ROUNDTRIPS.labels("ledger").inc()
        return {i: {_text(m) for m in row} for i, row in zip(identifiers, rows, strict=True)}

    def claimed(self, customer_key: str) -> list[str]:
        """Every identifier ``customer_key`` claimed (its claims index, :meth:`state.keys.Keys.claims`): the
        profile keeps only the 32 newest links, the claims of older ones stay (break-test 12i, I1); an anonymous
        claimant's too (12j, J1: a device that linked more than 32 cookies kept the oldest after the erasure)."""
        members = self.client.smembers(self.keys.claims(customer_key))
        metrics.REDIS_ROUNDTRIPS.labels("ledger").inc()
        return sorted(_text(m) for m in members)

    def claimed_first(self, customer_key: str, identifiers: list[str]) -> list[str]:
        """Those of ``identifiers`` ``customer_key`` claimed first among customers, or whose first claimant was
        not recorded (one round trip; none if no identifiers; break-test 12j, J3)."""
        if not identifiers:
            return []
        pipe = self.client.pipeline(transaction=False)
        for identifier in identifiers:
            pipe.get(self.keys.first_claimant(identifier))
        rows = pipe.execute()
        metrics.REDIS_ROUNDTRIPS.labels("ledger").inc()
        return [i for i, first in zip(identifiers, rows, strict=True) if first is None or _text(first) == customer_key]

    def plan(self, state: CustomerState) -> list[tuple[Any, ...]]:
        """The writes that erase ``state``'s customer (``state.erased`` is set), in order: ledger first."""
        erased = state.erased or {}
        key, k = state.customer_key, self.keys
        ttl = self.retention.erasure_ledger_ttl_s or None
        ops: list[tuple[Any, ...]] = [("set", self.ledger_key(key), str(erased.get("at", 0)), ttl)]
        # the key's own claim set is not deleted: it names its claimants, whose own facts it is; it goes (Redis
        # drops an empty set) when its last claimant is erased -- never while a customer claimant stays
        ops += [("delete", name) for name in (k.profile(key), k.timeline(key), k.writer(key), k.claims(key))]
        # analysts' lookup keys: the current secret's, and any written under an earlier one (the customer's set)
        current = self.pseudonym(key)
        pseudonyms = sorted({*self.pseudonyms_of(key), *([current] if current else [])})
        if current:
            ops += [("delete", name) for name in (*(k.pseudonym(p) for p in pseudonyms), k.pseudonyms(key))]
        kept = set(erased.get("shared_kept", []))
        # an identifier erased with this customer loses every claim -- an anonymous device's on the cookie (12h,
        # H7: the person's later browsing joined that device's card), an erased claimant's (12i, I2) -- so what
        # happens on it afterwards starts unlinked
        ops += [("delete", name) for link in erased.get("links", []) if link not in kept
                for name in (k.owners(link), k.first_claimant(link))]  # fmt: skip
        # a shared identifier kept for its other claimants keeps an erased claimant in this one's place: it stays
        # shared, merged into nobody's 360, so nothing this customer did on it joins another's (12g H1); one
        # for all erased customers, naming none of them (12i, I2 and I5). Only where this customer claimed first
        # (or the first is unknown: claims recorded before): a customer who claimed a victim's cookie or phone
        # afterwards, then had itself erased, planted it there for good (12j, J3) -- the identifier is the
        # first claimant's, and so is what was done on it
        planted = set(self.claimed_first(key, sorted(kept)))
        ttl_claim = self.retention.identity_claim_ttl_s
        ops += [("unclaim", k.owners(link), k.first_claimant(link), key, int(link in planted), ttl_claim,
                 *ANONYMOUS_KINDS) for link in erased.get("links", []) if link in kept]  # fmt: skip
        entry = {
            "subject": self.subject(key),
            "request": erased.get("request") or "",
            "origin": erased.get("origin", ""),
            "cutoff": str(erased.get("at", 0)),
            "at": str(int(time.time() * 1000)),
        }
        ops.append(("xadd", self.audit_key, entry, "*", self.retention.erasure_audit_maxlen, True))
        return ops

    def scrub_flags(self, customer_keys: list[str]) -> int:
        """Delete the entries of these customers in the flags and updates streams; how many (idempotent)."""
        if not customer_keys:
            return 0
        deleted = 0
        for stream in (self.keys.flags_stream, self.keys.updates_stream):
            start = "-"
            while True:
                n, last, read = self._scrub(keys=[stream], args=[start, SCRUB_CHUNK, *customer_keys])
                metrics.REDIS_ROUNDTRIPS.labels("scrub").inc()
                deleted += int(n)
                if int(read) < SCRUB_CHUNK:
                    break
                start = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        return deleted

    def audit(self, request_id: str | None = None, count: int = 1000) -> list[dict[str, str]]:
        """The newest audit entries (newest first), those of ``request_id`` only when given."""
        rows = self.client.xrevrange(self.audit_key, count=count)
        out = [{_text(k): _text(v) for k, v in fields.items()} for _, fields in rows]
        return [r for r in out if request_id is None or r.get("request") == request_id]


def pseudonym_writes(ledger: ErasureLedger, keys: Keys, state: CustomerState) -> list[tuple[Any, ...]]:
    """The writes that let analysts look ``state``'s customer up by its pseudonym: ``ls:{pseudonym:<p>}`` -> the
    customer key, and ``<p>`` in the customer's own set of them (what its erasure deletes, whatever secret wrote
    them). Once per load of the state in this process (``state.pseudonym_written``, never in the document: a
    profile stays the same whatever the secret); a ``customer_id`` only (break-test 12k, K2)."""
    if state.pseudonym_written:
        return []
    pseudonym = ledger.pseudonym(state.customer_key)
    if pseudonym is None:
        return []
    state.pseudonym_written = True
    return [("set", keys.pseudonym(pseudonym), state.customer_key),
            ("sadd", keys.pseudonyms(state.customer_key), pseudonym)]  # fmt: skip


def deployment_secret(client: Any, keys: Keys) -> str:
    """The deployment's hashing secret held in Redis (``ls:secret:privacy``, :mod:`state.secrets`), made
    once (``SET NX``, 32 random bytes) by whichever process asks first; used when
    ``erasure_ledger_secret`` is not set.

    Without a secret, a subject hash is a plain digest: anyone holding a candidate email could confirm
    it was erased, or find it in a redacted dead letter. This one keys the hashes against readers of
    Kafka (dead letters, audit copies) at no setup cost; it does not protect against readers of Redis
    itself (they can read it too), and it is lost with Redis's data (the ledger too; later dead letters
    hash differently). Set ``erasure_ledger_secret`` from a secret store to protect against both.
    """
    return shared_secret(client, keys, "privacy")


def resolve(client: Any, keys: Keys, identifier: str) -> tuple[list[str], list[str]]:
    """``(customer keys to erase, claimants)`` for an identifier (``kind:value``).

    An identifier claimed by exactly one customer (their email, their device) belongs to that
    customer: erasing it erases the customer, whose erase takes the identifier with it. One claimed
    by several customers (a shared phone; an erased customer counts) is erased alone: the claimants
    stay. Anonymous identifiers' claims do not make it shared (:func:`erasure_owner`, break-test 12h H5).
    """
    owners = sorted(_text(m) for m in client.smembers(keys.owners(identifier)))
    owner = erasure_owner(owners)
    return ([identifier] if owner is None else [owner]), owners


def export(client: Any, keys: Keys, customer_key: str, ledger: ErasureLedger) -> dict[str, Any]:
    """Everything Redis holds about ``customer_key`` and the identifiers its erasure would take, as JSON-ready data.

    The keys exported as the customer's own are exactly those its erasure takes (:func:`operators.erasure.reach`,
    the erasure's own walk: every claimant's claims index on the way, so a device's cookies past its 32 newest
    links too; break-test 12k, K1). Any other identifier one of them linked is reported as
    ``{"shared": true}``: another customer claims it (directly, or through another identifier: a cookie a family
    tablet claims, the tablet Bob claims too; 12i, I4), so its profile, timeline and claimants are not this
    customer's alone (an anonymous device's claim does not count: 12h, H6).
    """
    docs: dict[str, dict[str, Any]] = {}

    def linked_of(key: str) -> list[str]:
        docs[key] = _one(client, keys, key)
        profile = CustomerState(key, identity=docs[key]["profile"].get("identity", {}))
        return links_of(ledger.claimed(key), profile)

    tree = reach(customer_key, linked_of, ledger.claimants)
    doc = docs[customer_key]
    linked = [i for links in tree.values() for i in links]
    doc["linked"] = {i: docs[i] if i in tree else {"customer": i, "shared": True}
                     for i in dict.fromkeys(linked) if i != customer_key}  # fmt: skip
    everyone = set(tree)
    doc["flags_stream"] = [
        {"id": _text(i), **serde.loads(f[b"doc"])}
        for i, f in _scan_stream(client, keys.flags_stream)
        if _text(f.get(b"customer", b"")) in everyone and b"doc" in f
    ]
    doc["updates_stream"] = [
        {"id": _text(i), **serde.loads(f[b"doc"])}
        for i, f in _scan_stream(client, keys.updates_stream)
        if _text(f.get(b"customer", b"")) in everyone and b"doc" in f
    ]
    pseudonym = ledger.pseudonym(customer_key)
    if pseudonym is not None:  # what analysts see, and the lookup keys the engine wrote (under any secret)
        written = ledger.pseudonyms_of(customer_key)
        held = {p: client.get(keys.pseudonym(p)) for p in written}
        lookups = {p: _text(h) if h else None for p, h in held.items()}
        doc["pseudonym"] = {"analysts_see": f"customer_id:{pseudonym}", "lookups": lookups}
    cut = ledger.cutoffs([customer_key])
    doc["erasure"] = {"erased_cutoff": cut.get(customer_key), "subject": ledger.subject(customer_key)}
    doc["erasure"]["audit"] = [
        r for r in ledger.audit(count=10_000) if r.get("subject") == ledger.subject(customer_key)
    ]
    return doc


def _one(client: Any, keys: Keys, key: str) -> dict[str, Any]:
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.profile(key))
    pipe.zrange(keys.timeline(key), 0, -1)
    pipe.smembers(keys.owners(key))
    profile, timeline, owners = pipe.execute()
    doc: dict[str, Any] = {"customer": key, "profile": {}}
    if profile is not None:
        read, why = decoded(profile)
        if why is None and not isinstance(read, dict):
            why = "not a JSON object"
        if why is None:
            doc["profile"] = read
        else:
            doc["profile_unreadable"] = unreadable(profile, why)
    doc["timeline"] = [_exported(entry) for entry in timeline]
    doc["claimed_by"] = sorted(_text(m) for m in owners)
    return doc


def _exported(stored: bytes) -> Any:
    """A timeline entry as an export shows it: its JSON data, or :func:`unreadable`'s report."""
    read, why = decoded(stored)
    return read if why is None else unreadable(stored, why)


def decoded(stored: bytes) -> tuple[Any, str | None]:
    """A stored document as JSON data, and None; or None and why it cannot be read (the error's kind, no
    content): a damaged document -- a corrupt frame, not JSON -- is reported by a data subject's export,
    it does not make the export fail (outside review of #16).

    >>> decoded(b'{"a": 1}'), decoded(b"{"), decoded(b"")
    (({'a': 1}, None), (None, 'JSONDecodeError'), (None, 'JSONDecodeError'))
    """
    try:
        return serde.loads(documents.decode(stored)), None
    except ValueError as exc:  # documents.CorruptDocument, orjson.JSONDecodeError
        return None, type(exc).__name__


def unreadable(stored: bytes, why: str) -> dict[str, Any]:
    """What an export shows for a stored document it cannot read: why, and the stored bytes themselves in
    base64 (they are what Redis holds about the customer).

    >>> unreadable(b"\\x00", "CorruptDocument")
    {'unreadable': 'CorruptDocument', 'stored_base64': 'AA=='}
    """
    return {"unreadable": why, "stored_base64": base64.b64encode(stored).decode("ascii")}


def _scan_stream(client: Any, stream: str, chunk: int = 2000) -> list[tuple[Any, dict[bytes, bytes]]]:
    out: list[tuple[Any, dict[bytes, bytes]]] = []
    start = "-"
    while True:
        rows = client.xrange(stream, min=start, max="+", count=chunk)
        out += rows
        if len(rows) < chunk:
            return out
        start = "(" + _text(rows[-1][0])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
