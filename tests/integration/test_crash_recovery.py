"""SIGKILL a worker mid-stream, restart it: Redis state equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import primary_key
from models.registry import ModelSet
from tests.helpers import aggregates, committed, consume_all, produce, profiles, timelines, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 60_000
PROBE_TEXTS = ["my order never arrived, terrible", "thanks a lot!", "سفارشم نرسید", "where is my parcel"]
PROBE_FEATURES = [{"complaints_30d": 3.0, "mood": -0.5, "orders_30d": 0.0}, {"orders_30d": 4.0, "mood": 0.6}]


def assert_same_behaviour(a: ModelSet, b: ModelSet) -> None:
    """Pickles of equal River models may differ in bytes (object sharing); behaviour may not."""
    assert a.summary() == b.summary()
    for text in PROBE_TEXTS:
        assert a.model("sentiment").predict_proba_one(text) == b.model("sentiment").predict_proba_one(text)
    for x in PROBE_FEATURES:
        assert a.model("churn").predict_proba_one(x) == b.model("churn").predict_proba_one(x)
        assert a.model("fraud").score_one(x) == b.model("fraud").score_one(x)


def test_sigkill_mid_stream_then_restart_equals_an_uninterrupted_run(kafka_settings):
    sim = Simulator(SimulatorConfig(customers=3000, seed=11, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    produce(
        kafka_settings.kafka_bootstrap,
        kafka_settings.input_topics[0],
        [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N)],
    )

    base = kafka_settings.replace(quiet_hours="0-0")  # triggers go out whatever the hour the test runs at
    reference = base.replace(
        key_prefix=kafka_settings.key_prefix + "ref",
        flags_topic=kafka_settings.flags_topic + "-ref",
        triggers_topic=kafka_settings.triggers_topic + "-ref",
        decisions_topic=kafka_settings.decisions_topic + "-ref",
    )
    crashed = base.replace(key_prefix=kafka_settings.key_prefix + "crash", batch_size=300)

    engine = start_engine(reference)
    try:
        wait_committed(reference, N, engine)
    finally:
        stop_process(engine)

    engine = start_engine(crashed)
    try:
        while committed(crashed) < N // 3:
            assert engine.poll() is None
            time.sleep(0.01)
        os.killpg(engine.pid, signal.SIGKILL)
        engine.wait(10)
        at_kill = committed(crashed)
        assert 0 < at_kill < N, "the kill must land mid-stream"
    finally:
        stop_process(engine)
    engine = start_engine(crashed)
    try:
        wait_committed(crashed, N, engine)
    finally:
        stop_process(engine)

    ref_profiles, crash_profiles = profiles(reference), profiles(crashed)
    assert len(ref_profiles) > 1000
    strip = len(reference.key_prefix), len(crashed.key_prefix)
    assert {k[strip[0] :]: v for k, v in ref_profiles.items()} == {k[strip[1] :]: v for k, v in crash_profiles.items()}

    def unprefixed(data, settings):
        return {k[len(settings.key_prefix) :]: v for k, v in data.items()}

    assert unprefixed(timelines(reference), reference) == unprefixed(timelines(crashed), crashed)
    ref_aggs, crash_aggs = unprefixed(aggregates(reference), reference), unprefixed(aggregates(crashed), crashed)
    assert len(ref_aggs) == 4 and set(ref_aggs) == set(crash_aggs)
    for part, fields in ref_aggs.items():
        other = crash_aggs[part]
        assert (fields[b"kpi"], fields[b"voc"], fields[b"models_summary"]) == (
            other[b"kpi"], other[b"voc"], other[b"models_summary"],
        )  # fmt: skip
        assert_same_behaviour(ModelSet.from_bytes(fields[b"models"]), ModelSet.from_bytes(other[b"models"]))

    # Outputs are at least once, with deterministic ids: the same set after dedup.
    def ids(settings, topic):
        return {dict(m.headers())["ls.id"] for m in consume_all(settings.kafka_bootstrap, topic, 10**9, timeout_s=5)}

    assert ids(reference, reference.triggers_topic) == ids(crashed, crashed.triggers_topic) != set()
    assert ids(reference, reference.decisions_topic) == ids(crashed, crashed.decisions_topic) != set()
