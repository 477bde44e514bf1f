"""The facts LiveSignals keeps live for each customer, in the 360's sections.

:class:`CustomerState` holds *facts* only; everything that depends on the
time of reading (why the customer is contacting us now, recency, RFM,
lifetime value, window values, "context carried") is derived from it by
:mod:`operators.profile360.views`. The whole state is one compact JSON
document, stored in one string key: one encode and one cheap write per customer and
batch, and a fraction of the memory of a hash with a field per section. Redis
holds it as a zstd frame with a dictionary shipped in the package (about 4x
smaller; ``profile_compression``, :mod:`livesignals.documents`), compressed only
at the commit: in memory, and in the undo records taken per event, it stays JSON.

Sections (issue 3, the seeds' "360 snapshot"):

* ``identity`` -- identifiers seen (by kind), attributes from profile updates,
  first/last seen, language, merges (identifiers linked, when, by which event);
* ``relationships`` -- links to other people or organisations from profile updates;
* ``activity`` -- the present: open orders, deliveries in flight, open cases,
  recent errors, the cart;
* ``history`` -- counts by channel and type, campaigns, cases, surveys, offers,
  and the last touchpoint per channel (topic, outcome) for omnichannel continuity;
* ``value`` -- orders, spend, returns, refunds, products held, loyalty;
* ``consent`` -- per purpose (marketing, service, profiling);
* ``flags`` -- flags currently raised;
* ``predictions`` -- the future, filled by the online models (churn, negotiation,
  up-sell, mood) -- empty slots until then;
* ``windows`` -- event-time window buckets (:mod:`operators.profile360.windows`);
* ``applied`` -- last applied offset per ``topic:partition`` (replays are skipped);
* ``recent_ids`` -- fingerprints of the last :data:`MAX_EVENT_IDS` event ids applied
  (a redelivery of one of them is a duplicate and has no effect);
* ``seen`` -- newest event time per ``topic:partition`` of first publication
  (lateness at an event's input position, :mod:`operators.lateness`).

**Deduplication horizon.** An event whose ``event_id`` is among the last
:data:`MAX_EVENT_IDS` events applied to the same customer is a duplicate,
whatever its offset or payload: the engine skips it and counts it in
``livesignals_events_duplicate_total``. An older id is no longer remembered.
Ids are kept as 72-bit fingerprints (12 characters), so the memory is bounded
whatever the ids' length; a false match needs two ids of one customer to
collide within the horizon (odds about ``MAX_EVENT_IDS / 2**72`` per event).
An event that was dead-lettered was not applied, so its id is not remembered:
a corrected retry with the same id applies.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from livesignals import metrics, serde
from livesignals.contract import Event
from operators.profile360.windows import Windows

log = logging.getLogger(__name__)

SECTIONS = (
    "identity", "relationships", "activity", "history", "value", "consent",
    "flags", "predictions", "recent_contacts", "applied", "timeline_meta", "recent_ids", "seen",
)  # fmt: skip
"""Keys of the stored document holding a section as is (``windows`` and ``events`` apart)."""

_SECTION_TYPES = {name: dict for name in SECTIONS} | {"recent_contacts": list, "recent_ids": list}
"""The JSON type of each of :data:`SECTIONS` in a stored document (checked by :meth:`CustomerState.from_bytes`)."""

MAX_REPLAY = 64
"""Most events an undo record has applied again after its document (beyond it, the state is encoded)."""

MAX_EVENT_IDS = 32
"""Event ids remembered per customer for deduplication (the horizon; see the module docstring)."""


def fingerprint(event_id: str) -> str:
    """A short fixed-size stand-in for an event id (72 bits, 12 URL-safe characters).

    >>> fingerprint("e1"), len(fingerprint("x" * 128))
    ('_hBK0Vxo2wTX', 12)
    """
    digest = _blake2b(event_id.encode(), digest_size=9).digest()
    return _b2a_base64(digest, newline=False).translate(_URL_SAFE).decode()  # base64.urlsafe_b64encode, inlined


_blake2b, _b2a_base64 = hashlib.blake2b, binascii.b2a_base64
_URL_SAFE = bytes.maketrans(b"+/", b"-_")
"""What :func:`fingerprint` runs once per event, looked up once (base64's urlsafe encoder is two Python calls)."""


@dataclass
class CustomerState:
    """Live facts about one customer (see the module docstring for the sections).

    >>> s = CustomerState("customer_id:c1")
    >>> CustomerState.from_bytes("customer_id:c1", s.to_bytes()) == s
    True
    """

    customer_key: str
    events: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    relationships: dict[str, Any] = field(default_factory=dict)
    activity: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    value: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, bool] = field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    recent_contacts: list[list[Any]] = field(default_factory=list)
    """``[time_ms, channel, topic, event_id]`` of the last inbound contacts, oldest first."""
    windows: Windows = field(default_factory=Windows)
    applied: dict[str, int] = field(default_factory=dict)
    timeline_meta: dict[str, int] = field(default_factory=dict)
    """Upkeep of the timeline key: ``n``, an upper bound of its entries (replays only
    overcount), and ``ttl_day``, the event day its TTL was last refreshed."""
    recent_ids: list[str] = field(default_factory=list)
    """:func:`fingerprint` of the last :data:`MAX_EVENT_IDS` event ids applied, oldest first."""
    seen: dict[str, list[int]] = field(default_factory=dict)
    """``topic:partition`` where events were first published -> ``[newest event time, its record's Kafka
    timestamp]``: lateness is judged at an event's input position (:mod:`operators.lateness`)."""
    new_links: list[str] = field(default_factory=list, compare=False)
    """Identifiers linked by events of the current batch (written by the store, not kept)."""
    new_timeline: list[tuple[int, bytes]] = field(default_factory=list, compare=False)
    """Timeline entries of the current batch (written by the store, not kept)."""
    erased: dict[str, Any] | None = field(default=None, compare=False)
    """Set when an ``erase`` event of the current batch erased this customer (:mod:`operators.erasure`):
    the store deletes what Redis holds before writing anything newer; not kept."""
    unreadable: str | None = field(default=None, compare=False, repr=False)
    """Why the stored document of this customer could not be read (a damaged frame, a dictionary this version
    does not ship, JSON that is not a profile), when so: the state is empty, the engine dead-letters the
    customer's events instead of applying them over what Redis holds (an erase still erases it), and the
    store never writes it (break-test 16a, A1: one such document stopped every partition of its worker)."""
    pseudonym_written: bool = field(default=False, compare=False, repr=False)
    """The store wrote analysts' lookup key of this customer since the state was loaded (in memory only:
    :func:`state.erasure.pseudonym_writes` writes it once per load, never into the document)."""
    rules_memo: Any = field(default=None, compare=False, repr=False)
    """What the last rule evaluation left (:class:`operators.rules.dependencies.RuleMemo`), in memory
    only: None (every rule runs) after a load, a change outside an event, an undo or a late event."""
    _document: bytes | None = field(default=None, compare=False, repr=False)
    """The stored document equal to this state as it is now, when known (see :meth:`undo_record`)."""
    _base: tuple[int, bytes, list[Any]] | None = field(default=None, compare=False, repr=False)
    """``(batch, document, events)``: the state was ``document`` earlier in ``batch``, and ``events`` were
    applied to it since, in order (see :meth:`undo_record`)."""

    def already_applied(self, event: Event) -> bool:
        """True when this event's offset was applied before (a replay; :func:`operators.routing.is_replay`)."""
        from operators.routing import is_replay

        return is_replay(self.applied, event)

    def is_duplicate(self, event_fingerprint: str) -> bool:
        """True when an event with this :func:`fingerprint` was applied recently (see the horizon above)."""
        return event_fingerprint in self.recent_ids

    def remember_id(self, event_fingerprint: str) -> None:
        """Remember that the event with this :func:`fingerprint` was applied (the oldest beyond the horizon is
        forgotten)."""
        ids = self.recent_ids
        ids.append(event_fingerprint)
        if len(ids) > MAX_EVENT_IDS:
            del ids[:-MAX_EVENT_IDS]

    def undo_record(self, batch: int = -1) -> Undo:
        """What :meth:`undo` needs to put this state back as it is now (taken before each event).

        A stored document and the events of batch ``batch`` applied since it, which
        the engine applies again after :meth:`undo` (:meth:`Undo.replay`). A
        document is cheaper than a deep copy (one orjson encode, measured
        6-25 µs for profiles of 0.8-10 kB against 100-700 µs for
        ``copy.deepcopy``), and restoring from it gives exactly the state a
        restart would load; but a heavy customer's document is encoded in
        70-200 µs, and such a customer has many events in one batch. So a
        record encodes nothing when the state is still the document it was
        loaded from (or last committed as, or a new customer's), nor when an
        earlier record of the same batch has a document and at most
        :data:`MAX_REPLAY` events applied since: failures are rare, and only a
        failure pays for re-applying them. Otherwise (another batch, ``batch``
        negative, too many events since, or a change outside an event) the
        state is encoded now. A record names the batch because the models
        learn between batches: an event is re-applied only in the batch that
        applied it, where it gives the same state again.

        Taking a record hands the state to a change: the next record encodes or
        replays, unless :meth:`to_bytes`, :meth:`from_bytes` or :meth:`undo`
        said what it is again. Whoever changes a state outside an event says so
        with :meth:`changed` (an erasure marks the state ``erased`` until its
        commit: that says it). Each event applied after a record is reported
        with :meth:`note_applied`.

        >>> s = CustomerState.from_bytes("customer_id:c1", CustomerState("customer_id:c1").to_bytes())
        >>> first = s.undo_record(); s.events += 1
        >>> s.undo_record().document == s.to_bytes() != first.document
        True
        >>> first = s.undo_record(batch=7); s.events += 1; s.note_applied("e2")
        >>> second = s.undo_record(batch=7)   # nothing encoded: the first record's document, then e2
        >>> second.document == first.document, second.replay()
        (True, ['e2'])
        """
        document, self._document = self._document, None
        base = self._base
        if self.erased is not None:  # erased in this batch (operators.erasure): changed outside an event
            document = None
        elif document is None and base is not None and base[0] == batch >= 0 and len(base[2]) < MAX_REPLAY:
            return Undo(base[1], len(self.new_timeline), len(self.new_links), base[2], len(base[2]))
        if document is None:
            document = self.to_bytes_fresh()
        self._base = (batch, document, [])
        return Undo(document, len(self.new_timeline), len(self.new_links))

    def note_applied(self, event: Any) -> None:
        """Say that ``event`` was applied to this state, all of it, after the last :meth:`undo_record`."""
        if self._base is not None:
            self._base[2].append(event)

    def changed(self) -> None:
        """Say that this state was changed outside an event (its last known document is stale)."""
        self._document = None
        self._base = None
        self.rules_memo = None

    def undo(self, record: Undo) -> None:
        """Put the state back as it was when ``record``'s document was taken (in place: caches hold this
        object); the caller then applies :meth:`Undo.replay` again, if any, to reach the record's moment."""
        before = CustomerState.from_bytes(self.customer_key, record.document)
        for name in (*SECTIONS, "events", "windows"):
            setattr(self, name, getattr(before, name))
        del self.new_timeline[record.timeline :]
        del self.new_links[record.links :]
        self._document = None if record.replayed else record.document
        self._base = None
        self.rules_memo = None

    def to_bytes(self) -> bytes:
        """The stored document (compact JSON); remembered as what this state is until it changes."""
        self._document = document = self.to_bytes_fresh()
        self._base = None
        return document

    def to_bytes_fresh(self) -> bytes:
        """The stored document, encoded now (without remembering it)."""
        doc: dict[str, Any] = {name: getattr(self, name) for name in SECTIONS}
        doc["events"] = self.events
        doc["windows"] = serde.fragment(self.windows.to_json_bytes())  # to_json()'s bytes, without its copy
        return serde.dumps(doc)

    @classmethod
    def from_bytes(cls, customer_key: str, data: bytes | None) -> CustomerState:
        """Rebuild from the stored document; ``None`` (no such key) gives a new customer. A key that exists but
        holds no profile raises :class:`ValueError` (:func:`unreadable_stand_in` is what the store makes of it):
        an empty value, JSON that is not an object, or an object whose sections (the top level: ``events``, each
        of :data:`SECTIONS`, ``windows``) have the wrong type. An empty value was read as a new customer, and
        its history lost at the next commit; a section of the wrong type dead-lettered each event with a
        ``TypeError`` (outside review, A4). Deeper inside a section, types are not checked (an event they
        break is dead-lettered with the error, as before)."""
        state = cls(customer_key)
        if data is None:
            state._document = _new_document()  # a new customer's document: the same for every key
            return state
        if not data:
            raise ValueError("a stored profile is empty")
        doc = serde.loads(data)
        if not isinstance(doc, dict):
            raise ValueError(f"a stored profile is a JSON object, not {type(doc).__name__}")
        for name in SECTIONS:
            if name in doc:
                value = doc[name]
                if type(value) is not _SECTION_TYPES[name]:
                    raise ValueError(f"section {name!r} of a stored profile is {type(value).__name__}")
                setattr(state, name, value)
        events = doc.get("events", 0)
        if type(events) is not int:
            raise ValueError(f"'events' of a stored profile is {type(events).__name__}")
        state.events = events
        try:
            state.windows = Windows.from_json(doc.get("windows"))
        except (TypeError, KeyError, AttributeError, ValueError) as exc:  # a damaged windows section
            raise ValueError(f"section 'windows' of a stored profile cannot be read ({type(exc).__name__})") from None
        state._document = bytes(data)
        return state


