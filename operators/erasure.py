"""Erasing a customer inside the engine: the ``erase`` event, applied in order by its owner.

An ``erase`` event (``livesignals erase``, or any system that produces one) is
keyed and routed like every event, so it is applied by the one engine that
owns the customer's partition -- the writer of that customer's state -- in
input order, inside a batch whose commit is fenced like any other
(:mod:`state.ownership`). No second writer ever touches the customer's keys.

Applying it (:func:`erase`):

* the customer's state is reset in place (the cache holds the same object) and
  marked ``erased``; the store then deletes the profile, timeline, writer key
  and the customer's claims on its linked identifiers, records the
  erasure in the ledger and the audit stream, and scrubs the flags stream
  (:mod:`state.erasure`);
* the flags, triggers, decisions and outcomes this batch produced for the
  customer before the erase are dropped (never published nor stored);
* the churn due index of every topic at the partition number forgets the
  customer (a cascade is read on the repartition topic, the entry was made on
  an input topic);
* every identifier the customer linked that no other customer claims (and every
  other identifier named in the event) is erased too; an erase naming an
  identifier alone erases its only claimant too (a shared one is erased alone):
  here when this partition owns it, else by an ``erase`` event re-published to
  its owner partition through the repartition topic (:func:`cascade_records`)
  -- the owner of each key stays its only writer;
* tombstones (the customer's key, no value) go to the flags, triggers and
  decisions topics (:func:`tombstones`).

The erasure's *cut-off* is the newest event time the customer had (or the
erase's own time if later): afterwards, an event of that customer that
happened at or before the cut-off -- a replay of the input, a late event -- is
dropped and counted (``livesignals_events_erased_dropped_total``), never
applied and never dead-lettered; a newer one starts a new, empty profile (the
customer came back).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from livesignals import serde
from livesignals.contract import Event
from livesignals.errors import Origin
from livesignals.privacy import subject_hash
from operators.ports import OutRecord
from operators.profile360.identity import erasure_owner
from operators.profile360.profile import SECTIONS, CustomerState
from operators.report import BatchReport
from operators.routing import SIGNATURE_HEADER, Router, origin_signature, read_position

CASCADE_PREFIX = "ls-erase-cascade-"
"""``event_id`` prefix of the erase events the engine makes for linked identifiers."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """One customer key erased by a batch: what to publish for it."""

    customer_key: str
    origin: Origin
    """The erase event's first position (ids and cascades derive from it)."""
    event_time_ms: int
    request_id: str | None
    cascade: bool
    """True when this erasure was cascaded from a linked customer's."""
    remote: tuple[tuple[str, int], ...] = ()
    """Linked identifiers owned by other partitions, with their owner partition: erase events to re-publish."""

    @property
    def erasure_id(self) -> str:
        """Deterministic: a replayed batch re-publishes the same ids (no customer key in it)."""
        o = self.origin
        return f"erase:{o.topic}:{o.partition}:{o.offset}:{subject_hash(self.customer_key)[:16]}"


class Forgets(Protocol):
    """What forgets an erased customer: a partition's aggregates (their churn due index)."""

    def forget(self, customer_key: str) -> None:
        """Drop ``customer_key``."""


def erase(state: CustomerState, event: Event, parts: Iterable[Forgets] = (), claimed: Iterable[str] = ()) -> list[str]:
    """Reset ``state`` and mark it erased (see the module docstring); the identifiers to erase with it.

    ``parts``: the aggregates of the partition number (every topic) whose churn due index forgets it;
    ``claimed``: the identifiers its claims index names beyond the profile's ``linked`` (break-test 12i, I1).

    >>> from livesignals.errors import Origin
    >>> s = CustomerState("customer_id:c1")
    >>> s.identity = {"linked": ["device_id:d1"], "last_seen": 5000}
    >>> s.events = 3
    >>> e = Event("x", "erase", "backoffice", {"customer_id": "c1"}, 4000, {}, Origin("in", 0, 9))
    >>> erase(s, e), s.events, s.erased["at"]
    (['device_id:d1'], 0, 5000)
    """
    key = state.customer_key
    links = list(dict.fromkeys([*claimed, *state.identity.get("linked", [])]))
    links += [f"{kind}:{value}" for kind, value in event.ids.items() if f"{kind}:{value}" != key]
    before = state.erased["at"] if state.erased else 0
    at = max(event.event_time_ms, state.identity.get("last_seen", 0), before)
    fresh = CustomerState(key)
    for name in (*SECTIONS, "events", "windows"):
        setattr(state, name, getattr(fresh, name))
    state.new_timeline.clear()
    state.new_links.clear()
    state.rules_memo = None  # every flag rule runs afresh on what is left (operators.rules.dependencies)
    old_links = state.erased["links"] if state.erased else []
    o = event.origin
    state.erased = {
        "at": at,
        "links": sorted(set(links) | set(old_links)),
        "request": event.payload.get("request_id"),
        "origin": f"{o.topic}:{o.partition}:{o.offset}",
    }
    for part in parts:
        part.forget(key)
    return sorted(dict.fromkeys(links))


