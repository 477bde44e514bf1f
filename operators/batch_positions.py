"""Where a batch's messages sit in Kafka: the offsets to resume at, an event's position for a log line,
and the dead letter of an event that could not be applied (with its message's bytes and origin).

Plain functions of the batch's raw messages, kept apart from :mod:`operators.engine`'s flow.
"""

from __future__ import annotations

from livesignals.contract import Event, RawMessage
from livesignals.errors import DeadLetter, Reason
from operators.routing import read_position


def next_offsets(messages: list[RawMessage]) -> dict[tuple[str, int], int]:
    """The offset after the last message of each ``(topic, partition)`` in ``messages``: where to resume.

    >>> from livesignals.errors import Origin
    >>> next_offsets([RawMessage(b"", None, Origin("in", 0, 7)), RawMessage(b"", None, Origin("in", 0, 5))])
    {('in', 0): 8}
    """
    out: dict[tuple[str, int], int] = {}
    for m in messages:
        o = m.origin
        pos = (o.topic, o.partition)
        if o.offset + 1 > out.get(pos, -1):
            out[pos] = o.offset + 1
    return out


def position_text(event: Event) -> str:
    """``topic:partition:offset`` of the message ``event`` was read from (for log lines: no ids, no payload)."""
    o = read_position(event)
    return f"{o.topic}:{o.partition}:{o.offset}"


class UnreadableProfile(Exception):
    """The customer's stored profile could not be read (``CustomerState.unreadable`` says why): its events
    are dead-lettered as ``processing_error`` until the document is repaired or the customer erased."""


def unprocessable(event: Event, messages: list[RawMessage], exc: Exception) -> DeadLetter:
    """The dead letter of ``event``, which raised ``exc`` while it was applied: its message as read."""
    read = read_position(event)
    m = next(m for m in messages if m.origin == read)
    detail = f"{type(exc).__name__}: {exc}"
    return DeadLetter(m.value or b"", m.key, Reason.PROCESSING_ERROR, detail, m.origin)
