"""``livesignals models evaluate`` replays a topic with the deployment's own Kafka client settings."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException

from app.evaluate import read_kafka
from livesignals.settings import Settings


def test_the_replay_uses_kafka_config_not_only_the_bootstrap_address() -> None:
    """Review note: the replay built its consumer from ``kafka_bootstrap`` alone, so a deployment behind TLS or
    SASL (``kafka_config``) could not be evaluated. The option below is refused by librdkafka itself, which
    shows it reached the consumer."""
    settings = Settings(kafka_bootstrap="127.0.0.1:1", kafka_config={"security.protocol": "not-a-protocol"})
    with pytest.raises(KafkaException, match=r"security\.protocol"):
        next(read_kafka(settings.kafka_client_config(), "events"))
