"""What to publish when Kafka refuses a record for good, so that no partition is blocked.

A record the broker or the producer will never accept (too large for
``message.max.bytes`` or the topic's ``max.message.bytes``, invalid) would fail
its batch on every retry, forever. Instead, in this order:

1. a **minimal record** on the dead-letter topic: empty value, headers with the
   reason, the origin (or the output topic and id), the size and SHA-256 of what
   was refused -- a few hundred bytes, so it fits where anything fits;
2. if even that is refused: an ``ERROR`` log line with the same facts and the
   counter ``livesignals_dead_letters_unpublishable_total{topic}``; the batch goes on.

Transient errors (broker down, timeouts) are not handled here: they still fail
the batch, which is retried, so nothing is lost to an outage.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Final

from confluent_kafka import KafkaError

from livesignals import metrics
from livesignals.errors import Reason
from operators.ports import OutRecord

log = logging.getLogger(__name__)

PERMANENT: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
    }
)
"""Errors about the record itself: sending it again can never succeed."""

MINIMAL_HEADER: Final = "ls.dlq.minimal"
"""Marks a last-resort record (its value is the Kafka error that refused the original)."""
_KEEP: Final = ("ls.dlq.id", "ls.dlq.reason", "ls.dlq.topic", "ls.dlq.partition", "ls.dlq.offset",
                "ls.dlq.timestamp", "ls.dlq.size", "ls.dlq.sha256")  # fmt: skip
_MAX_HEADER_BYTES: Final = 256
_MAX_KEY_BYTES: Final = 256


def is_permanent(err: KafkaError) -> bool:
    """True if Kafka will never accept this record as it is."""
    return err.code() in PERMANENT


def minimal(record: OutRecord, err: KafkaError, dead_letter_topic: str | None) -> OutRecord | None:
    """The small record that stands for ``record`` on the dead-letter topic (None: nothing smaller)."""
    headers = dict(record.headers or [])
    if MINIMAL_HEADER in headers or dead_letter_topic is None:
        return None
    refused = err.name().encode()
    if "ls.dlq.id" in headers:  # a dead letter: keep its facts, drop the bytes
        kept = [(k, _short(headers[k])) for k in _KEEP if k in headers]
        detail = b"dead letter refused by Kafka (" + refused + b"); see size, sha256 and the origin"
        return OutRecord(record.topic, None, b"", [*kept, ("ls.dlq.detail", detail), (MINIMAL_HEADER, refused)])
    digest = hashlib.sha256(record.value).hexdigest()
    output_id = _short(headers.get("ls.id"))
    metrics.DEAD_LETTERS.labels(Reason.UNPUBLISHABLE.value).inc()
    return OutRecord(
        dead_letter_topic,
        record.key if record.key is None or len(record.key) <= _MAX_KEY_BYTES else None,
        b"",
        [
            ("ls.dlq.id", f"unpublishable:{record.topic}:{digest[:24]}".encode()),
            ("ls.dlq.reason", Reason.UNPUBLISHABLE.value.encode()),
            ("ls.dlq.detail", f"{record.topic} refused the record ({err.name()})".encode()),
            ("ls.dlq.output_topic", record.topic.encode()),
            ("ls.dlq.output_id", output_id),
            ("ls.dlq.size", str(len(record.value)).encode()),
            ("ls.dlq.sha256", digest.encode()),
            (MINIMAL_HEADER, refused),
        ],
    )


def give_up(record: OutRecord, err: KafkaError) -> None:
    """The end of the line: a log line with everything known, and a counter."""
    headers = {k: _short(v).decode(errors="replace") for k, v in (record.headers or [])}
    log.error(
        "unpublishable record dropped after its last resort: topic=%s error=%s size=%d key=%r headers=%s",
        record.topic, err.name(), len(record.value), (record.key or b"")[:_MAX_KEY_BYTES], headers,
    )  # fmt: skip
    metrics.DEAD_LETTERS_UNPUBLISHABLE.labels(record.topic).inc()


def _short(value: str | bytes | None) -> bytes:
    raw = value.encode() if isinstance(value, str) else (value or b"")
    return raw[:_MAX_HEADER_BYTES]
