"""The outputs' durability options cannot be changed by ``kafka_config`` (break-test 10g, K3b).

A STATE LOSS replay does not publish again what Kafka confirmed before a commit: with ``acks = 1`` a leader
failover could lose a confirmed flag or trigger for good, and without idempotence a retry could duplicate it.
"""

from __future__ import annotations

import logging

import pytest

from flows.publisher import producer_config


def test_a_weaker_acks_or_idempotence_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flows.publisher"):
        config = producer_config({"acks": "1", "enable.idempotence": "false", "linger.ms": 50})
    assert (config["acks"], config["enable.idempotence"], config["linger.ms"]) == ("all", True, 50)
    text = caplog.text
    assert "acks = '1'" in text and "enable.idempotence = 'false'" in text


@pytest.mark.parametrize("same", [{"acks": "-1"}, {"acks": "all", "enable.idempotence": True}, {}])
def test_the_same_values_in_other_spellings_say_nothing(caplog: pytest.LogCaptureFixture, same) -> None:
    with caplog.at_level(logging.WARNING, logger="flows.publisher"):
        producer_config(same)
    assert caplog.text == ""
