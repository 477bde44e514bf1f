"""Live flags, mood changes and new actions for agent desktops: one Redis reader per process, fanned
out in memory by customer.

The engine appends every flag (raised or cleared) to the stream ``<prefix>:flags``
and every mood change and new next-best-action decision to ``{<prefix>:flags}:updates``
(:mod:`state.keys`; same Cluster slot), each entry naming its ``customer``. One
thread per process reads both with one ``XREAD BLOCK`` from where it left off
and hands each batch to the event loop, which looks each entry's customer up in a dict of
subscriptions: delivering a flag costs one dict lookup plus one queue put per
connection that follows that customer, whatever the number of connections
-- no connection scans other customers' flags. Connections that follow a
*queue* are served from the entry alone: the engine writes, with each entry,
the customer's open contacts (channel, agent, queue, time) as committed with its
profile (:mod:`state.entry_contacts`), so the hub reads no profile while queues
are followed (an entry written without them, by an older engine, costs one
profile read as before). The access rule is applied at delivery, to the contacts
the entry carries: a contact that moves to another queue or ends reaches its new
queue's followers (or none) from the customer's next entry on; an entry written
before the move and delivered after it (a few milliseconds) still goes to the
old queue's followers. A catch-up (below) confirms each customer it would
deliver through a queue against the profile at the time of the resume, so a
replay never hands over a customer the caller may no longer see.

**Catch-up** (:mod:`gateway.catch_up`). Every event a connection receives carries, as its SSE ``id``, the
connection's position in both streams, ``<flags entry id>.<updates entry id>``
(:class:`Cursor`). A client that reconnects sends it back (``Last-Event-ID``);
the connection subscribes first, then replays each stream from its position
up to the position the hub had delivered at that instant, filtered to its
customers: nothing still retained is missed, nothing is sent twice. If a
position is older than the oldest entry its stream still holds, a ``reset``
event says so (reload the card). A connection whose queue overflows (a client too slow)
is closed; it reconnects and catches up the same way.

**Position.** A connection's id moves with the streams, not only with its own customers' events: every
:data:`POSITION_EVERY` entries the hub offers each connection a ``position`` marker (the hub's position once
the entries before it were offered), and an idle connection is sent the hub's position with its keep-alive;
so a desk following a quiet customer resumes from a recent id instead of from its last own event, which the
stream's cap may long have trimmed past (findings-12b B11).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.positions import FLAGS, UPDATES, Cursor, stream_id
from livesignals import metrics, serde
from state import reader

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
"""Events buffered per connection before it is closed as too slow."""
READ_COUNT = 500
"""Stream entries read per XREAD."""
CATCH_UP_MAX = 5000
"""Entries of a stream a reconnecting client may be behind by; further behind, it reloads the card (reset)."""
STALE_S = 10.0
"""A push reader that completed no read for this long is reported unhealthy (``/healthz`` 503)."""
POSITION_EVERY = CATCH_UP_MAX // 5
"""Entries handed over between two ``position`` markers to every connection (well inside ``CATCH_UP_MAX``)."""
POSITION = "position"
"""The kind of a marker item: ``(POSITION, <cursor>, "", b"", POSITION)``, no entry."""
Contacts = list[dict[str, Any]]
"""A customer's open contacts, as the access rule reads them (:func:`state.reader.read_open_contacts`)."""

Item = tuple[str, str, str, bytes, str]
"""One entry to deliver: ``(stream, entry id, customer, doc, kind)``; ``kind`` is ``flag`` or the
updates entry's kind (``mood``, ``next_best_actions``)."""