Claimants = Callable[[list[str]], dict[str, set[str]]]
"""Reads the claim sets of identifiers (``identifier -> claimant keys``) from the store."""


def erase_all(
    event: Event,
    state: CustomerState,
    partitions_of: Callable[[Event], Iterable[Forgets]],
    router: Router | None,
    load: Callable[[str], CustomerState],
    report: BatchReport,
    claimants: Claimants = lambda identifiers: {},
    claimed: Callable[[str], list[str]] = lambda customer_key: [],
) -> list[CustomerState]:
    """Erase ``event``'s customer and what goes with it (:func:`plan_targets`); those this partition owns
    are loaded by ``load`` and erased here, the others get an erase event at their owner; ``claimed`` reads a
    customer's claims index (every identifier it claimed, not only the 32 newest it links). The states erased."""
    here = read_position(event).partition
    done: list[CustomerState] = []
    explicit = not event.event_id.startswith(CASCADE_PREFIX)
    todo, seen = [(event, state)], {state.customer_key}
    # customers this batch already erased: their claims are not committed away yet, but they are going (break-test
    # 12i, I7: two claimants erased in one batch each kept the shared cookie for the other, for good)
    gone = {e.customer_key for e in report.erasures}
    root_claimant = _only_claimant(state.customer_key, claimants) if explicit else None
    while todo:
        ev, st = todo.pop()
        named = set() if ev is not event else {f"{k}:{v}" for k, v in ev.ids.items()} - {st.customer_key}
        index = claimed(st.customer_key)  # the links past the profile's 32 newest too (break-test 12i, I1)
        linked = links_of(index, st)
        erase(st, ev, partitions_of(ev), index)
        targets = erasure_targets(linked, named, seen | gone, claimants)
        if st.erased is not None:  # shared identifiers kept for their other claimants (plan: an erased claimant)
            st.erased["shared_kept"] = sorted(set(linked) - set(targets) - seen)
        if ev is event and root_claimant is not None:
            targets.append(root_claimant)
        remote = []
        for link in dict.fromkeys(targets):
            if link in seen:
                continue
            seen.add(link)
            owner = here if router is None else router.owner(link)
            if owner == here:
                todo.append((linked_event(event, link), load(link)))
            else:
                remote.append((link, owner))
        drop_signals(report, st.customer_key)
        cascade = ev is not event or not explicit
        report.erasures.append(Erasure(st.customer_key, event.origin, event.event_time_ms,
                                       ev.payload.get("request_id"), cascade, tuple(remote)))  # fmt: skip
        done.append(st)
    return done


def links_of(index: Iterable[str], state: CustomerState) -> list[str]:
    """The identifiers a key's erasure looks at: its claims index (every identifier it claimed, break-tests 12i
    I1, 12j J1), then its profile's ``linked`` (the 32 newest), once each. The erasure (:func:`erase_all`) and
    the export (:func:`reach`) both read a key's links through here."""
    return list(dict.fromkeys([*index, *state.identity.get("linked", [])]))


def erasure_targets(linked: list[str], named: set[str], erasing: set[str], claimants: Claimants) -> list[str]:
    """What a key's erasure takes with it: the identifiers its erase event named, then those of its ``linked``
    no customer outside ``erasing`` (and the named ones) claims (:func:`not_shared`)."""
    return [*sorted(named), *not_shared(linked, erasing | named, claimants)]


