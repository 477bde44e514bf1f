"""The engine's input keeps its durability options whatever ``kafka_config`` says (break-test 10f, K3)."""

from __future__ import annotations

import logging

import pytest

from flows.kafka_source import DURABILITY_OPTIONS, KafkaPartitionSource


def test_kafka_config_cannot_switch_off_the_out_of_range_stop_and_is_told_so(caplog: pytest.LogCaptureFixture):
    config = {"bootstrap.servers": "127.0.0.1:1", "auto.offset.reset": "earliest", "isolation.level": "read_uncommitted",
              "enable.auto.commit": "true", "fetch.wait.max.ms": 50}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="flows.kafka_source"):
        source = KafkaPartitionSource(config, ("t",))
    assert source.config["auto.offset.reset"] == "error"
    assert source.config["isolation.level"] == "read_committed"
    assert source.config["enable.auto.commit"] is False
    assert source.config["fetch.wait.max.ms"] == 50, "other options stay the deployment's"
    ignored = [r.getMessage() for r in caplog.records]
    assert len(ignored) == 3 and all("ignored" in m for m in ignored)
    assert any("auto.offset.reset = 'earliest'" in m for m in ignored)


def test_the_same_values_in_kafka_config_are_not_warned_about(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="flows.kafka_source"):
        KafkaPartitionSource({"auto.offset.reset": "error", "enable.auto.commit": "false"}, ("t",))
    assert not caplog.records
    assert set(DURABILITY_OPTIONS) == {"enable.auto.commit", "auto.offset.reset", "isolation.level"}


def test_the_input_waits_100_ms_on_a_quiet_partition_by_default_and_10_on_the_embedded_broker():
    """README: quiet partitions cost the broker little (kafka_fetch_wait_ms 100); the embedded broker takes 10."""
    from app import embedded
    from flows.input_options import input_config
    from livesignals.settings import Settings

    assert input_config(Settings())["fetch.wait.max.ms"] == 100
    assert embedded.FETCH_WAIT_MS == 10
    assert input_config(Settings(kafka_fetch_wait_ms=embedded.FETCH_WAIT_MS))["fetch.wait.max.ms"] == 10
