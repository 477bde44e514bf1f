"""Live flags for agent desktops: one Redis reader per process, fanned out in memory by customer.

The engine appends every flag (raised or cleared) to the stream ``<prefix>:flags``
(:mod:`state.keys`), each entry naming its ``customer``. One thread per
process reads it with ``XREAD BLOCK`` from where it left off and hands each
batch to the event loop, which looks each entry's customer up in a dict of
subscriptions: delivering a flag costs one dict lookup plus one queue put per
connection that follows that customer, whatever the number of connections
-- no connection scans other customers' flags. Connections that follow a
*queue* are served from one extra read per batch (the open contacts of the
batch's customers), made only while someone follows a queue.

**Catch-up.** Every event a connection receives carries the stream entry id
as its SSE ``id``. A client that reconnects sends it back (``Last-Event-ID``);
the connection subscribes first, then replays the stream from that id up to
the position the hub had delivered at that instant, filtered to its
customers: nothing still retained is missed, nothing is sent twice. If the id
is older than the oldest entry the stream still holds, a ``reset`` event says
so (reload the card). A connection whose queue overflows (a client too slow)
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
    outbox: asyncio.Queue[tuple[str, str, bytes] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def offer(self, entry_id: str, customer: str, doc: bytes) -> None:
        """Queue one flag; on overflow, mark the connection to be closed (it will catch up on reconnect)."""
        if self.overflowed:
            return
        try:
            self.outbox.put_nowait((entry_id, customer, doc))
        except asyncio.QueueFull:
            self.overflowed = True
            self.outbox.get_nowait()
            self.outbox.put_nowait(None)


class FlagHub:
    """Reads the flags stream once per process and fans each entry out to its subscribers."""

    def __init__(
        self,
        client: Any,
        stream_key: str,
        open_contacts: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
        block_ms: int = 1000,
    ) -> None:
        self.client = client
        self.stream_key = stream_key
        self.open_contacts = open_contacts
        self.block_ms = block_ms
        self.position = "0-0"
        """The newest entry id handed to subscribers (read and written on the event loop only)."""
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
        newest = self.client.xrevrange(self.stream_key, count=1)
        self.position = newest[0][0].decode() if newest else "0-0"
        self._thread = threading.Thread(target=self._read_forever, args=(self.position,), name="flag-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (the thread ends within ``block_ms``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.block_ms / 1000 + 2)

    # --- subscriptions (event loop) -----------------------------------------------------

    def subscribe(self, sub: Subscription) -> str:
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

    def _read_forever(self, position: str) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                reply = self.client.xread({self.stream_key: position}, count=READ_COUNT, block=self.block_ms)
                backoff = 0.5
            except Exception as exc:  # any Redis failure: wait and read again from the same position
                log.warning("flags stream read failed (%s); retrying in %.1fs", type(exc).__name__, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not reply:
                continue
            entries = [(i.decode(), f[b"customer"].decode(), f[b"doc"]) for i, f in reply[0][1]]
            position = entries[-1][0]
            queued = self._queued_contacts(entries)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._deliver, entries, queued)

    def _queued_contacts(self, entries: list[tuple[str, str, bytes]]) -> dict[str, list[dict[str, Any]]]:
        if not self._queues_followed:
            return {}
        try:
            return self.open_contacts(sorted({customer for _, customer, _ in entries}))
        except Exception as exc:
            log.warning("open contacts read failed (%s): queue followers miss this batch live", type(exc).__name__)
            return {}

    def _deliver(self, entries: list[tuple[str, str, bytes]], queued: dict[str, list[dict[str, Any]]]) -> None:
        delivered = 0
        for entry_id, customer, doc in entries:
            delivered += fan_out(entry_id, customer, doc, self._by_customer.get(customer, ()), self._by_queue, queued)
            self.position = entry_id
        metrics.GATEWAY_PUSHED.inc(delivered)


def fan_out(
    entry_id: str,
    customer: str,
    doc: bytes,
    followers: Iterable[Subscription],
    by_queue: dict[str, set[Subscription]],
    queued: dict[str, list[dict[str, Any]]],
) -> int:
    """Offer one flag to the connections following its customer, or a queue it is in; returns how many."""
    sent: set[Subscription] = set()
    for sub in followers:
        sub.offer(entry_id, sub.customers[customer], doc)
        sent.add(sub)
    contacts = queued.get(customer)
    if contacts:
        for queue in {c.get("queue") for c in contacts}:
            for sub in by_queue.get(queue or "", ()):
                if sub not in sent and sub.accept_queue_flag(customer, contacts):
                    sub.offer(entry_id, customer, doc)
                    sent.add(sub)
    return len(sent)


def catch_up(
    client: Any,
    stream_key: str,
    after: str,
    upto: str,
    sub: Subscription,
    open_contacts: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
    chunk: int = 1000,
) -> tuple[bool, list[tuple[str, str, bytes]]]:
    """Entries after ``after`` up to ``upto`` (inclusive) that ``sub`` follows, and whether the stream was
    trimmed past ``after`` (a gap the client cannot fill). Blocking: run in a worker thread."""
    oldest = client.xrange(stream_key, count=1)
    gap = bool(oldest) and stream_id(oldest[0][0]) > stream_id(after) and after != "0-0"
    if stream_id(upto) <= stream_id(after):
        return gap, []
    out: list[tuple[str, str, bytes]] = []
    start = "(" + after
    while True:
        rows = client.xrange(stream_key, min=start, max=upto, count=chunk)
        entries = [(i.decode(), f[b"customer"].decode(), f[b"doc"]) for i, f in rows]
        queued = open_contacts(sorted({c for _, c, _ in entries if c not in sub.customers})) if sub.queues else {}
        for entry_id, customer, doc in entries:
            if customer in sub.customers:
                out.append((entry_id, sub.customers[customer], doc))
            elif any(c.get("queue") in sub.queues for c in queued.get(customer, ())) and sub.accept_queue_flag(
                customer, queued[customer]
            ):
                out.append((entry_id, customer, doc))
        if len(rows) < chunk:
            return gap, out
        start = "(" + entries[-1][0]
