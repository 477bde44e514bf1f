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
*queue* are served from one extra read per batch (the open contacts of the
batch's customers), made only while someone follows a queue.

**Catch-up.** Every event a connection receives carries, as its SSE ``id``, the
connection's position in both streams, ``<flags entry id>.<updates entry id>``
(:class:`Cursor`). A client that reconnects sends it back (``Last-Event-ID``);
the connection subscribes first, then replays each stream from its position
up to the position the hub had delivered at that instant, filtered to its
customers: nothing still retained is missed, nothing is sent twice. If a
position is older than the oldest entry its stream still holds, a ``reset``
event says so (reload the card). A connection whose queue overflows (a client too slow)
is closed; it reconnects and catches up the same way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from livesignals import metrics

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
"""Events buffered per connection before it is closed as too slow."""
READ_COUNT = 500
"""Stream entries read per XREAD."""
FLAGS, UPDATES = "flags", "updates"
"""The two streams a hub follows (their positions in a :class:`Cursor`)."""

Item = tuple[str, str, str, bytes, str]
"""One entry to deliver: ``(stream, entry id, customer, doc, kind)``; ``kind`` is ``flag`` or the
updates entry's kind (``mood``, ``next_best_actions``)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A connection's position in both streams: everything up to it that concerns the connection was sent.

    >>> Cursor.parse("1767225600000-0.1767225600005-2")
    Cursor(flags='1767225600000-0', updates='1767225600005-2')
    >>> str(Cursor("5-0", "7-1")), Cursor.parse("5-0")  # a single id (before mood/actions): both streams
    ('5-0.7-1', Cursor(flags='5-0', updates='5-0'))
    """

    flags: str
    updates: str

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """From a ``Last-Event-ID`` (checked by the caller: ``<id>`` or ``<id>.<id>``)."""
        first, _, second = text.partition(".")
        return cls(first, second or first)

    def after(self, stream: str, entry_id: str) -> Cursor:
        """This cursor moved to ``entry_id`` in ``stream``."""
        return Cursor(entry_id, self.updates) if stream == FLAGS else Cursor(self.flags, entry_id)

    def of(self, stream: str) -> str:
        """The position in ``stream``."""
        return self.flags if stream == FLAGS else self.updates

    def __str__(self) -> str:
        return f"{self.flags}.{self.updates}"


def stream_id(value: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable pair.

    >>> stream_id(b"1700000000000-3") < stream_id("1700000000001-0")
    True
    """
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Subscription:
    """One push connection: the customer keys (and queues) it follows, and its outbox."""

    customers: dict[str, str] = field(default_factory=dict)
    """Flag key -> the customer (as resolved) whose card it belongs to (linked identifiers map to it)."""
    queues: frozenset[str] = frozenset()
    accept_queue_flag: Callable[[str, list[dict[str, Any]]], bool] = lambda _key, _contacts: False
    """For a flag of a customer found in a followed queue: may this connection see it (access rule)?"""
    outbox: asyncio.Queue[Item | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def offer(self, item: Item) -> None:
        """Queue one entry; on overflow, mark the connection to be closed (it will catch up on reconnect)."""
        if self.overflowed:
            return
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            self.outbox.get_nowait()
            self.outbox.put_nowait(None)


class FlagHub:
    """Reads the flags and updates streams once per process and fans each entry out to its subscribers."""

    def __init__(
        self,
        client: Any,
        stream_key: str,
        open_contacts: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
        block_ms: int = 1000,
        updates_key: str | None = None,
    ) -> None:
        self.client = client
        self.stream_key = stream_key
        self.updates_key = updates_key or f"{{{stream_key}}}:updates"  # as state.keys names it
        self.keys = {FLAGS: self.stream_key, UPDATES: self.updates_key}
        self.open_contacts = open_contacts
        self.block_ms = block_ms
        self.position = Cursor("0-0", "0-0")
        """The newest entries handed to subscribers (read and written on the event loop only)."""
        self._by_customer: dict[str, set[Subscription]] = {}
        self._by_queue: dict[str, set[Subscription]] = {}
        self._queues_followed: frozenset[str] = frozenset()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle (event loop) ---------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading from the stream's current end."""
        self._loop = loop
        self.position = Cursor(*(_newest(self.client, self.keys[s]) for s in (FLAGS, UPDATES)))
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
        metrics.GATEWAY_PUSH_CONNECTIONS.dec()

    def connections(self) -> int:
        """Distinct subscriptions (tests, benchmarks)."""
        return len({s for subs in (*self._by_customer.values(), *self._by_queue.values()) for s in subs})

    # --- reading (hub thread) and delivery (event loop) ---------------------------------

    def _read_forever(self, position: Cursor) -> None:
        backoff = 0.5
        names = {self.stream_key.encode(): FLAGS, self.updates_key.encode(): UPDATES}
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
                continue
            entries: list[Item] = []
            for name, rows in reply:
                stream = names[name if isinstance(name, bytes) else name.encode()]
                entries += [_item(stream, i, f) for i, f in rows]
                if rows:
                    position = position.after(stream, rows[-1][0].decode())
            queued = self._queued_contacts(entries)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._deliver, entries, queued)

    def _queued_contacts(self, entries: list[Item]) -> dict[str, list[dict[str, Any]]]:
        if not self._queues_followed:
            return {}
        try:
            return self.open_contacts(sorted({item[2] for item in entries}))
        except Exception as exc:
            log.warning("open contacts read failed (%s): queue followers miss this batch live", type(exc).__name__)
            return {}

    def _deliver(self, entries: list[Item], queued: dict[str, list[dict[str, Any]]]) -> None:
        delivered = 0
        for item in entries:
            delivered += fan_out(item, self._by_customer.get(item[2], ()), self._by_queue, queued)
            self.position = self.position.after(item[0], item[1])
        metrics.GATEWAY_PUSHED.inc(delivered)


def _newest(client: Any, key: str) -> str:
    newest = client.xrevrange(key, count=1)
    return newest[0][0].decode() if newest else "0-0"


def _item(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Item:
    kind = "flag" if stream == FLAGS else fields.get(b"kind", b"").decode()
    return (stream, entry_id.decode(), fields[b"customer"].decode(), fields[b"doc"], kind)


def fan_out(
    item: Item,
    followers: Iterable[Subscription],
    by_queue: dict[str, set[Subscription]],
    queued: dict[str, list[dict[str, Any]]],
) -> int:
    """Offer one entry to the connections following its customer, or a queue it is in; returns how many.
    A follower gets it under the key of the card it follows (a linked identifier's entry: its customer's)."""
    customer = item[2]
    sent: set[Subscription] = set()
    for sub in followers:
        sub.offer((item[0], item[1], sub.customers[customer], item[3], item[4]))
        sent.add(sub)
    contacts = queued.get(customer)
    if contacts:
        for queue in {c.get("queue") for c in contacts}:
            for sub in by_queue.get(queue or "", ()):
                if sub not in sent and sub.accept_queue_flag(customer, contacts):
                    sub.offer(item)
                    sent.add(sub)
    return len(sent)


def catch_up(
    client: Any,
    keys: dict[str, str],
    after: Cursor,
    upto: Cursor,
    sub: Subscription,
    open_contacts: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
    chunk: int = 1000,
) -> tuple[bool, list[Item]]:
    """Entries of both streams (``keys``: stream -> Redis key) after ``after`` up to ``upto`` (inclusive)
    that ``sub`` follows, in time order, and whether a stream was trimmed past ``after`` (a gap the client
    cannot fill). Blocking: run in a worker thread."""
    gap, out = False, list[Item]()
    for stream in (FLAGS, UPDATES):
        trimmed, items = _catch_up_one(client, keys[stream], stream, after.of(stream), upto.of(stream), sub,
                                       open_contacts, chunk)  # fmt: skip
        gap, out = gap or trimmed, out + items
    out.sort(key=lambda item: stream_id(item[1]))  # each stream's own order is kept (a stable sort)
    return gap, out


def _catch_up_one(
    client: Any,
    stream_key: str,
    stream: str,
    after: str,
    upto: str,
    sub: Subscription,
    open_contacts: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
    chunk: int,
) -> tuple[bool, list[Item]]:
    oldest = client.xrange(stream_key, count=1)
    gap = bool(oldest) and stream_id(oldest[0][0]) > stream_id(after) and after != "0-0"
    if stream_id(upto) <= stream_id(after):
        return gap, []
    out: list[Item] = []
    start = "(" + after
    while True:
        rows = client.xrange(stream_key, min=start, max=upto, count=chunk)
        entries = [_item(stream, i, f) for i, f in rows]
        others = sorted({e[2] for e in entries if e[2] not in sub.customers})
        queued = open_contacts(others) if sub.queues and others else {}
        for item in entries:
            customer = item[2]
            if customer in sub.customers:
                out.append((stream, item[1], sub.customers[customer], item[3], item[4]))
            elif any(c.get("queue") in sub.queues for c in queued.get(customer, ())) and sub.accept_queue_flag(
                customer, queued[customer]
            ):
                out.append(item)
        if len(rows) < chunk:
            return gap, out
        start = "(" + entries[-1][1]