@dataclass(eq=False)
class Subscription:
    """One push connection: the customer keys (and queues) it follows, and its outbox."""

    customers: dict[str, str] = field(default_factory=dict)
    """Customer key followed -> the card's key (the customer as resolved: its own key; a linked identifier's
    entries are not the customer's, 12c C15)."""
    queues: frozenset[str] = frozenset()
    accept_queue_flag: Callable[[str, list[dict[str, Any]]], bool] = lambda _key, _contacts: False
    """For a flag of a customer found in a followed queue: may this connection see it (access rule)?"""
    outbox: asyncio.Queue[Item | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE + 1))
    """Entries to send, then ``None`` after an overflow (one slot is kept for it)."""
    overflowed: bool = False
    subject: str = ""
    """The caller's token subject (a cap on connections per caller)."""
    shown_via: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(stream, entry id)`` of an entry offered through a followed queue -> that queue: its audit entry names
    the queue (break-test 12h, H3); taken back when the entry is sent."""

    def offer(self, item: Item) -> None:
        """Queue one entry; on overflow, mark the connection to be closed (it will catch up on reconnect).

        The entry that does not fit is dropped, never one already queued: the client receives everything
        queued before it, so the last id it holds comes before every entry it missed, and its resume
        (``Last-Event-ID``) replays them all."""
        if self.overflowed:
            return
        if self.outbox.qsize() >= QUEUE_SIZE:
            self.overflowed = True
            self.outbox.put_nowait(None)
            return
        self.outbox.put_nowait(item)


class FlagHub:
    """Reads the flags and updates streams once per process and fans each entry out to its subscribers."""

    def __init__(
        self,
        client: Any,
        stream_key: str,
        open_contacts: Callable[[list[str]], dict[str, Contacts]],
        block_ms: int = 1000,
        updates_key: str | None = None,
        *,
        claimed: Callable[[set[str]], set[str]],
    ) -> None:
        self.client = client
        self.claimed = claimed
        """Which of some customer keys are claimed identifiers (:func:`state.reader.claimed_keys`)."""
        self.stream_key = stream_key
        self.updates_key = updates_key or f"{{{stream_key}}}:updates"  # as state.keys names it
        self.keys = {FLAGS: self.stream_key, UPDATES: self.updates_key}
        self.open_contacts = open_contacts
        self.block_ms = block_ms
        self.position = Cursor("0-0", "0-0")
        """The newest entries handed to subscribers (read and written on the event loop only)."""
        self.started_at = self.position
        """Before the oldest entry the hub knows: it knows every entry after it (:meth:`start`)."""
        self._by_customer: dict[str, set[Subscription]] = {}
        self._by_queue: dict[str, set[Subscription]] = {}
        self._queues_followed: frozenset[str] = frozenset()
        self._by_subject: dict[str, int] = {}
        self._subs: set[Subscription] = set()
        self._since_marker = 0
        self._recent = {s: deque[tuple[int, int]](maxlen=CATCH_UP_MAX + 1) for s in (FLAGS, UPDATES)}
        """The ids of the newest entries handed over, per stream (event loop): how far behind a resume is."""
        self._recent_customers = {s: deque[str](maxlen=CATCH_UP_MAX + 1) for s in (FLAGS, UPDATES)}
        """The customer key of each id in ``_recent`` (same order): which entries a resume needs."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.read_at = time.monotonic()
        """When the reader last completed a read (monotonic clock): health."""

    # --- lifecycle (event loop) ---------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading from the streams' current end, knowing the ids of their newest ``CATCH_UP_MAX + 1``
        entries (one read per process), so that a resume far behind is answered ``reset`` from memory in a
        process that has just started too (break-test 12d, D3: after every restart an old id cost
        2 x 5,001 entries read until the process had seen that many)."""
        self._loop = loop
        pipe = self.client.pipeline(transaction=False)
        for s in (FLAGS, UPDATES):
            pipe.xrevrange(self.keys[s], count=self._recent[s].maxlen)
        newest = []
        for s, rows in zip((FLAGS, UPDATES), pipe.execute(), strict=True):
            for entry_id, fields in reversed(rows):
                item = entry_item(s, entry_id, fields)
                if item is not None:  # as the reader hands them over: entries it would skip are not counted
                    self._recent[s].append(stream_id(item[1]))
                    self._recent_customers[s].append(item[2])
            newest.append(rows[0][0].decode() if rows else "0-0")
        self.position = Cursor(*newest)
        self.started_at = Cursor("0-0", "0-0")  # it knows every entry still kept, or the newest CATCH_UP_MAX + 1
        self._thread = threading.Thread(target=self._read_forever, args=(self.position,), name="flag-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (the thread ends within ``block_ms``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.block_ms / 1000 + 2)

    # --- subscriptions (event loop) -----------------------------------------------------

    def subscribe(self, sub: Subscription) -> Cursor:
        """Follow ``sub``'s customers and queues from now; returns the position to catch up to."""
        for key in sub.customers:
            self._by_customer.setdefault(key, set()).add(sub)
        for queue in sub.queues:
            self._by_queue.setdefault(queue, set()).add(sub)
        self._queues_followed = frozenset(self._by_queue)
        self._subs.add(sub)
        self._by_subject[sub.subject] = self._by_subject.get(sub.subject, 0) + 1
        metrics.GATEWAY_PUSH_CONNECTIONS.inc()
        return self.position

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``."""
        for index, names in ((self._by_customer, sub.customers), (self._by_queue, sub.queues)):
            for name in names:
                subs = index.get(name)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del index[name]
        self._queues_followed = frozenset(self._by_queue)
        self._subs.discard(sub)
        left = self._by_subject.get(sub.subject, 0) - 1
        if left > 0:
            self._by_subject[sub.subject] = left
        else:
            self._by_subject.pop(sub.subject, None)
        metrics.GATEWAY_PUSH_CONNECTIONS.dec()

    def connections_of(self, subject: str) -> int:
        """Push connections open for one caller (the cap per caller: gateway_push_max_connections)."""
        return self._by_subject.get(subject, 0)

    def connections(self) -> int:
        """Distinct subscriptions (tests, benchmarks)."""
        return len(self._subs)

    # --- reading (hub thread) and delivery (event loop) ---------------------------------

    def _read_forever(self, position: Cursor) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                streams = {self.stream_key: position.flags, self.updates_key: position.updates}
                reply = self.client.xread(streams, count=READ_COUNT, block=self.block_ms)
                backoff = 0.5
            except Exception as exc:  # any Redis failure: wait and read again from the same position
                log.warning("flags stream read failed (%s); retrying in %.1fs", type(exc).__name__, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not reply:
                self.read_at = time.monotonic()
                continue
            try:
                position = self._hand_over(reply, position)
            except Exception as exc:  # never let one batch end live push for the process
                log.exception("push batch failed (%s); going on after it", type(exc).__name__)
                position = _after_reply(reply, position, self.stream_key)
            self.read_at = time.monotonic()

    def _hand_over(self, reply: Any, position: Cursor) -> Cursor:
        """Parse one XREAD reply and hand its entries to the event loop; the position after it."""
        names = {self.stream_key.encode(): FLAGS, self.updates_key.encode(): UPDATES}
        entries: list[Item] = []
        routes: dict[str, Contacts | None] = {}
        queues_followed = bool(self._queues_followed)
        for name, rows in reply:
            stream = names[name if isinstance(name, bytes) else name.encode()]
            for entry_id, fields in rows:
                item = entry_item(stream, entry_id, fields)
                if item is None:  # not an entry the engine writes: skipped, the stream goes on
                    log.warning("skipped %s entry %r: no customer, or no JSON object as doc", stream, entry_id)
                    metrics.GATEWAY_PUSH_SKIPPED.inc()
                    continue
                entries.append(item)
                if queues_followed:  # who serves the customer: from the entry, no profile read
                    routes[item[1]] = reader.entry_open_contacts(item[2], fields)
            if rows:
                position = position.after(stream, rows[-1][0].decode())
        self._older_entries(entries, routes)
        self._mark_claimed(entries, routes)
        if self._loop is not None and entries:
            self._loop.call_soon_threadsafe(self._deliver, entries, routes)
        return position

    def _older_entries(self, entries: list[Item], routes: dict[str, Contacts | None]) -> None:
        """Entries written without their contacts (by an engine before :mod:`state.entry_contacts`): read
        their customers' profiles, as before (one pipelined read)."""
        missing = sorted({item[2] for item in entries if item[1] in routes and routes[item[1]] is None})
        if not missing:
            return
        try:
            found = self.open_contacts(missing)
        except Exception as exc:
            log.warning("open contacts read failed (%s): queue followers miss this batch live", type(exc).__name__)
            found = {}
        for item in entries:
            if item[1] in routes and routes[item[1]] is None:
                routes[item[1]] = found.get(item[2], [])

    def _mark_claimed(self, entries: list[Item], routes: dict[str, Contacts | None]) -> None:
        """Mark the carried contacts of entries whose customer is a claimed cookie or device (its profile is part
        of someone's 360: its contacts grant nobody; break-test 12f, F2c): one read of those keys' claims."""
        routed = {item[2] for item in entries if routes.get(item[1])}
        try:
            claimed = self.claimed(routed) if routed else set()
        except Exception as exc:  # fail closed: queue followers miss this batch's anonymous entries
            log.warning("claims read failed (%s): anonymous entries go to no queue", type(exc).__name__)
            claimed = {k for k in routed if not k.startswith("customer_id:")}
        for item in entries:
            contacts = routes.get(item[1])
            if contacts and item[2] in claimed:
                routes[item[1]] = [{**c, "claimed": True} for c in contacts]

    def entries_between(self, stream: str, after: str, upto: str) -> int | None:
        """How many entries of ``stream`` the hub handed over after ``after`` up to ``upto``, from memory (event
        loop): at least ``CATCH_UP_MAX + 1`` when ``after`` is older than every id it keeps; ``None`` when it
        cannot tell (``after`` comes before the hub started and it has not yet seen that many: read Redis).
        A resume far behind, or with a forged old id, is answered ``reset`` without reading any entry."""
        recent, start = self._recent[stream], stream_id(after)
        full = len(recent) == recent.maxlen
        if full and start < recent[0]:
            return len(recent)
        if start < stream_id(self.started_at.of(stream)):
            return None
        return bisect.bisect_right(recent, stream_id(upto)) - bisect.bisect_right(recent, start)

    def entry_ids_of(self, stream: str, after: str, upto: str, customers: Collection[str]) -> list[str] | None:
        """The ids of ``stream``'s entries of ``customers`` after ``after`` up to ``upto``, from memory (event
        loop), or ``None`` when the hub does not hold every id in that range: a resume of a connection that
        follows customers only reads those entries, by id, not every entry since its id (break-test 12d, D4:
        an id just inside ``CATCH_UP_MAX`` read 2 x 5,000 entries, docs and all, per resume)."""
        recent, start = self._recent[stream], stream_id(after)
        if start < stream_id(self.started_at.of(stream)) or (len(recent) == recent.maxlen and start < recent[0]):
            return None
        lo, hi = bisect.bisect_right(recent, start), bisect.bisect_right(recent, stream_id(upto))
        customers_of = self._recent_customers[stream]
        pairs = zip(itertools.islice(recent, lo, hi), itertools.islice(customers_of, lo, hi), strict=True)
        return [f"{ms}-{seq}" for (ms, seq), customer in pairs if customer in customers]

    def health(self) -> dict[str, Any]:
        """Is the reader running *and reading* (a read completed within ``STALE_S``, or 5 blocking reads: an
        idle stream completes one every ``block_ms``), and how long since it last completed one? A reader that
        cannot read (Redis unreachable or paused) is unhealthy, not only a dead thread (findings-12c C15)."""
        running = self._thread is not None and self._thread.is_alive()
        ago = time.monotonic() - self.read_at
        reading = ago <= max(STALE_S, 5 * self.block_ms / 1000)
        return {"push_reader": running and reading, "push_read_s_ago": round(ago, 1)}

    def _deliver(self, entries: list[Item], routes: dict[str, Contacts | None]) -> None:
        delivered = 0
        for item in entries:
            delivered += fan_out(item, self._by_customer.get(item[2], ()), self._by_queue, routes.get(item[1]))
            self.position = self.position.after(item[0], item[1])
            self._recent[item[0]].append(stream_id(item[1]))
            self._recent_customers[item[0]].append(item[2])
        metrics.GATEWAY_PUSHED.inc(delivered)
        self._since_marker += len(entries)
        if self._since_marker >= POSITION_EVERY:  # every connection's id moves with the streams
            self._since_marker = 0
            marker: Item = (POSITION, str(self.position), "", b"", POSITION)
            for sub in self._subs:
                sub.offer(marker)


