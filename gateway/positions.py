"""Where a push connection is in the two streams it follows (flags, updates): the :class:`Cursor` a client
holds as its ``Last-Event-ID``, stream ids compared as numbers, and the streams' newest position read before
a 360 (the page subscribes from it). Split from :mod:`gateway.push`, which re-exports every name here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FLAGS", "UPDATES", "Cursor", "position_of", "queue_position", "stream_id", "stream_position"]

FLAGS, UPDATES = "flags", "updates"
"""The two streams a hub follows (their positions in a :class:`Cursor`)."""


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

    def latest(self, other: Cursor) -> Cursor:
        """The newer position in each stream.

        >>> Cursor("5-0", "9-0").latest(Cursor("7-0", "8-0"))
        Cursor(flags='7-0', updates='9-0')
        """
        pick = lambda a, b: a if stream_id(a) >= stream_id(b) else b  # noqa: E731
        return Cursor(pick(self.flags, other.flags), pick(self.updates, other.updates))


def stream_id(value: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable pair.

    >>> stream_id(b"1700000000000-3") < stream_id("1700000000001-0")
    True
    """
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def stream_position(client: Any, flags_key: str, updates_key: str) -> str:
    """Both streams' newest entry ids now, as a :class:`Cursor` (one round trip): read *before* a 360, it is
    where a page subscribes from (``Last-Event-ID``) to miss nothing raised between its read and its push."""
    pipe = client.pipeline(transaction=False)
    queue_position(pipe, flags_key, updates_key)
    return position_of(pipe.execute())


def queue_position(pipe: Any, flags_key: str, updates_key: str) -> int:
    """Queue :func:`stream_position`'s reads on ``pipe`` (ahead of a profile read in the same round trip:
    a single Redis runs one connection's commands in order); returns how many (:func:`position_of`)."""
    for key in (flags_key, updates_key):
        pipe.xrevrange(key, count=1)
    return 2


def position_of(replies: list[Any]) -> str:
    """The :class:`Cursor` text of :func:`queue_position`'s two replies."""
    newest = [rows[0][0].decode() if rows else "0-0" for rows in replies]
    return str(Cursor(*newest))
