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
answer. Once the head is in, nothing changes: a request body is bounded by
``gateway_body_max_bytes`` and a live push stream by its token, not by this
deadline. ``livesignals serve`` selects it (uvicorn's ``http=``, an import
path, so ``--workers N`` processes use it too).

What it does not do: bound the number of connections one address opens, or
how slowly a body arrives; put a reverse proxy (nginx, Envoy, a cloud load
balancer) in front of the service where it faces untrusted networks.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

IMPORT_PATH = "gateway.headers_timeout:HeaderTimeoutProtocol"
"""What ``uvicorn.run(http=...)`` is given."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is not in within ``timeout_s``."""

    timeout_s: ClassVar[float] = 10.0
    """The deadline, in seconds; :func:`configure` sets it from ``gateway_header_timeout_s``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """The connection opened: its first request head is due within the deadline."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection closed: no deadline left to enforce."""
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request began (a later one on a keep-alive connection too): its head is due within the deadline."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The head is in: the deadline is met."""
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def configure(timeout_s: float) -> None:
    """Set the deadline of every connection opened from now on (``gateway_header_timeout_s``)."""
    HeaderTimeoutProtocol.timeout_s = timeout_s
