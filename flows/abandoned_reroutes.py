"""Refuse to start while reroutes wait in a repartition topic the settings no longer name.

Reroutes waiting in the repartition topic are events not yet applied (:mod:`operators.routing`).
A deployment that changes ``repartition_topic`` (same ``key_prefix``) reads only the new topic: every
reroute still waiting in the old one was lost for good (break-test 10h, L4: 2,887 of 8,000 after a
SIGTERM, 3,049 after a kill -9), and the engine said nothing.

So at start-up, before it claims anything, the engine looks for *old repartition topics*: the one it
recorded the last time it started (``<key_prefix>:repartition_topic``) when it is not the configured one,
and any topic the partition metas hold resume offsets for (``offset:<topic>``) that is configured no
more and whose first waiting record is one of this deployment's reroutes (a signed ``ls.origin.sig``; an
input topic taken out of the settings is the operator's choice). When such a topic still holds records
past the resume offsets (its low watermark where none was committed), the engine exits with code 2 and
one line naming the topic, how many records wait and what to do: drain them with the old setting first.
Otherwise it records the configured topic and starts.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from livesignals.settings import Settings
from operators.routing import DEPLOYMENT_HEADER, SIGNATURE_HEADER
from state.keys import Keys

log = logging.getLogger(__name__)


def check_message(topic: str, waiting: int, configured: str) -> str:
    """The one line of the refusal.

    >>> check_message("rep-A", 2992, "rep-B")[:60]
    'CONFIGURATION ERROR: 2992 reroutes wait in rep-A, the repart'
    """
    at_least = "at least " if waiting >= COUNT_AT_MOST else ""
    return (
        f"CONFIGURATION ERROR: {at_least}{waiting} reroutes wait in {topic}, the repartition topic this deployment "
        f"used before (repartition_topic is now {configured}): they are events not yet applied, and the new topic "
        f"does not hold them. Drain them first: run with repartition_topic = {topic} until its lag is 0 "
        f"(livesignals_consumer_lag_messages), stop, then change the setting"
    )


def waiting_reroutes(settings: Settings, client: Any) -> dict[str, int]:
    """Old repartition topics of this deployment that still hold records past their resume offsets -> how many."""
    keys = Keys(settings.key_prefix)
    configured = {*settings.input_topics, settings.repartition_topic}
    resume: dict[str, dict[int, int]] = {}
    for name in client.scan_iter(keys.meta_pattern(), count=1000):
        text = name.decode() if isinstance(name, bytes) else name
        partition = int(text.rsplit("{part:", 1)[1].split("}", 1)[0])
        for field, value in client.hgetall(name).items():
            field = field.decode() if isinstance(field, bytes) else field
            if field.startswith("offset:") and field[len("offset:") :] not in configured:
                resume.setdefault(field[len("offset:") :], {})[partition] = int(value)
    recorded = client.get(keys.repartition_topic_recorded)
    recorded = recorded.decode() if isinstance(recorded, bytes) else recorded
    if recorded and recorded not in configured:
        resume.setdefault(recorded, {})
    if not resume:
        return {}
    config = settings.kafka_client_config(**{"group.id": settings.consumer_group})
    consumer = Consumer({**config, "enable.auto.commit": False})  # reads only: commits nothing for the group
    try:
        out = {}
        for topic, offsets in sorted(resume.items()):
            waiting, first = _waiting(consumer, topic, offsets)
            if waiting and (topic == recorded or _is_ours(consumer, topic, first, settings.key_prefix)):
                out[topic] = waiting
        return out
    finally:
        consumer.close()


def remember(settings: Settings, client: Any) -> None:
    """Record the configured repartition topic (after the check found nothing waiting elsewhere)."""
    client.set(Keys(settings.key_prefix).repartition_topic_recorded, settings.repartition_topic)


def _waiting(consumer: Consumer, topic: str, offsets: dict[int, int]) -> tuple[int, TopicPartition | None]:
    """Records past the resume offsets (counted by reading them, up to :data:`COUNT_AT_MOST`: some brokers'
    ListOffsets is not exact), and the position of one of them."""
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return 0, None  # deleted: nothing waits
    starts = []
    for p in sorted(meta.partitions):
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        starts.append(TopicPartition(topic, p, max(offsets.get(p, low), low)))
    consumer.assign(starts)
    waiting, first = 0, None
    try:
        while waiting < COUNT_AT_MOST:
            batch = [m for m in consumer.consume(1000, 1.0) if m.error() is None]
            if not batch:
                break
            waiting += len(batch)
            first = first or TopicPartition(topic, batch[0].partition() or 0, batch[0].offset() or 0)
    finally:
        consumer.unassign()
    return waiting, first


COUNT_AT_MOST = 100_000
"""Waiting records counted at most (the refusal says "at least" beyond)."""


def _is_ours(consumer: Consumer, topic: str, first: TopicPartition | None, deployment: str) -> bool:
    """True when the record at ``first`` is a reroute of this deployment (signed, naming it or no deployment)."""
    if first is None:
        return False
    consumer.assign([first])
    try:
        for _ in range(20):
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            headers = dict(message.headers() or ())
            named = headers.get(DEPLOYMENT_HEADER)
            return SIGNATURE_HEADER in headers and named in (None, deployment.encode())
        return False
    except KafkaException as exc:
        log.warning("could not read %s to tell whether it holds reroutes: %s", topic, exc)
        return False
    finally:
        consumer.unassign()
