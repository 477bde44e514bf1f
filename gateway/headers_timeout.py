"""A deadline on the request head: a connection that trickles its request line and headers is closed.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but has
no timeout on reading a request's head: a client that opens a socket and
sends nothing, or one header byte a second (slowloris), holds the socket --
and a file descriptor -- for as long as it likes. :class:`HeaderTimeoutProtocol`
is uvicorn's httptools protocol with one addition: from the moment a
connection opens, and again whenever a new request begins on it (its first
byte: an idle keep-alive connection is uvicorn's ``timeout_keep_alive``'s),
the whole head (request line and headers) must have arrived within
``gateway_header_timeout_s``, else the connection is closed without an
answer. A head larger than :data:`MAX_HEAD_BYTES` is answered ``431`` and
the connection closed (httptools sets no bound: four 100 MB headers grew
the process by 440 MB and two 60 MB ones stalled every desk for seconds,
second break-test B6). Once the head is in, a request body is bounded by
``gateway_body_max_bytes`` and a live push stream by its token, not by this
deadline; and a connection whose request was answered before its body ended
(a body on a ``GET``, a refused ``POST``) is closed after the answer instead of
draining that body for as long as it trickles (third break-test C8).
``livesignals serve`` selects it (uvicorn's ``http=``, an import path, so
``--workers N`` processes use it too).

What it does not do: bound the number of connections one address opens, or
how slowly a body arrives; put a reverse proxy (nginx, Envoy, a cloud load
balancer) in front of the service where it faces untrusted networks.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
"""Most bytes a request line and its headers may take (nginx's default allows 32 KiB of headers)."""

_TOO_LARGE_BODY = (
    b'{"type":"about:blank","title":"Request Header Fields Too Large","status":431,'
    b'"detail":"request head over 64 KiB: closed"}'
)
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/problem+json\r\n"
    b"content-length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\n"
    b"x-content-type-options: nosniff\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\n"
    b"x-frame-options: DENY\r\n"
    b"content-security-policy: default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n"
    b"connection: close\r\n\r\n" + _TOO_LARGE_BODY
)
"""The whole answer to a head over :data:`MAX_HEAD_BYTES` (written before the connection closes): problem+json
with the security headers, like every other answer of the service (break-test 12f, F5)."""

IMPORT_PATH = "gateway.headers_timeout:HeaderTimeoutProtocol"
"""What ``uvicorn.run(http=...)`` is given."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is not in within ``timeout_s``
    or is over :data:`MAX_HEAD_BYTES`.

    No timer per request (a ``call_later`` and a ``cancel`` per request cost about 5 % of a 360 read's
    CPU): a connection waiting for a head is kept in its loop's :class:`_Waiting` set with the time it
    started waiting, and one sweep per loop, every quarter of the deadline while any connection waits,
    closes those past it (so a connection is closed between 1 and 1.25 times the deadline)."""

    timeout_s: ClassVar[float] = 10.0
    """The deadline, in seconds; :func:`configure` sets it from ``gateway_header_timeout_s``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_since = 0.0
        self.head_bytes = 0
        self._waiting = _Waiting.of(self.loop)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """The connection opened: its first request head is due within the deadline."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection closed: no deadline left to enforce."""
        self._waiting.pending.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse ``data``; past :data:`MAX_HEAD_BYTES` of one head answer 431 and close. The part of a chunk up to
        the end of a head is counted before it is parsed, so a head that arrives in one read is bounded too
        (break-test 12f, F5: 120 KB sent at once were served); a chunk that leaves its head incomplete is
        counted whole after it."""
        if self._between_heads():
            end = data.find(b"\r\n\r\n")
            so_far = self.head_bytes if self in self._waiting.pending else 0  # a new request's head starts at 0
            if so_far + (len(data) if end < 0 else end + 4) > MAX_HEAD_BYTES:
                self._too_large()
                return
        super().data_received(data)
        if self in self._waiting.pending:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self._too_large()

    def _between_heads(self) -> bool:
        """Is the next byte part of a request head (no request, or the last one answered)?"""
        return self in self._waiting.pending or self.cycle is None or self.cycle.response_complete

    def _too_large(self) -> None:
        self._waiting.pending.discard(self)
        if not self.transport.is_closing():
            self.transport.write(TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        """A request began (a later one on a keep-alive connection too): its head is due within the deadline."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The head is in: the deadline is met."""
        self._waiting.pending.discard(self)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """An answer was sent: if the request's body has not ended, close the connection after it.

        uvicorn would keep the connection and drain the body (a chunked one for ever, one chunk at a time,
        no token needed); nothing more on it can be served before that body ends anyway."""
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self.transport.close()
        super().on_response_complete()

    def _arm(self) -> None:
        if self not in self._waiting.pending:
            self.head_since = self.loop.time()
            self.head_bytes = 0
            self._waiting.add(self)

    def too_slow(self) -> None:
        """Close the connection: its head did not arrive in time."""
        self._waiting.pending.discard(self)
        if not self.transport.is_closing():
            self.transport.close()


class _Waiting:
    """The connections of one event loop waiting for a request head, and the sweep that closes late ones."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiting]] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: set[HeaderTimeoutProtocol] = set()
        self.sweeping = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Waiting:
        """The loop's set (made on first use)."""
        waiting = cls._by_loop.get(loop)
        if waiting is None:
            waiting = cls._by_loop[loop] = cls(loop)
        return waiting

    def add(self, protocol: HeaderTimeoutProtocol) -> None:
        """Start waiting for ``protocol``'s head; start sweeping if nobody else waits."""
        self.pending.add(protocol)
        if not self.sweeping:
            self.sweeping = True
            self.loop.call_later(HeaderTimeoutProtocol.timeout_s / 4, self.sweep)

    def sweep(self) -> None:
        """Close the connections past the deadline; sweep again while any waits."""
        deadline = self.loop.time() - HeaderTimeoutProtocol.timeout_s
        for protocol in [p for p in self.pending if p.head_since <= deadline]:
            protocol.too_slow()
        if self.pending:
            self.loop.call_later(HeaderTimeoutProtocol.timeout_s / 4, self.sweep)
        else:
            self.sweeping = False


def configure(timeout_s: float) -> None:
    """Set the deadline of every connection opened from now on (``gateway_header_timeout_s``)."""
    HeaderTimeoutProtocol.timeout_s = timeout_s
