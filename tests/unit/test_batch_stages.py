"""Where a batch's time goes: ``livesignals_batch_stage_seconds{stage}`` is observed once per stage and batch."""

from __future__ import annotations

from bench.apply import _Drop, messages
from livesignals import metrics
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore

STAGES = ("decode", "apply", "plan", "publish", "commit")


def _observed(stage: str) -> tuple[float, float]:
    """(count, sum) of one stage's histogram."""
    samples = {s.name: s.value for m in metrics.BATCH_STAGE_SECONDS.collect() for s in m.samples
               if s.labels.get("stage") == stage}  # fmt: skip
    return samples.get("livesignals_batch_stage_seconds_count", 0.0), samples.get(
        "livesignals_batch_stage_seconds_sum", 0.0
    )


def _batch_seconds_sum() -> float:
    """The sum of ``livesignals_batch_seconds`` so far."""
    return next(
        s.value for m in metrics.BATCH_SECONDS.collect() for s in m.samples if s.name == "livesignals_batch_seconds_sum"
    )


def test_each_batch_observes_every_stage_and_the_stages_add_up_to_at_most_the_batch():
    engine = Engine(Settings.load(env={}).replace(models_enabled=False, metrics_port=0), InMemoryStore(), _Drop())
    msgs = messages(300, 50)
    before = {stage: _observed(stage) for stage in STAGES}
    batch_before = _batch_seconds_sum()
    for i in range(0, len(msgs), 100):
        engine.process(msgs[i : i + 100])
    after = {stage: _observed(stage) for stage in STAGES}
    for stage in STAGES:
        assert after[stage][0] - before[stage][0] == 3, stage
        assert after[stage][1] >= before[stage][1]
    stages_sum = sum(after[s][1] - before[s][1] for s in STAGES)
    assert 0 < stages_sum <= _batch_seconds_sum() - batch_before
