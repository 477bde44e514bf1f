"""The lag monitor on real Kafka: a topic with fewer partitions than the source (the repartition
topic often has) is skipped, not reported as Kafka not answering -- which would hold /readyz at 503."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from flows.monitor import Monitor
from livesignals import metrics
from state.ownership import Claim, Ownership

pytestmark = [pytest.mark.kafka]


def _create(bootstrap: str, topics: dict[str, int]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
        future.result(30)


def test_a_topic_with_fewer_partitions_is_skipped_and_kafka_stays_reachable(kafka_settings):
    wide, narrow = f"ls.wide.{uuid.uuid4().hex[:8]}", f"ls.narrow.{uuid.uuid4().hex[:8]}"
    _create(kafka_settings.kafka_bootstrap, {wide: 4, narrow: 1})
    ownership = Ownership(claimer=lambda p: Claim(p, "e", "s", {wide: None, narrow: None}))
    for p in range(4):
        ownership.claim(p)
    watch = Monitor(kafka_settings, ownership, (wide, narrow))
    for _ in range(60):  # metadata and leaders of just-created topics can take a moment on Apache Kafka
        if watch._read_lag() and len(watch._lags) == 5:
            break
        time.sleep(0.5)
    assert watch._read_lag() is True
    assert sorted(watch._lags) == sorted([*((wide, p) for p in range(4)), (narrow, 0)])
    sample = metrics.CONSUMER_LAG.labels(narrow, "0")._value.get()
    assert sample == 0
