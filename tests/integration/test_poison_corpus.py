"""The poison corpus, interleaved with good events, through real Kafka into the real flow.

Every kind of bad input a producer can send (``tests/poison.py``, issue 9):
100 % of it lands in the dead-letter topic with its reason and origin, 100 %
of the good events are applied, and the engine process is never restarted.
"""

from __future__ import annotations

import collections
import functools
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from app.engine_process import start_engine, stop_process
from livesignals import serde
from tests.helpers import PRODUCER_CONFIG, consume_all, profiles, wait_committed
from tests.poison import CORPUS, good_events

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

GOOD_CUSTOMERS = ("g1", "g2", "g3")


def interleaved() -> list[tuple[bytes, bytes | None]]:
    """``(key, value)`` pairs: a good event, then a poison, for every poison kind."""
    goods = {c: collections.deque(good_events(c, len(CORPUS))) for c in GOOD_CUSTOMERS}
    out: list[tuple[bytes, bytes | None]] = []
    for i, poison in enumerate(CORPUS):
        customer = GOOD_CUSTOMERS[i % len(GOOD_CUSTOMERS)]
        out.append((f"customer_id:{customer}".encode(), goods[customer].popleft()))
        out.append((b"customer_id:c-poison", poison.value))
    return out


def produce_all(bootstrap: str, topic: str, values: list[tuple[bytes, bytes | None]]) -> list[tuple[int, int]]:
    """Produce in order, keyed by customer with the producer contract's partitioner (the big message
    needs the producer's limit raised); ``(partition, offset)`` of each."""
    p = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "message.max.bytes": 2_000_000, **PRODUCER_CONFIG}
    )
    where: list[tuple[int, int]] = [(-1, -1)] * len(values)

    def delivered(i: int, err: Any, m: Any) -> None:
        where[i] = (m.partition(), m.offset())

    for i, (key, value) in enumerate(values):
        p.produce(topic, value, key, on_delivery=functools.partial(delivered, i))
    assert p.flush(60) == 0
    assert (-1, -1) not in where
    return where


def run_engine_until_committed(settings: Any, n: int, tmp_path: Path) -> None:
    """Start the engine once, wait until ``n`` input messages are committed, stop it; it never restarted."""
    log_path = tmp_path / "engine.log"
    with log_path.open("wb") as log:
        engine = start_engine(settings, log=log)
        try:
            wait_committed(settings, n, engine)
            assert engine.poll() is None, "the engine is still the process we started"
        finally:
            stop_process(engine)
    assert "batch failed" not in log_path.read_text(errors="replace"), "no batch was retried"


def check_dead_letters(settings: Any, expected: dict[tuple[int, int], Any]) -> None:
    """Every poison (by partition and offset) is in the dead-letter topic, once, with its reason and origin."""
    dead = consume_all(settings.kafka_bootstrap, settings.dead_letter_topic, len(expected), timeout_s=60)
    assert len(dead) == len(expected)
    seen = set()
    for m in dead:
        h = dict(m.headers())
        poison = expected[(int(h["ls.dlq.partition"]), int(h["ls.dlq.offset"]))]
        assert h["ls.dlq.reason"].decode() == poison.reason.value, poison.kind
        assert h["ls.dlq.topic"].decode() == settings.input_topics[0] and h["ls.dlq.detail"]
        assert int(h["ls.dlq.size"]) == len(poison.value or b"")
        assert (m.value() or b"") == (poison.value or b"")[:65_536], "the original bytes, a bounded prefix"
        seen.add(poison.kind)
    assert seen == {p.kind for p in expected.values()}, "every kind, once"


def check_good_applied(settings: Any, good: list[bytes]) -> None:
    """Every good event applied to its customer, and nothing else."""
    applied = {key: serde.loads(doc)["events"] for key, doc in profiles(settings).items()}
    per_customer = collections.Counter(serde.loads(v)["customer"]["customer_id"].strip() for v in good)
    assert sorted(applied.values()) == sorted(per_customer.values()), "every good event applied, no poison"


def test_every_poison_is_dead_lettered_with_its_reason_and_every_good_event_applied(kafka_settings, tmp_path: Path):
    s = kafka_settings
    values = interleaved()
    where = produce_all(s.kafka_bootstrap, s.input_topics[0], values)
    run_engine_until_committed(s, len(values), tmp_path)
    check_dead_letters(s, {where[2 * i + 1]: poison for i, poison in enumerate(CORPUS)})
    check_good_applied(s, [v for k, v in values if k != b"customer_id:c-poison" and v])
