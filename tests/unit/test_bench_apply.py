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


def test_the_bench_store_encodes_each_touched_profile_at_its_commit_so_undo_records_encode_as_live_ones_do(
    monkeypatch,
):
    """As the Redis store's commit does (``state.to_bytes()``): the next batch's undo records then reuse that
    document. The plain in-memory store left the encode to the undo records, where the live engine does not pay
    it, and never encoded a customer touched in one batch only."""
    from operators.profile360.profile import CustomerState

    callers: list[str] = []
    fresh = CustomerState.to_bytes_fresh

    def counted(self: CustomerState) -> bytes:
        import inspect

        callers.append(inspect.stack()[1].function)
        return fresh(self)

    monkeypatch.setattr(CustomerState, "to_bytes_fresh", counted)
    msgs = apply.messages(400, 100, now_ms=apply.FIXED_NOW_MS)
    apply.run(msgs, 100, models=False, tune_gc=False)
    touched_per_batch = sum(len({serde_key(m) for m in msgs[i : i + 100]}) for i in range(0, len(msgs), 100))
    assert callers.count("to_bytes") == touched_per_batch
    assert callers.count("undo_record") == 0


def serde_key(message: Any) -> str:
    """The customer key of a bench message."""
    from livesignals import serde
    from livesignals.contract import primary_key

    return primary_key(serde.loads(message.value)["customer"])