def unreadable_stand_in(customer_key: str, exc: Exception) -> CustomerState:
    """An empty state standing for a customer whose stored document could not be read (see
    :attr:`CustomerState.unreadable`; counted and logged once per load); ``exc`` says why, without the
    document's content."""
    state = CustomerState(customer_key)
    state.unreadable = f"{type(exc).__name__}: {str(exc)[:200]}"
    metrics.PROFILES_UNREADABLE.inc()
    log.error("a stored profile cannot be read (%s): the engine dead-letters its customer's events until it is "
              "repaired or the customer erased; the agent desktop shows nothing of it", state.unreadable)  # fmt: skip
    return state


@functools.cache
def _new_document() -> bytes:
    """The stored document of a new customer (it names no key: the same for all)."""
    return CustomerState("").to_bytes_fresh()


@dataclass(slots=True)
class Undo:
    """A state as it was before an event (:meth:`CustomerState.undo_record`): a document, then the
    events of :meth:`replay` applied to it. One is made per event applied, so it is not frozen (a frozen
    dataclass sets each field through ``object.__setattr__``); nothing changes one once made."""

    document: bytes
    timeline: int
    """Entries in ``new_timeline`` then."""
    links: int
    """Entries in ``new_links`` then."""
    since: list[Any] = field(default_factory=list)
    """Events applied after ``document`` (a list later events of the batch extend: see ``replayed``)."""
    replayed: int = 0
    """How many of ``since`` were applied before this record's moment."""

    def replay(self) -> list[Any]:
        """The events to apply again after :meth:`CustomerState.undo`, in order, to reach this record's moment."""
        return self.since[: self.replayed]
