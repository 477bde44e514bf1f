"""Errors as data: why an input was rejected, and the dead letter that carries it.

Bad input never raises out of a flow. The decoder turns it into a
:class:`DeadLetter` that keeps the original bytes (a bounded prefix of them),
their size and SHA-256, a machine-readable reason code, a human-readable
detail and the Kafka origin, so that it can be published to the dead-letter
topic and counted by reason -- and always fits in a Kafka record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

DEAD_LETTER_VALUE_BYTES: Final = 65_536
"""Most bytes of the original message a dead letter carries (a prefix): far below
librdkafka's default ``message.max.bytes`` (1,000,000), whatever the broker accepted."""
DEAD_LETTER_KEY_BYTES: Final = 1024
"""Most bytes of the original key a dead letter carries (a prefix)."""
DETAIL_CHARS: Final = 1000
"""Most characters of a rejection's detail."""


class Reason(StrEnum):
    """Why an input message was dead-lettered (the ``reason`` metric label)."""

    NOT_JSON = "not_json"
    """The bytes are not valid UTF-8 JSON (or are a tombstone: no value at all); NaN,
    Infinity, numbers that overflow a double and nesting deeper than 1024 included."""
    NOT_AN_OBJECT = "not_an_object"
    """Valid JSON, but not a JSON object."""
    SCHEMA = "schema"
    """The envelope or payload breaks the published schema (wrong or missing fields, a
    field of the wrong JSON type, a number out of range, a label not for its kind)."""
    UNKNOWN_TYPE = "unknown_type"
    """``type`` (or ``channel``) is not one the contract knows (or not a string at all)."""
    NO_CUSTOMER = "no_customer"
    """No customer identifier at all."""
    BAD_IDENTIFIER = "bad_identifier"
    """An identifier (customer id, event id, a referenced id) holds a control, format or
    separator character (NUL, newline, zero-width, RTL mark, ...) or is blank."""
    TOO_DEEP = "too_deep"
    """JSON nested deeper than the contract allows (``MAX_DEPTH`` levels)."""
    OVERSIZED = "oversized"
    """The message is larger than ``max_event_bytes``."""
    FUTURE_TIME = "future_time"
    """``event_time`` is further in the future than ``max_future_skew_s``."""
    BAD_TIME = "bad_time"
    """``event_time`` cannot be parsed as RFC 3339 or epoch milliseconds, or is out of range."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """``schema_version`` is not one this engine reads."""
    PROCESSING_ERROR = "processing_error"
    """Valid by the schema, but the engine could not apply it (a bug or an unforeseen
    shape): dead-lettered instead of failing the batch forever."""
    UNPUBLISHABLE = "unpublishable"
    """An output record (a flag, trigger or decision) that Kafka refused for good (too
    large, invalid): replaced on the dead-letter topic by a minimal record that names it."""
    UNVERIFIED_REROUTE = "unverified_reroute"
    """A record on the repartition topic without a valid ``ls.origin.sig`` (signed with a secret
    Redis no longer holds, or not written by the engine): never applied as a fresh event, since
    the input topic it came from re-routes the event again (issue 10, break-test F1)."""


class InvalidEvent(ValueError):
    """Raised inside the decoder only, and turned into a :class:`DeadLetter` there."""

    def __init__(self, reason: Reason, detail: str) -> None:
        detail = detail[:DETAIL_CHARS]
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from: enough to find it again in Kafka."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input: a bounded prefix of the original bytes, reason, detail and origin.

    ``value`` keeps at most :data:`DEAD_LETTER_VALUE_BYTES` of the original and ``key``
    at most :data:`DEAD_LETTER_KEY_BYTES`; ``size`` and ``sha256`` describe the whole
    original, so that a truncated dead letter still identifies its message.

    >>> dl = DeadLetter(b"{", None, Reason.NOT_JSON, "unexpected end", Origin("in", 0, 7))
    >>> dl.dead_letter_id, dl.size, dl.truncated
    ('dlq:in:0:7:0', 1, False)
    >>> big = DeadLetter(b"x" * 2_000_000, b"k", Reason.OVERSIZED, "too big", Origin("in", 0, 8))
    >>> len(big.value), big.size, big.truncated
    (65536, 2000000, True)
    """

    value: bytes
    key: bytes | None
    reason: Reason
    detail: str
    origin: Origin
    size: int = field(default=-1, compare=False)
    """Bytes of the original message (``value`` may be a prefix)."""
    sha256: str = field(default="", compare=False)
    """SHA-256 of the whole original message, hex."""

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.value))
            object.__setattr__(self, "sha256", hashlib.sha256(self.value).hexdigest())
        if len(self.value) > DEAD_LETTER_VALUE_BYTES:
            object.__setattr__(self, "value", self.value[:DEAD_LETTER_VALUE_BYTES])
        if self.key is not None and len(self.key) > DEAD_LETTER_KEY_BYTES:
            object.__setattr__(self, "key", self.key[:DEAD_LETTER_KEY_BYTES])
        if len(self.detail) > DETAIL_CHARS:
            object.__setattr__(self, "detail", self.detail[:DETAIL_CHARS])

    @property
    def truncated(self) -> bool:
        """True when ``value`` is only a prefix of the original."""
        return len(self.value) < self.size

    @property
    def dead_letter_id(self) -> str:
        """Deterministic id: a replay re-publishes the same id, so consumers can dedupe; the origin's Kafka
        timestamp keeps it distinct across a log reset (offsets from 0 again: break-test 10f, K2)."""
        o = self.origin
        return f"dlq:{o.topic}:{o.partition}:{o.offset}:{o.timestamp_ms}"

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        """Kafka headers for the dead-letter record (Kafka Connect's convention:
        the value is the original bytes -- a bounded prefix -- and the context rides in headers)."""
        o = self.origin
        return [
            ("ls.dlq.id", self.dead_letter_id.encode()),
            ("ls.dlq.reason", self.reason.value.encode()),
            ("ls.dlq.detail", self.detail.encode(errors="backslashreplace")),
            ("ls.dlq.topic", o.topic.encode()),
            ("ls.dlq.partition", str(o.partition).encode()),
            ("ls.dlq.offset", str(o.offset).encode()),
            ("ls.dlq.timestamp", str(o.timestamp_ms).encode()),
            ("ls.dlq.size", str(self.size).encode()),
            ("ls.dlq.sha256", self.sha256.encode()),
            ("ls.dlq.truncated", b"true" if self.truncated else b"false"),
        ]
