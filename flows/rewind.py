"""The mark a partition's source hands out first after a rewind, so the sink knows where the replay begins.

After a STATE LOSS the sink asks the partition's source to read again from
older offsets (:meth:`state.ownership.Ownership.request_seek`). Messages the
source read before it took the rewind are still on their way to the sink and
must not be applied: the state they would build on is gone, and a replay's
events applied after them would be skipped as already committed. Offsets
cannot tell them apart when the loss comes during a replay (both lie below
what the sink has seen), so the source hands out a :func:`rewind_mark` in the
batch where it takes the rewind, ahead of every message it reads from there,
and the sink drops the partition's messages from the loss until that mark
(:mod:`flows.engine_sink`). A mark is never applied.

>>> mark = rewind_mark(3)
>>> is_rewind_mark(mark), mark.origin.partition, is_rewind_mark(RawMessage(b"{}", None, Origin("in", 3, 0, 0)))
(True, 3, False)
"""

from __future__ import annotations

from livesignals.contract import RawMessage
from livesignals.errors import Origin

REWIND_TOPIC = "\x00livesignals-rewind"
"""The topic name a rewind mark carries: no Kafka topic can have it (NUL is not a legal topic character)."""


def rewind_mark(partition: int) -> RawMessage:
    """The mark of a rewind of ``partition`` (see the module)."""
    return RawMessage(None, None, Origin(REWIND_TOPIC, partition, -1, 0))


def is_rewind_mark(message: RawMessage) -> bool:
    """True for a :func:`rewind_mark`."""
    return message.origin.topic == REWIND_TOPIC
