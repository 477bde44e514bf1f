"""Read the live picture: a customer's 360, the contact-centre KPIs, the voice of the customer.

This is what an agent desktop, a bot or a CRM sync calls when a conversation
starts. The 360 merges, at read time, the anonymous profiles linked to the
customer (a device that browsed before logging in), unless an identifier is
shared by several customers. A 360 costs one Redis round trip, two when identifiers are linked.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livesignals import documents, serde
from livesignals.contract import Event
from livesignals.errors import Origin
from operators.partition import PartitionAggregates
from operators.profile360 import kpis, views, voc
from operators.profile360.identity import is_shared, merge_linked, sole_claimant
from operators.profile360.profile import CustomerState, unreadable_stand_in
from operators.profile360.update import MAX_LINKED, apply_event
from state.desk_reads import (
    CLAIM_UNKNOWN,
    TIMELINE_SHOWN,
    analysts_pseudonym_secret,
    claimed_keys,
    entry_open_contacts,
    linked_since,
    privacy_secret,
    read_open_contacts,
    read_timeline,
    resolve_pseudonym,
)
from state.keys import Keys
from state.linked_marks import mark_touches, own_reasons_first
from state.models_store import RedisModelLog


def read_360(
    client: Any,
    keys: Keys,
    customer_key: str,
    now_ms: int | None = None,
    channel: str | None = None,
    timeline: int = TIMELINE_SHOWN,
) -> dict[str, Any]:
    """The customer's 360: sections, three tenses, windows and the latest timeline.

    ``channel`` is where the customer is contacting us now, if known (it
    decides which earlier touch "carries context").
    """
    return view_360(load(client, keys, customer_key, timeline), now_ms, channel, timeline)


@dataclass
class Loaded:
    """One customer's stored facts, read once for a request: the profile and the newest timeline entries,
    and those of the linked identifiers its 360 merges (:func:`load`). The service decides access from it
    (:func:`access_of`) and answers from it (:func:`view_360`) without reading the profile twice."""

    customer: str
    known: bool
    """A readable profile is stored: False for none, and for one that cannot be read (answered like none)."""
    state: CustomerState
    entries: list[bytes]
    linked: list[tuple[str, CustomerState | None, list[bytes]]] = field(default_factory=list)
    """``(identifier, its state or None without a profile, its newest timeline entries)`` of each linked
    identifier not shared."""
    shared: list[str] = field(default_factory=list)
    """Linked identifiers claimed by several customers: merged into nobody's 360."""
    ahead: list[Any] = field(default_factory=list)
    """Replies of the commands :func:`load_own` was asked to run before the profile read."""
    claimed: bool = False
    """``customer`` is an identifier (not a ``customer_id``) that a customer, or a stronger identifier, claimed:
    its profile is part of someone's 360, so its own contacts grant nothing (:func:`access_of`)."""


def load(client: Any, keys: Keys, customer_key: str, timeline: int = 0) -> Loaded:
    """Read ``customer_key``'s profile and its ``timeline`` newest entries (none at 0) in one round trip,
    plus one more for its linked identifiers (claims, profiles, timelines) when it has any."""
    return load_linked(client, keys, load_own(client, keys, customer_key, timeline), timeline)


DENIAL_SLOTS = MAX_LINKED
"""Linked identifiers read for an access decision the customer's own open contacts do not grant: the
customer's own ones, then stand-ins that never exist, so that such a decision always costs the same Redis
commands whatever the customer has (:func:`load_linked`)."""
_STAND_IN = "device_id:\x00absent-"
"""Prefix of the stand-in identifiers (a NUL is refused in every real identifier: none exists)."""


def load_own(
    client: Any, keys: Keys, customer_key: str, timeline: int = 0, ahead: Callable[[Any], int] | None = None
) -> Loaded:
    """Read ``customer_key``'s own profile and its ``timeline`` newest entries (none at 0): one round trip,
    the same commands whether the customer exists or not, and one profile decoded either way (a stand-in
    document, :func:`decoy_profile`, when there is none: an unknown customer costs what a known one does).

    ``ahead(pipe)`` queues commands to run *before* the profile is read, in the same round trip, and
    returns how many; their replies are ``Loaded.ahead`` (the agent desktop reads the streams' position
    there: one round trip less per 360). Whether anyone claimed the key (``Loaded.claimed``) is read in
    the same round trip, for every key alike."""
    pipe = client.pipeline(transaction=False)
    first = ahead(pipe) if ahead is not None else 0
    pipe.scard(keys.owners(customer_key))
    pipe.get(keys.profile(customer_key))
    if timeline > 0:
        pipe.zrevrange(keys.timeline(customer_key), 0, timeline - 1)
    replies = pipe.execute()
    owners, row, *rest = replies[first:]
    state = _decode(customer_key, row)
    loaded = Loaded(customer_key, row is not None and state.unreadable is None, state, rest[0] if rest else [])
    loaded.ahead = replies[:first]
    loaded.claimed = bool(owners) and not customer_key.startswith("customer_id:")
    return loaded


