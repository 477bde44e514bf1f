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


def test_a_depth_run_applies_its_warm_up_first_in_batches_of_its_own_then_counts_the_rest(monkeypatch):
    """``--depth``: the warm-up's events are applied before the counted part, never in one of its batches, and
    the instrumentation (``around``) is on only around the counted part."""
    seen: list[Any] = []

    class Recording:
        def __init__(self, *_: Any, **__: Any) -> None:
            pass

        def process(self, messages: Any) -> None:
            """Record which messages each batch held."""
            seen.append(list(messages))

    monkeypatch.setattr(apply, "Engine", Recording)
    msgs: Any = list(range(25))  # stand-ins: the recording engine only keeps them
    apply.run(msgs, 10, models=False, tune_gc=False, around=lambda switch: seen.append(switch), warm=13)
    assert seen == [list(range(10)), list(range(10, 13)), "on", list(range(13, 23)), [23, 24], "off"]


def test_a_depth_stream_ends_a_minute_before_now_with_its_warm_up_first_and_nothing_in_the_future():
    """The simulator's clock also moves on the picks it skips (churned customers): a long stream is shifted to end a
    minute before ``now_ms`` (unshifted, it ran into the future and was dead-lettered as ``future_time``)."""
    from livesignals import serde

    now = apply.FIXED_NOW_MS
    msgs = apply.messages(50, 40, now_ms=now, warm=40 * 30, step_ms=apply.DEPTH_STEP_MS, skew=apply.DEPTH_SKEW)
    times = [serde.loads(m.value or b"{}")["event_time"] for m in msgs]
    assert len(msgs) == 40 * 30 + 50 and max(times) == times[-1] == now - 60_000
    assert times == sorted(times)
