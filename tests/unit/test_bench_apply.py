"""bench.apply's harness: what its runs are given (the figures themselves are the benchmark's, not a test's)."""

from __future__ import annotations

from typing import Any

from bench import apply


def test_a_callgrind_run_writes_model_checkpoints_by_lesson_count_never_by_seconds_passed(monkeypatch):
    """A run under valgrind lasts minutes: a checkpoint due by time fell inside some counts and not others."""
    given: list[Any] = []

    class Recording:
        def __init__(self, settings: Any, *_: Any, **__: Any) -> None:
            given.append(settings)

        def process(self, _messages: Any) -> None:
            """Nothing to do: only the settings are looked at."""

    monkeypatch.setattr(apply, "Engine", Recording)
    apply.run([], 10, models=True, tune_gc=False, fixed_checkpoints=True)
    apply.run([], 10, models=True, tune_gc=False)
    assert given[0].models_checkpoint_every_s >= 1e9 > given[1].models_checkpoint_every_s
    assert given[0].models_checkpoint_every == given[1].models_checkpoint_every
