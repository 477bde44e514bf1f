"""The live push route: Server-Sent Events for the customers on an agent's screen and their queues: their
flags, mood changes and new next-best actions.

``GET /v1/push?customer=<key>&customer=<key>&queue=<name>`` with the bearer
token in the ``Authorization`` header (the page reads the stream with
``fetch``, so no token travels in a URL). Each customer is resolved and
authorised like a read and each subscription audited (action
``subscribe``); one customer denied denies the whole request (403), so a
client cannot probe. A queue may be followed only if it is one of the
token's queues; flags of customers in it are delivered when the access rule
lets the caller see that customer at that moment.

Access is checked again every ``gateway_push_recheck_s`` for each customer
followed: when the caller may no longer see one (the contact ended, moved to
another agent, aged out), the stream ends with ``bye`` and the denial is audited.

Events: ``flag`` (``data``: ``{"customer": <the card's key>, "flag": <flag-v1>}``),
``mood`` (``{"customer": ..., "mood": {"last", "avg", "trend", "n", "t"}}``, the
360's ``future.mood``), ``actions`` (``{"customer": ..., "next_best_actions":
...}``, the 360's ``future.next_best_actions``: a new decision), each with
``id`` the connection's position in both streams (:class:`gateway.push.Cursor`);
``reset`` (the ``Last-Event-ID`` is older than the streams retain: reload the
card), ``bye`` (the token expired or access ended); a comment
every ``gateway_push_keepalive_s`` keeps proxies from closing an idle stream.

The id moves with the streams, not only with the connection's own events: a block with an ``id`` and a
comment but no event (``id: <position>`` / ``: position``: the SSE standard sets the client's Last-Event-ID
from it and dispatches nothing) is sent with the keep-alive when the hub moved on, and after every
``gateway.push.POSITION_EVERY`` entries of anyone's, so a desk following a quiet customer resumes instead of
being told ``reset``. The 360 (``GET /v1/customers/{key}``) returns ``stream_id``, the streams' position
read before the profile: a page that subscribes with it as ``Last-Event-ID`` misses no flag raised between
its 360 read and its subscription.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from gateway import access, api
from gateway.auth import Principal
from gateway.catch_up import catch_up
from gateway.problems import Problem
from gateway.push import FLAGS, POSITION, UPDATES, Cursor, FlagHub, Item, Subscription
from gateway.queue_audit import audit_shown, write_batch
from livesignals import metrics, serde
from livesignals.privacy import AnalystPseudonyms
from state import reader

log = logging.getLogger(__name__)
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}(\.\d{1,20}-\d{1,20})?$")
EVENT_NAMES = {"flag": b"flag", "mood": b"mood", "next_best_actions": b"actions"}


async def push(service: api.Service, hub: FlagHub, request: Request) -> Response:
    """Open an SSE stream of flags for the requested customers and queues. The token is checked before the
    customers named are read (break-test 12f, F4: canonicalising thousands of ``customer=`` values cost a
    tokenless caller ~10 refusals' CPU); :func:`_authorise` finds it verified."""
    await run_in_threadpool(api.principal_of, service, request, "subscribe", api.printable(_first_named(request)))
    asked = _distinct(request.query_params.getlist("customer"))  # one customer named twice: authorised once
    queues = list(dict.fromkeys(request.query_params.getlist("queue")))  # a name repeated is audited once
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or ""
    if last_id and not (EVENT_ID.match(last_id) and all(int(n) < 2**64 for n in re.split(r"[-.]", last_id))):
        raise Problem(400, "Bad Last-Event-ID", "expected an event id such as 1767225600000-0.1767225600000-0")
    sub, principal = await run_in_threadpool(_authorise, service, request, asked, queues, hub)
    if hub.connections_of(principal.subject) >= service.settings.gateway_push_max_connections:  # again: another
        # connection may have opened meanwhile; the refusal is audited off the event loop
        shown = api.printable(_first_named(request)[:200])
        await run_in_threadpool(_check_connections, service, request, hub, principal, shown)
    sub.subject = principal.subject
    upto = hub.subscribe(sub)
    try:
        gap, backlog, start = False, list[Item](), upto
        if last_id:
            start = Cursor.parse(last_id)
            behind = {s: hub.entries_between(s, start.of(s), upto.of(s)) for s in (FLAGS, UPDATES)}
            wanted = None if sub.queues else {s: hub.entry_ids_of(s, start.of(s), upto.of(s), sub.customers)
                                              for s in (FLAGS, UPDATES)}  # fmt: skip
            gap, backlog = await run_in_threadpool(catch_up, service.client, hub.keys, start, upto, sub,
                                                   hub.open_contacts, None, behind, wanted)  # fmt: skip
    except BaseException:
        hub.unsubscribe(sub)
        raise
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    body = _events(service, hub, sub, principal, gap, backlog, start)
    write_timeout_s = max(10.0, 2 * service.settings.gateway_push_keepalive_s)
    return PushResponse(body, principal.expires_at, write_timeout_s, media_type="text/event-stream", headers=headers)


class PushResponse(StreamingResponse):
    """A stream that a client who stops reading cannot hold open: a write still waiting after
    ``write_timeout_s``, or when the token expires (``deadline``, epoch seconds), ends the connection
    (what is already in the sockets' buffers may still arrive; nothing more is written)."""

    def __init__(self, content: AsyncIterator[bytes], deadline: float, write_timeout_s: float, **kw: Any) -> None:
        super().__init__(content, **kw)
        self.deadline = deadline
        self.write_timeout_s = write_timeout_s

    async def stream_response(self, send: Send) -> None:
        """Send the events; stop at the first write that outlasts its timeout or the token."""
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                # the events end themselves at expiry (bye); a write blocked past it gets a second more
                wait_s = min(self.write_timeout_s, max(1.0, self.deadline - time.time()))
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                await asyncio.wait_for(send(message), wait_s)
        except TimeoutError:
            return  # the server closes the connection: the response never completed
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()  # the generator's finally: unsubscribe
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _first_named(request: Request) -> str:
    """What a push request follows first, as a refused token's audit entry names it (200 characters at
    most), from the start of the query string only: the rest is not parsed before the token is checked.

    >>> class R: scope = {"query_string": b"queue=billing&customer=email%3AAnn%40x.com&customer=c2"}
    >>> _first_named(R()), _first_named(type("E", (), {"scope": {}})())
    ('email:Ann@x.com', 'queue:')
    """
    head = bytes(request.scope.get("query_string", b""))[:2048].decode("latin-1")
    pairs = parse_qsl(head, keep_blank_values=True)
    customers = [v for k, v in pairs if k == "customer"]
    queues = [v for k, v in pairs if k == "queue"]
    return (customers[0] if customers else "queue:" + ",".join(queues))[:200]


def _distinct(raw_keys: list[str]) -> list[str]:
    """The customers asked for, each once however it was spelt (``c1``, ``customer_id:c1``), first spelling
    kept; a key that is no identifier is kept as sent (refused and audited once).

    >>> _distinct(["c1", "customer_id:c1", "c2", "c1", "bad kind:x", "bad kind:x"])
    ['c1', 'c2', 'bad kind:x']
    """
    first: dict[str, str] = {}
    for raw in raw_keys:
        try:
            key = api.customer_key(raw)
        except Problem:
            key = raw
        first.setdefault(key, raw)
    return list(first.values())


def _check_connections(service: api.Service, request: Request, hub: FlagHub, principal: Principal, asked: str) -> None:
    """A 429 (audited as a refusal: :func:`gateway.api.rate_limited`) when the caller already holds
    ``gateway_push_max_connections`` open push connections."""
    limit = service.settings.gateway_push_max_connections
    if hub.connections_of(principal.subject) >= limit:
        what = f"at most {limit} open push connections per caller"
        raise api.rate_limited(service, request, principal, "subscribe", asked, what)


def _authorise(
    service: api.Service, request: Request, asked: list[str], queues: list[str], hub: FlagHub
) -> tuple[Subscription, Principal]:
    """The connection's subscription: the token, the caller's connection cap and subscription rate (429s,
    before anything is read, audited as refusals -- never as a subscription; 12c C13, 12k), then each customer
    authorised and audited once -- however many of its identifiers were named (12c C13)
    -- and each queue checked. A connection follows each customer's own key only: a linked identifier's
    flags, mood and actions are not the customer's (the 360, ``/flags`` and feedback show only the
    customer's own; 12c C15, after C6/C16's rule that a linked identifier's contact grants nothing)."""
    if not asked and not queues:
        raise Problem(400, "Nothing to follow", "name at least one customer= or queue=")
    limit = service.settings.gateway_push_max_customers
    if len(asked) > limit:
        raise Problem(400, "Too many customers", f"at most {limit} per connection")
    first = asked[0] if asked else "queue:" + ",".join(queues)
    shown = api.printable(first[:200])
    principal = api.principal_of(service, request, "subscribe", shown)
    _check_connections(service, request, hub, principal, shown)
    per_min = service.settings.gateway_push_subscribes_per_min
    if not service.subscribes.allow(principal.subject):  # before any customer is read; a refusal, budgeted
        what = f"at most {per_min} push subscriptions a minute per caller"
        raise api.rate_limited(service, request, principal, "subscribe", shown, what)
    customers: dict[str, str] = {}
    for raw in asked:
        granted = api.authorise(service, request, "subscribe", raw, already=customers)
        customers[granted.customer] = granted.customer
    for queue in queues:
        allowed = queue in principal.queues and principal.role in ("agent", "supervisor")
        reason = "one of your queues" if allowed else "not one of your queues"
        queue_key = api.printable(f"queue:{queue}"[:300])
        if allowed:
            service.audit.record(principal.subject, principal.role, "subscribe", queue_key, None, True, reason)
        if not allowed:  # written whatever the refusal budget, like a denial on a customer (break-test 12e, E1)
            if not service.decisions.allow(principal.subject):  # bounded by gateway_audited_per_min
                raise api.rate_limited(service, request, principal, "subscribe", queue_key)
            client = request.client
            service.audit.record(principal.subject, principal.role, "subscribe", queue_key, None, False, reason,
                                 source=client[0] if client else "-")  # fmt: skip
            raise Problem(403, "Forbidden", f"queue {queue!r} is not one of yours")
    max_age_ms = service.settings.gateway_contact_open_s * 1000
    who = principal

    def accept(key: str, contacts: list[dict[str, Any]]) -> bool:
        return access.decide(who, key, contacts, now_ms=int(time.time() * 1000), max_age_ms=max_age_ms).allowed

    return Subscription(customers=customers, queues=frozenset(queues), accept_queue_flag=accept), principal


def _frame(cursor: Cursor, item: Item, role: str, pseudonym: AnalystPseudonyms | None = None) -> bytes:
    _, _, customer, doc, kind = item
    body = serde.loads(doc)
    shown = {"flag": body} if kind == "flag" else reader.update_view(body)
    data = serde.dumps({"customer": access.mask_key(customer, role, pseudonym),
                        **access.mask(shown, role, pseudonym)})  # fmt: skip
    name = EVENT_NAMES.get(kind, b"update")
    return b"id: " + str(cursor).encode() + b"\nevent: " + name + b"\ndata: " + data + b"\n\n"


def _safe_frame(cursor: Cursor, item: Item, role: str, pseudonym: AnalystPseudonyms | None = None) -> bytes:
    """The entry's frame, or nothing for one that cannot be shown (skipped and counted, never the end of the
    connection: the client's next event id is past it, so a resume does not replay it)."""
    try:
        return _frame(cursor, item, role, pseudonym)
    except Exception as exc:  # a doc of an unexpected shape: this entry only
        log.warning("skipped %s entry %s: cannot show it (%s)", item[0], item[1], type(exc).__name__)
        metrics.GATEWAY_PUSH_SKIPPED.inc()
        return b""


async def _delivered(
    service: api.Service,
    principal: Principal,
    role: str,
    cursor: Cursor,
    item: Item,
    sub: Subscription,
    followed: set[str],
    via_queue: set[str],
) -> tuple[Cursor, bytes]:
    """One entry for the connection (from the catch-up or live): a customer reached only through a followed
    queue audited once, the cursor moved past the entry, and its frame (empty: skipped)."""
    cursor_after = cursor.after(item[0], item[1])
    queue = sub.shown_via.pop((item[0], item[1]), None)
    if item[2] not in followed and item[2] not in via_queue:  # decided in memory, written by the audit writer
        _audit_queue_delivery(service, principal, item[2], via_queue, queue or ",".join(sorted(sub.queues)))
    return cursor_after, _safe_frame(cursor_after, item, role, service.pseudonym)


async def _events(
    service: api.Service,
    hub: FlagHub,
    sub: Subscription,
    principal: Principal,
    gap: bool,
    backlog: list[Item],
    cursor: Cursor,
) -> AsyncIterator[bytes]:
    role = principal.role
    keepalive = service.settings.gateway_push_keepalive_s
    recheck = service.settings.gateway_push_recheck_s
    next_check = time.monotonic() + recheck
    try:
        yield b"retry: 1000\n: connected\n\n"
        if gap:
            yield b"event: reset\ndata: {}\n\n"
        followed, via_queue = set(sub.customers.values()), set[str]()
        for entry in backlog:
            cursor, frame = await _delivered(service, principal, role, cursor, entry, sub, followed, via_queue)
            if frame:
                yield frame
        while True:
            left = principal.expires_at - time.time()
            if left <= 0:
                yield b'event: bye\ndata: {"reason": "token expired"}\n\n'
                return
            if sub.customers and time.monotonic() >= next_check:
                if not await run_in_threadpool(_still_allowed, service, principal, sub):
                    yield b'event: bye\ndata: {"reason": "access ended"}\n\n'
                    return
                next_check = time.monotonic() + recheck
            until_check = next_check - time.monotonic() if sub.customers else keepalive  # a queue-only stream has
            wait_s = max(0.01, min(keepalive, left, until_check))  # no re-check: it waited 10 ms (12f, F8)
            try:
                item = await asyncio.wait_for(sub.outbox.get(), timeout=wait_s)
            except TimeoutError:  # nothing queued: every entry up to the hub's position was sent
                if sub.queues:  # a batch of customers named past the bound, from a minute that has turned
                    _flush_names(service, sub.queues, True)
                cursor, frame = _position(cursor, hub.position, b": keep-alive\n\n")
                yield frame
                continue
            if item is None:  # overflowed: the client reconnects with its Last-Event-ID
                return
            if item[4] == POSITION:  # everything queued before the marker was sent
                cursor, frame = _position(cursor, Cursor.parse(item[1]), b"")
                if frame:
                    yield frame
                continue
            cursor, frame = await _delivered(service, principal, role, cursor, item, sub, followed, via_queue)
            if frame:
                yield frame
    finally:
        hub.unsubscribe(sub)
        if sub.queues:
            _flush_names(service, sub.queues, False)


def _flush_names(service: api.Service, queues: frozenset[str], turned_only: bool) -> None:
    """Hand the audit writer the followed queues' batches of customers shown past the bound, not yet written."""
    for queue in sorted(queues):
        batch = service.queue_overflow.flush(queue, turned_only)
        write_batch(service.audit_writer, queue, batch, service.settings.gateway_queue_audited_per_min)


def _position(cursor: Cursor, reached: Cursor, otherwise: bytes) -> tuple[Cursor, bytes]:
    """The connection's cursor moved to ``reached`` (all entries up to it that concern the connection were sent)
    and the frame that hands it to the client: an ``id`` with a comment and no data, which sets the client's
    Last-Event-ID and dispatches no event (the SSE standard); ``otherwise`` when the cursor did not move.

    >>> _position(Cursor("5-0", "5-0"), Cursor("7-0", "4-0"), b"")
    (Cursor(flags='7-0', updates='5-0'), b'id: 7-0.5-0\\n: position\\n\\n')
    >>> _position(Cursor("5-0", "5-0"), Cursor("5-0", "4-0"), b": keep-alive\\n\\n")[1]
    b': keep-alive\\n\\n'
    """
    moved = cursor.latest(reached)
    if moved == cursor:
        return cursor, otherwise
    return moved, b"id: " + str(moved).encode() + b"\n: position\n\n"


def _audit_queue_delivery(
    service: api.Service, principal: Principal, customer: str, audited: set[str], queue: str
) -> None:
    """Audit the first entry of a customer a connection receives through followed ``queue`` (its subscription
    named the queue, not the customer): who saw which customer stays known -- the customer once per queue and
    minute, the desk in the queue's roster once a minute (:func:`gateway.queue_audit.audit_shown`; break-test
    12h, H3: one entry per desk and customer grew with desks x customers an outsider chose). Re-opened queue
    streams audit nothing again within the minute (12d, D1); past ``gateway_queue_audited_per_min`` customers a
    queue and minute they are named in batches (12f, F3). The entry is always shown, and the caller's own reads
    never pay for its queue's volume (12e, E2)."""
    audit_shown(service, principal, queue, customer)
    audited.add(customer)


def _still_allowed(service: api.Service, principal: Principal, sub: Subscription) -> bool:
    """May ``principal`` still see every customer ``sub`` follows? A denial is audited."""
    max_age_ms = service.settings.gateway_contact_open_s * 1000
    for customer in sorted(set(sub.customers.values())):
        seen = reader.read_access(service.client, service.keys, customer)
        decision = access.decide(principal, customer, seen["open_contacts"], now_ms=int(time.time() * 1000),
                                 max_age_ms=max_age_ms)  # fmt: skip
        if not decision.allowed:
            service.audit.record(principal.subject, principal.role, "subscribe", customer, None, False,
                                 f"access ended: {decision.reason}")  # fmt: skip
            return False
    return True


def open_contacts_reader(service: api.Service) -> Any:
    """The hub's view of open contacts: one pipelined read for a batch of customers."""
    return lambda customer_keys: reader.read_open_contacts(service.client, service.keys, customer_keys)