def reach(root: str, linked_of: Callable[[str], list[str]], claimants: Claimants) -> dict[str, list[str]]:
    """``root`` and every key its erasure takes with it, each with its links (:func:`links_of`), in the order
    :func:`erase_all` walks them: what ``livesignals export`` reports as the customer's own, so the export reads
    exactly what the erasure would take -- a device's cookies past its 32 newest links included (break-test 12k,
    K1: the export read the customer's own index only, the erasure every claimant's on the way).

    As if one partition owned every key (the export reads Redis, not partitions; an erasure re-published to
    another partition walks on from there the same way).

    >>> linked = {"customer_id:c": ["device_id:d"], "device_id:d": ["cookie_id:k1", "cookie_id:k2"]}
    >>> owners = {"device_id:d": {"customer_id:c"}, "cookie_id:k1": {"device_id:d"},
    ...           "cookie_id:k2": {"device_id:d", "customer_id:bob"}}
    >>> reach("customer_id:c", lambda k: linked.get(k, []), lambda ids: {i: owners.get(i, set()) for i in ids})
    {'customer_id:c': ['device_id:d'], 'device_id:d': ['cookie_id:k1', 'cookie_id:k2'], 'cookie_id:k1': []}
    """
    out: dict[str, list[str]] = {}
    seen, todo = {root}, [root]
    while todo:
        key = todo.pop()
        out[key] = linked_of(key)
        for target in erasure_targets(out[key], set(), seen, claimants):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return out


def _only_claimant(identifier: str, claimants: Claimants) -> str | None:
    """The customer an identifier named alone in an erase belongs to (:func:`erasure_owner`), if any.

    An identifier claimed by several customers (a family phone) is shared: erased alone, no claimant; an
    anonymous identifier's claim (an e-mail paired with the phone in one event) does not make it shared.
    """
    if identifier.startswith("customer_id:"):
        return None  # never claimed: the strongest kind links others, is linked by none
    return erasure_owner(claimants([identifier]).get(identifier, set()) - {identifier})


def not_shared(linked: list[str], erasing: set[str], claimants: Claimants) -> list[str]:
    """Of the identifiers an erased customer linked, those no customer outside ``erasing`` claims.

    A linked identifier another customer also claims (a shared phone) is not erased with this one: the
    erased customer's claim on it goes (:meth:`state.erasure.ErasureLedger.plan`), the other claimants'
    claims, and the identifier's own profile and timeline (theirs as much as this customer's), stay.
    Only a *customer* makes it shared, directly or through another identifier this customer linked: a
    claim by an anonymous identifier (a device or cookie anyone can name in one event) does not, or an
    outsider could keep an erased customer's cookie alive, with its browsing, under a device of its own
    (break-test 12g, G3).

    >>> owners = {"cookie_id:k": {"customer_id:w", "device_id:outsider"}, "phone:p": {"customer_id:w",
    ...           "customer_id:bob"}}
    >>> not_shared(["cookie_id:k", "phone:p"], {"customer_id:w"}, lambda ids: owners)
    ['cookie_id:k']
    """
    if not linked:
        return []
    mine = set(linked)
    owners = {
        identifier: {o for o in claimed if o.startswith("customer_id:") or o in mine}
        for identifier, claimed in claimants(linked).items()
    }
    keep = [i for i in linked if i not in erasing]
    while True:  # an identifier kept for a claimant that is itself shared (and so stays) is shared too
        going = erasing | set(keep)
        still = [i for i in keep if owners.get(i, set()) <= going]
        if still == keep:
            return keep
        keep = still


def claimed_of(store: Any) -> Callable[[str], list[str]]:
    """The store's claims-index reader (none for a store without a ledger, e.g. in-memory replays)."""
    erasures = getattr(store, "erasures", None)
    return erasures.claimed if erasures is not None else (lambda customer_key: [])


def claimants_of(store: Any) -> Claimants:
    """The store's claim-set reader (none for a store without a ledger, e.g. in-memory replays)."""
    erasures = getattr(store, "erasures", None)
    return erasures.claimants if erasures is not None else (lambda identifiers: {})


_PROCESS_SECRET = secrets.token_hex(32)
"""Keys dead-letter hashes of a store with no Redis (in-memory replays) when no secret is set."""


