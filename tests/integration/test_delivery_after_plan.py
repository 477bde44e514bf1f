"""A broker that does not confirm a batch after its commit was planned (issue 16, item 3), on real Kafka and Redis.

The engine sends its outputs, plans the commit while the broker writes them, then waits: with the broker down the
wait fails (``DeliveryError``) after the states were changed by the plan. The batch is redone from Redis once the
broker is back, and everything ends as in a run that never failed, each output written once.
"""

from __future__ import annotations

from typing import Any

import pytest

from app import embedded
from app.topics import ensure_topics
from flows.engine_sink import default_engine
from flows.publisher import DeliveryError, KafkaPublisher
from tests import faults
from tests.flows.test_confirm_after_plan import _dump, _messages, same_secrets
from tests.helpers import consume_all

pytestmark = pytest.mark.kafka

KINDS = ("flags_topic", "triggers_topic", "decisions_topic", "dead_letter_topic")


def _engine(settings: Any, timeout_s: float) -> Any:
    publisher = KafkaPublisher(settings.kafka_client_config(), timeout_s=timeout_s, attempts=1,
                               dead_letter_topic=settings.dead_letter_topic)  # fmt: skip
    engine = default_engine(settings, publisher)
    engine.clock = faults.clock
    return engine


def _outputs(settings: Any, n: int) -> dict[str, list[tuple[bytes, bytes, bool]]]:
    """Each output topic's records, as (key, value) (a tombstone's value: None), sorted."""
    got = {kind: consume_all(settings.kafka_bootstrap, getattr(settings, kind), n, timeout_s=5) for kind in KINDS}
    return {kind: sorted((m.key() or b"", m.value() or b"", m.value() is None) for m in ms) for kind, ms in got.items()}


def test_a_broker_down_after_the_plan_redoes_the_batch_and_ends_as_an_uninterrupted_run(settings):
    port = embedded.free_port()
    base = settings.replace(models_enabled=False, kafka_bootstrap=f"127.0.0.1:{port}", topic_partitions=4)
    calm = base.replace(key_prefix=base.key_prefix + "a")
    failing = base.replace(key_prefix=base.key_prefix + "b", flags_topic=base.flags_topic + "b",
                           triggers_topic=base.triggers_topic + "b", decisions_topic=base.decisions_topic + "b",
                           dead_letter_topic=base.dead_letter_topic + "b")  # fmt: skip
    same_secrets(calm, failing)
    batches = list(faults.batches(_messages()))
    engine = _engine(failing, timeout_s=1.0)
    planned: list[int] = []
    plan = engine.store.plan

    def planning(*args: Any, **kwargs: Any) -> Any:
        planned.append(1)
        return plan(*args, **kwargs)

    engine.store.plan = planning
    with pytest.raises(DeliveryError):
        engine.process(batches[0])  # the broker is down: sent, planned, then not confirmed
    assert planned == [1], "the commit was planned before the confirmation failed"
    engine.forget()  # as the sink's retry path does (flows.engine_sink)
    with embedded.start_kafka(port=port):
        ensure_topics(calm)
        ensure_topics(failing)
        engine.publisher.timeout_s = 30.0
        for batch in batches:
            engine.process(batch)
        clean = _engine(calm, timeout_s=30.0)
        for batch in batches:
            clean.process(batch)
        clean.publisher.close()
        engine.publisher.close()
        expected = _outputs(calm, 10_000)
        assert expected["flags_topic"] and expected["triggers_topic"]
        assert _outputs(failing, 10_000) == expected, "each output written once, as by the uninterrupted run"
    assert _dump(failing) == _dump(calm)