def _after_reply(reply: Any, position: Cursor, flags_key: str) -> Cursor:
    """The position after every entry of an XREAD reply (a batch that failed is skipped, not re-read)."""
    for name, rows in reply:
        text = name.decode() if isinstance(name, bytes) else str(name)
        if rows:
            position = position.after(FLAGS if text == flags_key else UPDATES, rows[-1][0].decode())
    return position


def entry_item(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Item | None:
    """The entry to deliver, or None for one the engine does not write (no customer or doc, not UTF-8, a doc
    that is not a JSON object): checked once, here, before any connection gets it."""
    try:
        kind = "flag" if stream == FLAGS else fields[b"kind"].decode()
        doc = fields[b"doc"]
        if not isinstance(serde.loads(doc), dict):
            return None
        return (stream, entry_id.decode(), fields[b"customer"].decode(), doc, kind)
    except (KeyError, UnicodeDecodeError, serde.JSONDecodeError):
        return None


def fan_out(
    item: Item,
    followers: Iterable[Subscription],
    by_queue: dict[str, set[Subscription]],
    contacts: Contacts | None,
) -> int:
    """Offer one entry to the connections following its customer, or a queue it is in (``contacts``: the
    customer's open contacts the entry carries); returns how many."""
    customer = item[2]
    sent: set[Subscription] = set()
    for sub in followers:
        sub.offer((item[0], item[1], sub.customers[customer], item[3], item[4]))
        sent.add(sub)
    if contacts:
        for queue in {c.get("queue") for c in contacts}:
            for sub in by_queue.get(queue or "", ()):
                if sub not in sent and sub.accept_queue_flag(customer, contacts):
                    sub.shown_via[(item[0], item[1])] = queue or ""
                    sub.offer(item)
                    sent.add(sub)
    return len(sent)
