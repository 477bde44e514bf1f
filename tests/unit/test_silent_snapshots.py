"""Silent stretches are snapshotted for churn learning, deterministically (operators/scoring/silence.py)."""

from __future__ import annotations

import pickle
import random
from collections import Counter

from app.evaluate import layout
from livesignals import serde
from livesignals.settings import Settings
from operators.engine import Engine
from operators.scoring.learner import MemoryModelLog
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

DAY = 86_400_000


class Discard:
    def publish(self, records) -> None:
        pass


def engine() -> Engine:
    settings = Settings(metrics_port=0).replace(rules_path="none", churn_horizon_days=30, churn_snapshots_per_horizon=6)
    return Engine(settings, InMemoryStore(), Discard(), clock=lambda: 4e12)


def clock_customer(days: int) -> list[dict]:
    """A customer active every day: it moves the partition's event time on."""
    return [event("app_event", "busy", T0 + d * DAY + 1000, action="post") for d in range(days)]


def run(docs: list[dict], batch: int) -> Engine:
    """Process ``docs`` in time order, ``batch`` events at a time."""
    e = engine()
    docs = sorted(docs, key=lambda d: d["event_time"])
    for i in range(0, len(docs), batch):
        e.process(raw(docs[i : i + batch], start=i))
    return e


def silences_learned(e: Engine) -> list[float]:
    """``days_since_active`` of every churn snapshot learned in a silence (5 days or more)."""
    lessons = [serde.loads(raw) for _, raw in e.store.models_log.entries]  # type: ignore[attr-defined]
    return sorted(x["days_since_active"] for _, _, _, kind, (x, _), _ in (lesson for lesson in lessons
                  if lesson[3] == "churn") if x["days_since_active"] >= 5)  # fmt: skip


def test_a_silent_customer_is_snapshotted_each_cadence_of_its_silence_for_one_horizon():
    docs = [event("call", "quiet", T0), *clock_customer(75)]
    for batch in (1, 4, 1000):  # the sweep takes them as the partition's time passes, or all at once
        e = run(docs, batch)
        assert silences_learned(e) == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0], batch  # learned, with the silence
        assert e.store.states["customer_id:quiet"].predictions["churn_pending"] == []  # type: ignore[attr-defined]


def test_a_silence_that_ends_in_a_cancellation_teaches_positives():
    docs = [event("call", "quiet", T0), event("cancellation", "quiet", T0 + 12 * DAY), *clock_customer(20)]
    for batch in (1, 1000):  # the sweep takes +5 days first, or the cancellation takes both
        e = run(docs, batch)
        assert e.learner.models.model("churn").validation.positives == 3  # at 0, +5 and +10 days


def mixed_stream(seed: int = 3, customers: int = 30, days: int = 110) -> list[bytes]:
    """Customers with gaps of 1 to 20 days between events; some cancel."""
    rng = random.Random(seed)
    docs = []
    for i in range(customers):
        t, end = T0 + rng.randrange(DAY), T0 + days * DAY
        cancel_at = T0 + rng.randrange(40, days) * DAY if i % 3 == 0 else None
        while t < end:
            if cancel_at is not None and t >= cancel_at:
                docs.append(event("cancellation", f"c{i}", t))
                break
            docs.append(event(rng.choice(("call", "app_event", "order")), f"c{i}", t, action="post",
                              order_id=f"o{i}-{t}", amount=10.0))  # fmt: skip
            t += rng.randrange(1, 20) * DAY + rng.randrange(DAY)
    # every customer comes back long after: each run has then taken and learned every snapshot before
    docs += [event("call", f"c{i}", T0 + (days + 65) * DAY + i) for i in range(customers)]
    return [serde.dumps(d) for d in sorted(docs, key=lambda d: d["event_time"])]


def learned_snapshots(e: Engine) -> Counter:
    """Every churn snapshot the run learned, with its label."""
    log = e.store.models_log
    assert isinstance(log, MemoryModelLog)
    lessons = [serde.loads(raw) for _, raw in log.entries]
    return Counter((tuple(sorted(lesson[4][0].items())), lesson[4][1]) for lesson in lessons if lesson[3] == "churn")


def test_the_same_stream_gives_the_same_snapshots_whatever_the_batches_and_partitions():
    stream = mixed_stream()
    runs = []
    for partitions, batch in ((1, 1), (4, 7), (12, 500), (48, 10_000)):
        e = engine()
        messages, _ = layout(stream, partitions)
        for i in range(0, len(messages), batch):
            e.process(messages[i : i + batch])
        pending = [len(s.predictions.get("churn_pending", [])) for s in e.store.states.values()]  # type: ignore[attr-defined]
        assert pending == [1] * len(pending)  # the closing event's own: everything before it is learned
        runs.append(learned_snapshots(e))
    silent = sum(n for (x, _), n in runs[0].items() if dict(x)["days_since_active"] >= 5)
    assert silent > 50 and sum(n for (_, y), n in runs[0].items() if y) > 10, "silences to snapshot, cancellations"
    for other in runs[1:]:
        assert other == runs[0]


def test_a_state_with_silent_snapshots_survives_pickle():
    e = run([event("call", "quiet", T0), *clock_customer(12)], 1)
    state = e.store.states["customer_id:quiet"]  # type: ignore[attr-defined]
    assert len(state.predictions["churn_pending"]) == 2 and pickle.loads(pickle.dumps(state)) == state
