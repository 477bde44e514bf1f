"""Reach Kafka and Redis from a command, with short timeouts: a one-line :class:`CliError`, never a hang.

The engine rides out outages (it retries for as long as they last); a command
someone typed should say at once what is wrong and stop. Every check here
gives up after ``timeout_s`` seconds and names what it tried to reach, with
any password in a URL hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from livesignals.settings import Settings, redact_url

KAFKA_TIMEOUT_S = 5.0
"""How long a command waits for a broker to answer before it says Kafka is unreachable."""
REDIS_TIMEOUT_S = 3.0
"""How long a command waits for Redis to accept a connection."""


class CliError(Exception):
    """What a command tells its user in one line before it exits with ``code`` (1: it could not do it)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def kafka_admin(settings: Settings) -> Any:
    """An admin client for the deployment's brokers, quiet: librdkafka's own log lines are off."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(settings.kafka_client_config(log_level=0))


def kafka_topics(settings: Settings, timeout_s: float = KAFKA_TIMEOUT_S) -> tuple[Any, dict[str, int]]:
    """``(admin, {topic: partitions})`` of the cluster, or :class:`CliError` if no broker answers in time."""
    from confluent_kafka import KafkaException

    admin = kafka_admin(settings)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise CliError(
            f"Kafka at {redact_url(settings.kafka_bootstrap)} unreachable within {timeout_s:g} s: {_kafka_reason(exc)}"
        ) from None
    return admin, {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def require_topic(settings: Settings, topic: str, timeout_s: float = KAFKA_TIMEOUT_S) -> int:
    """The partition count of ``topic``; :class:`CliError` if Kafka is unreachable or the topic does not exist."""
    _, topics = kafka_topics(settings, timeout_s)
    if topic not in topics:
        raise CliError(
            f"topic {topic!r} does not exist on {redact_url(settings.kafka_bootstrap)}"
            + (" (create the engine's topics with: livesignals topics create)" if topic.startswith("ls.") else "")
        )
    return topics[topic]


def redis_client(settings: Settings, timeout_s: float = REDIS_TIMEOUT_S) -> Any:
    """A Redis (or Redis Cluster) client that answered PING, or :class:`CliError` within about ``timeout_s``."""
    import redis
    from redis.cluster import RedisCluster
    from redis.exceptions import RedisClusterException, RedisError

    where = redact_url(settings.redis_url)
    timeouts = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s}
    try:
        if settings.redis_cluster:
            client: Any = RedisCluster.from_url(settings.redis_url, **timeouts)
        else:
            client = redis.Redis.from_url(settings.redis_url, **timeouts)
        client.ping()
    except (RedisError, RedisClusterException, OSError, ValueError) as exc:
        reason = redact_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise CliError(f"Redis at {where} unreachable: {reason}") from None
    return client


def wait_for(check: Callable[[], Any], wait_s: float, every_s: float = 2.0,
             waiting: Callable[[CliError], None] | None = None) -> Any:  # fmt: skip
    """``check()``'s result once it stops raising :class:`CliError`; re-raised when ``wait_s`` has passed.
    ``waiting(error)`` is told once, before the first wait."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            return check()
        except CliError as exc:
            if time.monotonic() + every_s > deadline:
                raise
            if waiting is not None and not told:
                waiting(exc)
                told = True
            time.sleep(every_s)


def _kafka_reason(exc: Any) -> str:
    err: Any = exc.args[0] if exc.args else None
    text = err.str() if hasattr(err, "str") else str(exc)
    return text.removeprefix("Failed to get metadata: ")
