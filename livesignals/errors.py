"""Errors as data: why an input was rejected, and the dead letter that carries it.

Bad input never raises out of a flow. The decoder turns it into a
:class:`DeadLetter` that keeps the original bytes, a machine-readable reason
code, a human-readable detail and the Kafka origin, so that it can be
published to the dead-letter topic and counted by reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why an input message was dead-lettered (the ``reason`` metric label)."""

    NOT_JSON = "not_json"
    """The bytes are not valid UTF-8 JSON."""
    NOT_AN_OBJECT = "not_an_object"
    """Valid JSON, but not a JSON object."""
    SCHEMA = "schema"
    """The envelope or payload breaks the published schema (wrong or missing fields)."""
    UNKNOWN_TYPE = "unknown_type"
    """``type`` (or ``channel``) is not one the contract knows."""
    NO_CUSTOMER = "no_customer"
    """No customer identifier at all."""
    OVERSIZED = "oversized"
    """The message is larger than ``max_event_bytes``."""
    FUTURE_TIME = "future_time"
    """``event_time`` is further in the future than ``max_future_skew_s``."""
    BAD_TIME = "bad_time"
    """``event_time`` cannot be parsed as RFC 3339 or epoch milliseconds."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """``schema_version`` is not one this engine reads."""
    PROCESSING_ERROR = "processing_error"
    """Valid by the schema, but the engine could not apply it (a bug or an unforeseen
    shape): dead-lettered instead of failing the batch forever."""


class InvalidEvent(ValueError):
    """Raised inside the decoder only, and turned into a :class:`DeadLetter` there."""

    def __init__(self, reason: Reason, detail: str) -> None:
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
    """A rejected input: original bytes, reason, detail and origin.

    >>> dl = DeadLetter(b"{", None, Reason.NOT_JSON, "unexpected end", Origin("in", 0, 7))
    >>> dl.dead_letter_id
    'dlq:in:0:7'
    """

    value: bytes
    key: bytes | None
    reason: Reason
    detail: str
    origin: Origin

    @property
    def dead_letter_id(self) -> str:
        """Deterministic id: a replay re-publishes the same id, so consumers can dedupe."""
        o = self.origin
        return f"dlq:{o.topic}:{o.partition}:{o.offset}"

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        """Kafka headers for the dead-letter record (Kafka Connect's convention:
        the value is the original bytes untouched, the context rides in headers)."""
        o = self.origin
        return [
            ("ls.dlq.id", self.dead_letter_id.encode()),
            ("ls.dlq.reason", self.reason.value.encode()),
            ("ls.dlq.detail", self.detail[:1000].encode()),
            ("ls.dlq.topic", o.topic.encode()),
            ("ls.dlq.partition", str(o.partition).encode()),
            ("ls.dlq.offset", str(o.offset).encode()),
            ("ls.dlq.timestamp", str(o.timestamp_ms).encode()),
        ]
