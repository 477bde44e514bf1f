"""Create the engine's Kafka topics (idempotent: existing topics are kept)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from livesignals.settings import Settings


def engine_topics(settings: Settings) -> list[str]:
    """Every topic the engine reads or writes."""
    return [
        *settings.input_topics,
        settings.repartition_topic,
        settings.dead_letter_topic,
        settings.flags_topic,
        settings.triggers_topic,
        settings.decisions_topic,
    ]


def ensure_topics(settings: Settings, replication: int = 1, partitions: int | None = None) -> list[str]:
    """Create missing topics with ``partitions`` (default ``settings.topic_partitions``) partitions and
    ``replication`` replicas each; return those created.

    The repartition topic gets the input topics' partition count when they exist
    already (routing needs one count for all: :mod:`operators.routing`). A topic
    Kafka refuses raises ``KafkaException`` (say, more replicas than brokers).
    """
    if partitions is not None:
        settings = settings.replace(topic_partitions=partitions)
    admin = AdminClient(settings.kafka_client_config())
    existing = admin.list_topics(timeout=10).topics
    wanted = [t for t in engine_topics(settings) if t not in existing]
    if not wanted:
        return []
    inputs = {len(existing[t].partitions) for t in settings.input_topics if t in existing}
    repartition = inputs.pop() if len(inputs) == 1 else settings.topic_partitions
    futures = admin.create_topics(
        [
            NewTopic(t, repartition if t == settings.repartition_topic else settings.topic_partitions, replication)
            for t in wanted
        ],
        operation_timeout=10,
    )
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return wanted
