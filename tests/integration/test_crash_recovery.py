"""SIGKILL a worker mid-stream, restart it: Redis state equals an uninterrupted run.

With models off: the shared models learn with a lag of about one batch (issue 11,
:mod:`operators.scoring.learner`), so scores -- and what depends on them: mood,
complaints, flags -- follow the batch boundaries, which a restart moves. That a
restart neither forgets nor learns a label twice is tested on the models
themselves in ``tests/integration/test_shared_models_redis.py``; with models on,
three SIGKILLs are compared on everything not model-derived, lessons included
(the last test; :mod:`tests.faults_models`).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import primary_key
from tests.helpers import aggregates, committed, consume_all, produce, profiles, timelines, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 60_000


def test_sigkill_mid_stream_then_restart_equals_an_uninterrupted_run(kafka_settings):
    sim = Simulator(SimulatorConfig(customers=3000, seed=11, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    produce(
        kafka_settings.kafka_bootstrap,
        kafka_settings.input_topics[0],
        [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N)],
    )

    # quiet hours off: triggers go out whatever the hour the test runs at; models off: see the docstring
    base = kafka_settings.replace(quiet_hours="0-0", models_enabled=False)
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
        assert (fields[b"kpi"], fields[b"voc"]) == (other[b"kpi"], other[b"voc"])

    # Outputs are at least once, with deterministic ids: the same set after dedup.
    def ids(settings, topic):
        return {dict(m.headers())["ls.id"] for m in consume_all(settings.kafka_bootstrap, topic, 10**9, timeout_s=5)}

    assert ids(reference, reference.triggers_topic) == ids(crashed, crashed.triggers_topic) != set()
    assert ids(reference, reference.decisions_topic) == ids(crashed, crashed.decisions_topic) != set()


N_MODELS = 20_000
KILLS_AT = (0.1, 0.4, 0.7)
"""Fractions of the input committed when each SIGKILL lands."""


def test_sigkill_at_several_points_with_models_on_loses_nothing_and_counts_nothing_twice(kafka_settings):
    """Models on (the production default), SIGKILL three times: everything not model-derived is exact.

    Exact against an uninterrupted run: per profile the events applied and every
    section but the model-derived parts, timelines (without the score), KPIs, the
    non-model flags on the flags topic (the same ids, each saying one thing), the
    scores present on the same events and in range, and the lessons of
    ``sentiment``, ``churn`` and ``fraud``: the same set, each learned once.
    Excluded from exact comparison (README, *Model scores after a crash*):
    ``predictions``, the flags ``fraud_risk``, ``high_churn_risk``,
    ``likely_to_negotiate``, ``frustrated`` and ``negative_survey``, every
    flag's relevance, triggers and decisions (ids must still say one thing
    each), history ``sent``/``recent_flags``/``offer_history``, the
    ``complaints`` window metric, the voice-of-the-customer aggregate, and the
    lessons of ``offers`` and ``flag_relevance``: see :mod:`tests.faults_models`.
    """
    from tests.faults_models import compare, failures, outcome

    sim = Simulator(SimulatorConfig(customers=1500, seed=13, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    produce(
        kafka_settings.kafka_bootstrap,
        kafka_settings.input_topics[0],
        [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N_MODELS)],
    )
    # models on; checkpoints by count only, so the lesson log is kept whole for the comparison
    base = kafka_settings.replace(quiet_hours="0-0", models_enabled=True, models_checkpoint_every_s=10**6)
    reference = base.replace(
        key_prefix=kafka_settings.key_prefix + "ref",
        flags_topic=kafka_settings.flags_topic + "-ref",
        triggers_topic=kafka_settings.triggers_topic + "-ref",
        decisions_topic=kafka_settings.decisions_topic + "-ref",
    )
    crashed = base.replace(key_prefix=kafka_settings.key_prefix + "crash", batch_size=300)

    engine = start_engine(reference)
    try:
        wait_committed(reference, N_MODELS, engine)
    finally:
        stop_process(engine)

    marks = []
    for fraction in KILLS_AT:
        engine = start_engine(crashed)
        try:
            while committed(crashed) < fraction * N_MODELS:
                assert engine.poll() is None
                time.sleep(0.01)
            os.killpg(engine.pid, signal.SIGKILL)
            engine.wait(10)
            marks.append(committed(crashed))
        finally:
            stop_process(engine)
    assert 0 < marks[0] < marks[-1] < N_MODELS, f"the kills must land mid-stream: {marks}"
    engine = start_engine(crashed)
    try:
        wait_committed(crashed, N_MODELS, engine)
    finally:
        stop_process(engine)

    figures = compare(outcome(reference), outcome(crashed))
    print("models on, SIGKILL at", marks, figures)
    assert figures["customers"] > 1000
    assert failures(figures) == {}, figures
    assert figures["lessons_learned"][0] > 1000 and figures["labels_by_kind"][0].keys() >= {"sentiment", "fraud"}
