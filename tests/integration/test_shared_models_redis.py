"""The shared models on real Redis: two workers hold the same models, a restart neither forgets nor
learns twice, a batch whose commit failed after its lessons were published is not learned twice."""

from __future__ import annotations

from livesignals import serde
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.models_store import RedisModelLog
from state.reader import read_kpis
from state.store import ProfileStore
from tests.flows.test_live_flow import MemoryPublisher
from tests.helpers import T0, event, raw

DAY = 86_400_000


def stream(partition: int, customers: range) -> list:
    docs = []
    for day in range(45):
        for i in customers:
            cid, t = f"c{i}", T0 + day * DAY + i * 1000
            if i % 3 == 0 and day == 20 + i % 10:
                docs.append(event("cancellation", cid, t))
            elif not (i % 3 == 0 and day > 20 + i % 10):
                docs.append(event("app_event", cid, t, action="post" if i % 3 else "like"))
                if day % 7 == 0:
                    docs.append(event("survey", cid, t + 1, kind="csat", score=1 + i % 5, comment=f"service {i % 5}"))
    return raw(docs, "in", partition)


def engine(settings, **changes) -> Engine:
    s = settings.replace(rules_path="none", churn_horizon_days=10, **changes)
    return Engine(s, ProfileStore(connect(s), Keys(s.key_prefix)), MemoryPublisher())


def fingerprint(e: Engine) -> tuple:
    """What the models learned and would say (pickled bytes differ by memo layout only; validation
    figures differ legitimately after a retry, which scores with models that have learned more)."""
    m = e.learner.models
    churn, sentiment = m.model("churn"), m.model("sentiment")
    x = {"events_30d": 1.0, "post_7d": 0.5, "days_since_active": 3.0}
    labels = [(row["kind"], row.get("labels")) for row in m.summary()]
    return (labels, churn.averaged, churn.intercept, churn.predict_proba_one(x),
            sentiment.score("service 1 was awful"), sentiment.labels)  # fmt: skip


def run(e: Engine, messages, batch: int = 300) -> None:
    for i in range(0, len(messages), batch):
        e.process(messages[i : i + batch])


def test_two_workers_on_different_partitions_hold_identical_models(settings):
    a, b = engine(settings), engine(settings)
    p0, p1 = stream(0, range(0, 30)), stream(1, range(30, 60))
    for i in range(0, max(len(p0), len(p1)), 300):
        a.process(p0[i : i + 300]) if p0[i : i + 300] else None
        b.process(p1[i : i + 300]) if p1[i : i + 300] else None
    a.learner.catch_up()
    b.learner.catch_up()
    assert a.learner.state.applied == b.learner.state.applied > 0
    assert fingerprint(a) == fingerprint(b)
    churn = a.learner.models.model("churn")
    assert churn.validation.labels > 50 and {True, False} <= set(_classes(settings))


def _classes(settings) -> set[bool]:
    entries = connect(settings).xrange(f"{settings.key_prefix}:{{models}}:lessons")
    return {serde.loads(f[b"l"])[4][1] for _, f in entries if serde.loads(f[b"l"])[3] == "churn"}


def test_a_restart_from_a_checkpoint_neither_forgets_nor_learns_twice(settings):
    messages = stream(0, range(0, 40))
    half = len(messages) // 600 * 300  # on a batch boundary: scores (and what lessons say) match
    straight = engine(settings.replace(key_prefix=settings.key_prefix + "s"), models_checkpoint_every=10**9)
    run(straight, messages)
    restarted = settings.replace(key_prefix=settings.key_prefix + "r")
    before = engine(restarted, models_checkpoint_every=40)
    run(before, messages[:half])
    log = RedisModelLog(connect(restarted), restarted.key_prefix)
    assert before.learner.checkpoints_written >= 2
    assert connect(restarted).xlen(log.lessons) < before.learner.state.applied  # trimmed: bounded
    after = engine(restarted, models_checkpoint_every=40)  # a new process: checkpoint + the lessons since
    run(after, messages[half:])
    after.learner.catch_up()
    straight.learner.catch_up()
    assert after.learner.state.applied == straight.learner.state.applied
    assert fingerprint(after) == fingerprint(straight)
    assert serde.dumps(after.learner.models.summary()) == serde.dumps(straight.learner.models.summary())
    assert read_kpis(connect(restarted), Keys(restarted.key_prefix), T0 + 45 * DAY) is not None  # no pickle read


def test_a_batch_replayed_after_a_failed_commit_is_learned_once(settings):
    messages = stream(0, range(0, 20))
    clean = engine(settings.replace(key_prefix=settings.key_prefix + "c"))
    run(clean, messages)
    faulty_settings = settings.replace(key_prefix=settings.key_prefix + "f")
    faulty = engine(faulty_settings)
    store = faulty.store
    real_commit = store.commit
    failed: list[int] = []

    def commit(*args, **kwargs):
        if len(failed) < 3 and faulty.learner.state.applied > 10:
            failed.append(1)
            raise ConnectionError("redis went away mid-commit")  # after the lessons were published
        return real_commit(*args, **kwargs)

    store.commit = commit  # type: ignore[method-assign]
    for i in range(0, len(messages), 300):
        chunk = messages[i : i + 300]
        while True:
            try:
                faulty.process(chunk)
                break
            except ConnectionError:
                faulty.forget()
    assert len(failed) == 3
    clean.learner.catch_up()
    faulty.learner.catch_up()
    assert faulty.learner.state.applied == clean.learner.state.applied
    # the same labels, each learned once (the retry scored with models that had learned more, so
    # what the snapshots hold -- e.g. the mood -- may differ: the weights need not be identical)
    assert fingerprint(faulty)[0] == fingerprint(clean)[0]