def load_linked(client: Any, keys: Keys, loaded: Loaded, timeline: int = 0, slots: int = 0) -> Loaded:
    """Add to ``loaded`` its linked identifiers' claims, profiles and ``timeline`` newest entries, in one
    round trip (none without links, unless ``slots``).

    ``slots`` > 0 (an access decision that may end in a denial): exactly ``max(slots, linked)``
    identifiers are read, stand-ins after the customer's own, and every profile read is decoded (the
    stand-in document for one that does not exist), so the commands sent and the decoding done are the
    same for a customer with links, one without and one that does not exist."""
    linked = list(loaded.state.identity.get("linked", []))
    if not linked and slots <= 0:
        return loaded
    names = [*linked, *(f"{_STAND_IN}{i}" for i in range(len(linked), slots))]
    per = 3 if timeline > 0 else 2
    pipe = client.pipeline(transaction=False)
    for identifier in names:
        pipe.smembers(keys.owners(identifier))
        pipe.get(keys.profile(identifier))
        if timeline > 0:
            pipe.zrevrange(keys.timeline(identifier), 0, timeline - 1)
    rows = pipe.execute()
    for i, identifier in enumerate(names):
        owners, profile, *entries = rows[per * i : per * i + per]
        other = _decode(identifier, profile) if slots > 0 or profile is not None else None
        shared = is_shared(owners)
        if i >= len(linked):
            continue  # a stand-in: read and decoded for the work only
        if shared:
            loaded.shared.append(identifier)
            continue
        if loaded.customer.encode() not in owners and loaded.customer not in owners:
            continue  # its claim is gone (erased with its customer): a link no more (break-test 12h, H7)
        loaded.linked.append((identifier, other if profile is not None else None, entries[0] if entries else []))
    return loaded


def _decode(customer_key: str, row: bytes | None) -> CustomerState:
    """The stored state (its document plain or compressed), or a new customer's after decoding
    :func:`decoy_profile` (the same work). A stored document that cannot be read (damaged, an unknown
    dictionary, not a profile) gives an empty state marked ``unreadable``, as the engine's load does: an access
    decision then treats the customer as one it holds nothing for, and the desk shows nothing of it (not
    ``known``: a 404 where access is granted, as for a customer that does not exist), rather
    than failing before the decision and its audit (break-test 16c, C1: HTTP 500, unaudited, where others got
    403)."""
    if row is not None:  # an empty value is damage too, not a new customer (outside review, A4)
        try:
            return CustomerState.from_bytes(customer_key, documents.decode(row))
        except ValueError as exc:
            return unreadable_stand_in(customer_key, exc)
    CustomerState.from_bytes(customer_key, documents.decode(_stored_decoy()))
    return CustomerState.from_bytes(customer_key, None)


@functools.cache
def _stored_decoy() -> bytes:
    """:func:`decoy_profile` as stored compressed (decoding it costs what decoding a stored profile does)."""
    return documents.encode(decoy_profile())


@functools.cache
def decoy_profile() -> bytes:
    """A stored document shaped like a customer's after a day of ordinary events (web visits, an order,
    a chat, a delivery), decoded in place of a profile that does not exist, never shown or granted
    anything (no open contact: the chat is resolved).

    >>> CustomerState.from_bytes("customer_id:x", decoy_profile()).activity.get("open_contacts", {})
    {}
    """
    state = CustomerState("customer_id:decoy")
    t = 1_767_225_600_000
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("web_event", "web", {"action": "page_view", "url": "https://shop.example/p/1"}),
        ("web_event", "web", {"action": "product_view", "url": "https://shop.example/p/2", "product_id": "p2"}),
        ("order", "web", {"order_id": "o1", "amount": 40.0, "status": "placed"}),
        ("chat", "chat", {"text": "where is my parcel", "topic": "delivery", "agent_id": "a0", "queue": "q0"}),
        ("delivery", "web", {"order_id": "o1", "status": "shipped"}),
        ("chat", "chat", {"text": "thanks", "outcome": "resolved", "agent_id": "a0", "queue": "q0"}),
    ]
    for i, (kind, channel, payload) in enumerate(steps * 3):
        origin = Origin("decoy", 0, i)
        apply_event(state, Event(f"decoy-{i}", kind, channel, {"customer_id": "decoy"}, t + i * 600_000,
                                 payload, origin))  # fmt: skip
    return state.to_bytes_fresh()


