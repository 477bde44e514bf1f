"""A cap on request bodies, enforced while they stream in: nobody makes the service buffer a large body.

The service's only body is a feedback verdict (a few hundred bytes). :class:`BodyLimit`
wraps the ASGI app: a request that declares a ``Content-Length`` over the cap is
answered 413 before the app runs and before a byte of it is read; a body without
a length (chunked) is counted as the app reads it, and the read fails with a 413
problem as soon as it passes the cap, so at most ``max_bytes`` (plus one chunk)
are ever held. The feedback route checks the token before it reads the body at
all (:func:`read_capped` is called after authorisation), so an unauthenticated
caller gets its 401 without the service reading what it sent.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import Problem


class BodyTooLarge(Problem):
    """A request body over the cap (413)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, "Payload Too Large", f"a request body holds at most {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: refuse (413) a declared length over ``max_bytes``; fail a longer streamed body's read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count what the app reads."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = BodyTooLarge(self.max_bytes).response(scope.get("path", ""))
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; an unreadable one counts as too large (``2**63``)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else 2**63
    return None


async def read_capped(request: Request, max_bytes: int) -> bytes:
    """The request's body, or :class:`BodyTooLarge` as soon as more than ``max_bytes`` have arrived."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