def hashing_secret(store: Any, configured: str) -> str:
    """The secret subject hashes are keyed with: ``configured``, else the deployment's (kept in Redis)."""
    erasures = getattr(store, "erasures", None)
    if erasures is not None:
        return str(erasures.secret)
    return configured or _PROCESS_SECRET


def cutoff(state: CustomerState, ledger: dict[str, int]) -> int | None:
    """The erasure cut-off that applies to ``state``'s events, if any (this batch's, else the ledger's)."""
    if state.erased is not None:
        return int(state.erased["at"])
    return ledger.get(state.customer_key)


def ledger_cutoffs(store: Any, states: dict[str, CustomerState]) -> dict[str, int]:
    """Erasure cut-offs of the customers in ``states`` Redis holds no profile for (one round trip when
    there are such customers; none for a store without a ledger, e.g. in-memory replays)."""
    erasures = getattr(store, "erasures", None)
    return erasures.cutoffs([k for k, s in states.items() if is_new(s)]) if erasures is not None else {}


def is_new(state: CustomerState) -> bool:
    """True when Redis holds no profile for ``state`` (the ledger must be asked about it)."""
    return not state.applied and not state.events and state.erased is None


def drop_signals(report: BatchReport, customer_key: str) -> None:
    """Forget the flags, triggers, decisions and outcomes this batch made for an erased customer."""
    report.flags = [f for f in report.flags if f.customer_key != customer_key]
    report.triggers = [t for t in report.triggers if t.customer_key != customer_key]
    report.decisions = [(d, why) for d, why in report.decisions if d.customer_key != customer_key]
    report.outcomes = [o for o in report.outcomes if o.customer_key != customer_key]


def linked_event(event: Event, identifier: str) -> Event:
    """The erase event of a linked identifier, as from the same position as ``event``."""
    kind, _, value = identifier.partition(":")
    return Event(
        _cascade_id(event.origin, identifier), "erase", "backoffice", {kind: value}, event.event_time_ms,
        dict(event.payload), event.origin,
    )  # fmt: skip


def tombstones(erasures: list[Erasure], topics: tuple[str, ...]) -> list[OutRecord]:
    """A tombstone per erased key on each of ``topics`` (the outputs keyed by customer)."""
    return [
        OutRecord(
            topic, e.customer_key.encode(), b"", [("ls.id", e.erasure_id.encode()), ("ls.erase", b"1")], tombstone=True
        )
        for e in erasures
        for topic in topics
    ]


def cascade_records(erasures: list[Erasure], repartition_topic: str, signing_key: bytes = b"") -> list[OutRecord]:
    """Erase events for linked identifiers owned elsewhere, re-published at their owner partition.

    They carry the ``ls.origin.*`` headers of the erase that caused them, signed with
    ``signing_key`` (:func:`operators.routing.origin_key`), so their owner applies them as from
    that position (:mod:`operators.routing`), and a deterministic ``ls.id``.
    """
    out = []
    for e in erasures:
        o = e.origin
        for identifier, partition in e.remote:
            kind, _, value = identifier.partition(":")
            doc = {
                "schema_version": 1, "event_id": _cascade_id(o, identifier), "type": "erase",
                "channel": "backoffice", "customer": {kind: value}, "event_time": e.event_time_ms,
                "payload": {"request_id": e.request_id} if e.request_id else {},
            }  # fmt: skip
            headers: list[tuple[str, str | bytes | None]] = [
                ("ls.id", _cascade_id(o, identifier).encode()),
                ("ls.origin.topic", o.topic.encode()),
                ("ls.origin.partition", str(o.partition).encode()),
                ("ls.origin.offset", str(o.offset).encode()),
                ("ls.origin.timestamp", str(o.timestamp_ms).encode()),
            ]
            record = serde.dumps(doc)
            headers.append((SIGNATURE_HEADER, origin_signature(signing_key, o, record).encode()))
            out.append(OutRecord(repartition_topic, identifier.encode(), record, headers, partition))
    return out


def _cascade_id(origin: Origin, identifier: str) -> str:
    return f"{CASCADE_PREFIX}{origin.topic}-{origin.partition}-{origin.offset}-{subject_hash(identifier)[:16]}"