def access_of(loaded: Loaded) -> dict[str, Any]:
    """What an access decision needs: whether the customer is known, the open contacts (agent, queue,
    time) of its profile and of the identifiers its 360 merges, and the keys whose flags belong to its 360
    (its own first, then the linked identifiers not shared)."""
    own = loaded.state
    mark = {"claimed": True} if loaded.claimed else {}  # a claimed identifier's profile: its contacts grant nothing
    contacts = [{"key": loaded.customer, "channel": ch, **c, **mark}
                for ch, c in own.activity.get("open_contacts", {}).items()]  # fmt: skip
    for identifier, other, _ in loaded.linked:
        if other is not None:  # a contact on a linked identifier counts only from the claim on (linked_since)
            since = linked_since(own, identifier)
            contacts += [{"key": identifier, "channel": ch, **c, "linked_at": since}
                         for ch, c in other.activity.get("open_contacts", {}).items()]  # fmt: skip
    flag_keys = [loaded.customer, *(i for i, _, _ in loaded.linked)]
    return {"customer": loaded.customer, "known": loaded.known, "open_contacts": contacts, "flag_keys": flag_keys}


def view_360(
    loaded: Loaded, now_ms: int | None = None, channel: str | None = None, timeline: int = TIMELINE_SHOWN
) -> dict[str, Any]:
    """The 360 (:func:`read_360`) of what :func:`load` read (folds the linked profiles into ``loaded.state``:
    take :func:`access_of` first). What comes from a linked identifier's profile -- its timeline entries, a
    channel's latest touch and so the context carried, the why-now reasons its data made or changed (12g, G1)
    -- is marked ``via: <its kind>`` (``device_id``, ...):
    such an identifier is no credential, so whoever holds the device id or a copy of the cookie may have
    written it, and the card says so (break-test 12f, F7)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    state = loaded.state
    merged: dict[str, list[bytes]] = {}
    own = views.why_now(state, now_ms) if loaded.linked else []  # the customer's own reasons come first (12h, H4)
    own_keys = {serde.dumps(r) for r in own}
    seen = set(own_keys)
    origin: dict[bytes, str] = {}  # a reason first found after merging a linked identifier -> its kind (12g, G1)
    own_ids = {k: set(v) for k, v in state.identity.get("ids", {}).items()}
    for identifier, other, entries in loaded.linked:
        if other is not None:
            kind = identifier.partition(":")[0]
            merge_linked(state, other)
            mark_touches(state, other, kind)
            if state.activity.get("cart") is not None and state.activity.get("cart") is other.activity.get("cart"):
                state.activity["cart"] = {**other.activity["cart"], "via": kind}  # the cart it took (12h, H8)
            for reason in views.why_now(state, now_ms):
                key = serde.dumps(reason)
                if key not in seen:
                    seen.add(key)
                    origin[key] = kind
        merged[identifier] = entries
    docs = _merge_timelines(loaded.entries, merged, timeline)
    present = views.present(state, now_ms, channel)
    if loaded.linked:  # linked data only adds reasons, marked: it never removes the customer's own (12h, H4)
        own_reasons_first(present, own, own_keys, origin)
    shown = dict(state.identity)
    via_ids = {k: [i for i in v if i not in own_ids.get(k, ())] for k, v in state.identity.get("ids", {}).items()}
    shown["ids_via"] = {k: v for k, v in via_ids.items() if v}  # identifiers only a linked profile named (12h, H8)
    return {
        "customer": loaded.customer,
        "known": loaded.known,
        "as_of": now_ms,
        "identity": {**shown, "merged": sorted(merged), "shared_identifiers": loaded.shared},
        "relationships": state.relationships,
        "activity": state.activity,
        "history": state.history,
        "value": {**state.value, **views.rfm(state, now_ms), "lifetime_value": views.lifetime_value(state, now_ms)},
        "consent": state.consent,
        "flags": state.flags,
        "predictions": state.predictions,
        "past": views.past(state, now_ms),
        "present": present,
        "future": views.future(state),
        "windows": state.windows.summary(now_ms),
        "timeline": docs,
    }  # fmt: skip


def next_best_actions(loaded: Loaded) -> dict[str, Any] | None:
    """The last decision's ranked actions with reasons (the 360's ``future.next_best_actions``), or None."""
    return views.future(loaded.state)["next_best_actions"]


def update_view(doc: dict[str, Any]) -> dict[str, Any]:
    """An updates-stream entry (``{"customer", "kind", <kind>: ...}``, state.store) as the 360 shows it:
    ``{"mood": ...}`` as ``future.mood``, ``{"next_best_actions": ...}`` as ``future.next_best_actions``."""
    kind = doc.get("kind")
    if kind == "next_best_actions":
        state = CustomerState(str(doc.get("customer", "")), predictions={kind: doc.get(kind)})
        return {kind: views.future(state)[kind]}
    return {str(kind): doc.get(str(kind))}


def active_flags(loaded: Loaded, now_ms: int) -> dict[str, dict[str, Any]]:
    """The flags raised and not expired at ``now_ms`` (the 360's ``present.active_flags``), by name, each
    with its ``relevance``: the chance agents find it relevant as estimated when it was raised (the
    ``flag_relevance`` model, learning from agents' verdicts), ``None`` before any verdict on its name
    or with the models off."""
    return {k: {**f, "relevance": f.get("relevance")} for k, f in loaded.state.flags.items()
            if f.get("expires_at", 0) > now_ms}  # fmt: skip


def _merge_timelines(own: list[bytes], merged: dict[str, list[bytes]], limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` entries of the customer's own timeline and its linked identifiers', newest first;
    a linked identifier's marked ``via: <its kind>``."""
    by_id: dict[str, dict[str, Any]] = {}
    for identifier, entries in merged.items():
        kind = identifier.partition(":")[0]
        for raw in entries:
            doc = serde.loads(documents.decode(raw))
            by_id[doc["id"]] = {**doc, "via": kind}
    for raw in own:  # the customer's own entry wins an id found in both
        doc = serde.loads(documents.decode(raw))
        by_id[doc["id"]] = doc
    return sorted(by_id.values(), key=lambda d: -d["t"])[:limit]


def _partition_aggregates(client: Any, keys: Keys) -> PartitionAggregates:
    total = PartitionAggregates()
    names = list(client.scan_iter(keys.partition_pattern(), count=1000))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, "kpi", "voc")  # only what KPIs need: no model, no due index
    for kpi, voc_row in pipe.execute():
        part = PartitionAggregates.from_fields({k: v for k, v in ((b"kpi", kpi), (b"voc", voc_row)) if v})
        total.kpi.merge(part.kpi)
        total.voc.merge(part.voc)
    return total


def read_models(client: Any, keys: Keys) -> list[dict[str, Any]]:
    """Every model's version and validation figures, one row per model and role (the models are
    shared by every partition: :mod:`operators.scoring.learner`). Reads a JSON summary, no pickle."""
    return [{"config": "shared", **row} for row in RedisModelLog(client, keys.prefix).summary()]


def read_kpis(client: Any, keys: Keys, now_ms: int | None = None) -> dict[str, Any]:
    """Contact-centre KPIs for the last hour and day, per channel and overall."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return kpis.report(_partition_aggregates(client, keys).kpi, now_ms)


def read_voc(client: Any, keys: Keys, now_ms: int | None = None, top: int = 10) -> dict[str, Any]:
    """Terms and topics rising in complaints: the last hour against the day."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return voc.rising(_partition_aggregates(client, keys).voc, now_ms, top)


# --- for the agent desktop service (gateway/): who serves the customer, paged timeline ---------------
# Readers name keys with Keys (re-exported: the service reads through this module only).


def resolve(client: Any, keys: Keys, identifier: str) -> str:
    """The customer key an identifier (``kind:value``) belongs to.

    A ``customer_id`` is its own; another identifier claimed by exactly one
    customer (an email or device linked by an event) resolves to that customer;
    one claimed by none (anonymous) or several (shared, an erased claimant
    included) stays itself. One round
    trip, none for a ``customer_id``.
    """
    if identifier.startswith("customer_id:"):
        return identifier
    owner = sole_claimant(client.smembers(keys.owners(identifier)))
    return identifier if owner is None else owner


def read_access(client: Any, keys: Keys, customer_key: str) -> dict[str, Any]:
    """What an access decision about ``customer_key`` (already resolved) needs (:func:`access_of`).

    One round trip (two with linked identifiers); no timeline is read.
    """
    return access_of(load(client, keys, customer_key))


__all__ = [
    "CLAIM_UNKNOWN",
    "DENIAL_SLOTS",
    "TIMELINE_SHOWN",
    "Keys",
    "Loaded",
    "access_of",
    "active_flags",
    "analysts_pseudonym_secret",
    "claimed_keys",
    "decoy_profile",
    "entry_open_contacts",
    "linked_since",
    "load",
    "load_linked",
    "load_own",
    "next_best_actions",
    "privacy_secret",
    "read_360",
    "read_access",
    "read_kpis",
    "read_open_contacts",
    "read_timeline",
    "read_voc",
    "resolve",
    "resolve_pseudonym",
    "update_view",
    "view_360",
]  # fmt: skip
