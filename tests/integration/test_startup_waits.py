"""Start-up waits for its dependencies: an engine started before Redis and while the broker does not answer
claims its partitions once both are there and applies every event (real servers, a broker of its own); its
start-up line (:mod:`flows.startup`) counts the waits, and it settled its heap (:mod:`flows.heap`)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from app import embedded
from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from flows.startup import STEPS, read_steps
from livesignals import serde
from livesignals.contract import primary_key
from operators.profile360.profile import CustomerState
from tests.helpers import produce, profiles, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 3000


def test_an_engine_started_before_redis_and_while_the_broker_is_frozen_waits_then_applies_everything(
    settings, tmp_path: Path
):
    from app.topics import ensure_topics

    tag = uuid.uuid4().hex[:6]
    redis_port = embedded.free_port()
    with embedded.start_kafka() as broker:
        s = settings.replace(
            kafka_bootstrap=broker.address, redis_url=f"redis://127.0.0.1:{redis_port}/0", key_prefix=f"up{tag}",
            input_topics=(f"up.in.{tag}",), repartition_topic=f"up.rep.{tag}", dead_letter_topic=f"up.dlq.{tag}",
            flags_topic=f"up.fl.{tag}", triggers_topic=f"up.tr.{tag}", decisions_topic=f"up.de.{tag}",
            consumer_group=f"g-{tag}", topic_partitions=4, models_enabled=False, quiet_hours="0-0", metrics_port=0,
        )  # fmt: skip
        ensure_topics(s)
        sim = Simulator(SimulatorConfig(customers=300, seed=9, start_ms=int(time.time() * 1000) - 3_600_000))
        produce(s.kafka_bootstrap, s.input_topics[0],
                [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N)])  # fmt: skip
        os.killpg(broker.proc.pid, signal.SIGSTOP)  # the broker takes connections but answers nothing
        log = open(tmp_path / "engine.log", "wb")  # noqa: SIM115 - the engine process writes it
        engine = start_engine(s, log=log)
        try:
            time.sleep(8)
            assert engine.poll() is None, "the engine waits for Redis and the broker"
            with embedded.start_redis(port=redis_port, prefer_system=True):
                time.sleep(4)
                assert engine.poll() is None, "the engine waits for the broker"
                os.killpg(broker.proc.pid, signal.SIGCONT)
                wait_committed(s, N, engine, timeout_s=240)
                assert engine.poll() is None
                applied = sum(CustomerState.from_bytes("c", doc).events for doc in profiles(s).values())
                assert applied == N, "every event applied once"
            log.flush()
            text = (tmp_path / "engine.log").read_text(errors="replace")
            steps = read_steps(text)
            assert list(steps) == sorted(STEPS, key=lambda k: steps[k][0]), "every start-up step, timed (flows.startup)"
            assert steps["first_commit"][0] >= 12, "the waits for Redis and the broker are start-up time"
            assert "flows.live: heap settled: " in text, "the engine froze its start-up heap (flows.heap)"
        finally:
            os.killpg(broker.proc.pid, signal.SIGCONT)
            stop_process(engine)
            log.close()
