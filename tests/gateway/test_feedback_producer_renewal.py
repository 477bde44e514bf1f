"""The agent desktop's feedback producer is replaced when it can never send again (break-test 10e, J2).

A broker restarted without its log (or frozen past the feedback timeout) left the service's one idempotent
producer fatal or fenced: every later Accept/Reject answered 503 until the service was restarted. Now the
producer is replaced (counted) and the desk's retry goes out. Real broker (the embedded one), restarted.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from app import embedded
from gateway.feedback import FeedbackProducer, producer_config
from livesignals import metrics
from tests.helpers import consume_all

pytestmark = pytest.mark.kafka

TOPIC = "feedback-renewal"


def _new_log(address: str) -> None:
    admin = AdminClient({"bootstrap.servers": address})  # held until the result: its handle answers it
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)


def _doc(i: int) -> dict[str, object]:
    return {"event_id": f"fb{i}", "customer": {"customer_id": "c1"}, "type": "offer_response"}


def test_a_feedback_producer_that_can_never_send_again_is_replaced_and_the_retry_goes_out():
    port = embedded.free_port()
    broker = embedded.start_kafka(port=port)
    renewed = metrics.KAFKA_PRODUCER_RENEWED._value.get()

    def producer() -> Producer:
        return Producer({"bootstrap.servers": broker.address, "log_level": 0, **producer_config(2.0)})

    try:
        _new_log(broker.address)
        sender = FeedbackProducer(producer(), TOPIC, timeout_s=2.0, renew=producer)
        asyncio.run(sender.send(_doc(0)))
        broker.stop()
        broker = embedded.start_kafka(port=port)  # the same address, an empty log: the producer id is unknown
        _new_log(broker.address)
        deadline, failures = time.monotonic() + 120, 0
        while True:  # the desk retries with the same idempotency key
            try:
                asyncio.run(sender.send(_doc(1)))
                break
            except RuntimeError:
                failures += 1
                assert time.monotonic() < deadline, f"still refused after {failures} attempts"
        got = consume_all(broker.address, TOPIC, 10, partitions=1, timeout_s=8)
    finally:
        broker.stop()
    assert metrics.KAFKA_PRODUCER_RENEWED._value.get() > renewed, "the producer was replaced, and counted"
    assert any(b"fb1" in m.value() for m in got)


def test_three_failed_sends_in_a_row_replace_the_producer_even_without_a_fatal_error():
    """A producer that keeps failing without saying it is dead (nothing listens where it sends) is replaced
    after FeedbackProducer.RENEW_AFTER failures in a row."""
    address = f"127.0.0.1:{embedded.free_port()}"  # nothing listens there
    made: list[Producer] = []

    def producer() -> Producer:
        made.append(Producer({"bootstrap.servers": address, "log_level": 0, **producer_config(0.5)}))
        return made[-1]

    sender = FeedbackProducer(producer(), TOPIC, timeout_s=0.5, renew=producer)
    for i in range(FeedbackProducer.RENEW_AFTER):
        with pytest.raises(RuntimeError):
            asyncio.run(sender.send(_doc(i)))
    assert len(made) == 2 and sender.producer is made[1], "replaced once, after the third failure"
