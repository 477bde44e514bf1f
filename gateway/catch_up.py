"""Catch-up after a reconnect: the entries of both streams a connection missed, read from Redis.

A client that reconnects with its ``Last-Event-ID`` (:class:`gateway.push.Cursor`)
gets, before the live entries, each stream's entries after its position up to
the position the hub had delivered when it subscribed, filtered to what it
follows. The read is bounded (``gateway.push.CATCH_UP_MAX`` entries per stream);
a client further behind, or behind what a stream still retains, gets a gap (the
``reset`` event: reload the card). Entries reached through a followed queue are
routed from the contacts each entry carries (:mod:`state.entry_contacts`), then
confirmed against those customers' profiles now: a replay never hands over a
customer the caller may no longer see.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from gateway import push
from gateway.push import FLAGS, UPDATES, Contacts, Cursor, Item, Subscription, entry_item, stream_id
from state import reader


def catch_up(
    client: Any,
    keys: dict[str, str],
    after: Cursor,
    upto: Cursor,
    sub: Subscription,
    open_contacts: Callable[[list[str]], dict[str, Contacts]],
    limit: int | None = None,
    behind: dict[str, int | None] | None = None,
    wanted: dict[str, list[str] | None] | None = None,
) -> tuple[bool, list[Item]]:
    """Entries of both streams (``keys``: stream -> Redis key) after ``after`` up to ``upto`` (inclusive)
    that ``sub`` follows, in time order, and whether the client missed entries it cannot get back (a
    stream lost entries past ``after``, or more than ``limit`` entries followed it). Blocking: run in a
    worker thread. ``behind``: per stream, how many entries the client is behind, when the hub knows
    (:meth:`gateway.push.FlagHub.entries_between`); a client more than ``limit`` behind is answered with a
    gap without any entry read. ``wanted``: per stream, the ids of the entries ``sub`` needs, when the hub
    knows them (:meth:`gateway.push.FlagHub.entry_ids_of`, a connection without queues): only those are read."""
    gap, out, limit = False, list[Item](), push.CATCH_UP_MAX if limit is None else limit
    for stream in (FLAGS, UPDATES):
        known = (behind or {}).get(stream)
        if known is not None and known > limit:
            gap = True  # findings-12c C4: no entry read (nor sent) for a client that far behind
            continue
        if known == 0:  # nothing since (a page subscribing with its 360's stream_id, as a rule): no read
            continue
        trimmed, items = _catch_up_one(client, keys[stream], stream, after.of(stream), upto.of(stream), sub,
                                       open_contacts, limit, (wanted or {}).get(stream))  # fmt: skip
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
    open_contacts: Callable[[list[str]], dict[str, Contacts]],
    limit: int,
    ids: list[str] | None = None,
) -> tuple[bool, list[Item]]:
    """One stream's catch-up: at most ``limit`` entries read (newest first, one XREVRANGE), or only the
    entries ``ids`` (one pipelined read); a client further behind gets a gap (reset: reload the card), so a
    forged or very old id costs one bounded read."""
    gap = after != "0-0" and _trimmed_past(client, stream_key, after)
    if stream_id(upto) <= stream_id(after):
        return gap, []
    if ids is not None:
        if len(ids) > limit:
            return True, []
        pipe = client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(stream_key, min=entry_id, max=entry_id)
        rows = [row for found in (pipe.execute() if ids else []) for row in found]
    else:
        rows = client.xrevrange(stream_key, max=upto, min="(" + after, count=limit + 1)
        if len(rows) > limit:
            return True, []
        rows.reverse()
    out: list[Item] = []
    via_queue: dict[str, Contacts | None] = {}  # entry id -> the contacts it carries, for queue candidates
    for entry_id, fields in rows:
        item = entry_item(stream, entry_id, fields)
        if item is None:
            continue
        if item[2] in sub.customers:
            out.append((stream, item[1], sub.customers[item[2]], item[3], item[4]))
        elif sub.queues:
            out.append(item)
            via_queue[item[1]] = reader.entry_open_contacts(item[2], fields)
    if not via_queue:
        return gap, out
    return gap, _queue_candidates(out, via_queue, sub, open_contacts)


def _queue_candidates(
    items: list[Item],
    via_queue: dict[str, Contacts | None],
    sub: Subscription,
    open_contacts: Callable[[list[str]], dict[str, Contacts]],
) -> list[Item]:
    """``items`` without the entries (named in ``via_queue``) that ``sub`` may not see through a queue: an entry
    goes when the contacts it carries put its customer in one of ``sub``'s queues with access, and the
    customer's contacts now (one pipelined read of those customers only) still grant access."""
    older = sorted({item[2] for item in items if item[1] in via_queue and via_queue[item[1]] is None})
    read = open_contacts(older) if older else {}

    def at_write(item: Item) -> bool:
        carried = via_queue[item[1]]
        contacts = read.get(item[2], []) if carried is None else carried
        queues = [c.get("queue") for c in contacts if c.get("queue") in sub.queues]
        if not queues or not sub.accept_queue_flag(item[2], contacts):
            return False
        sub.shown_via[(item[0], item[1])] = str(queues[0])  # the queue its audit entry names (12h, H3)
        return True

    first = [item for item in items if item[1] not in via_queue or at_write(item)]
    candidates = sorted({item[2] for item in first if item[1] in via_queue})
    now = open_contacts(candidates) if candidates else {}
    allowed = {c for c in candidates if sub.accept_queue_flag(c, now.get(c, []))}
    for item in first:
        if item[1] in via_queue and item[2] not in allowed:
            sub.shown_via.pop((item[0], item[1]), None)  # never sent: nothing to audit
    return [item for item in first if item[1] not in via_queue or item[2] in allowed]


def _trimmed_past(client: Any, stream_key: str, after: str) -> bool:
    """Might the stream have lost entries newer than ``after`` (trimmed by MAXLEN)? Only if ``after`` is older
    than the oldest entry kept and the stream ever lost one (Redis 7's ``entries-added`` against its length:
    an untrimmed stream never says reset). Entries deleted by an erasure are gone on purpose: no gap."""
    try:
        info = client.xinfo_stream(stream_key)
    except redis.ResponseError:  # no such stream: nothing was lost
        return False
    oldest = info.get("first-entry")
    if not oldest or stream_id(oldest[0]) <= stream_id(after):
        return False
    added = info.get("entries-added")
    return added is None or int(added) > int(info.get("length", 0))
