"""One learner per model kind whatever the partition count; lessons learned once; honest evaluation."""

from __future__ import annotations

import pickle

from app.evaluate import evaluate, rejection_note, table
from app.simulator.subscription import SubscriptionConfig, SubscriptionSimulator
from livesignals import serde
from livesignals.settings import Settings
from models.churn import ChurnModel
from operators.engine import Engine
from operators.partition import PartitionAggregates
from operators.scoring.learner import MemoryModelLog, SharedLearner
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

DAY = 86_400_000


def subscription_stream(customers: int = 100, days: int = 150, seed: int = 5) -> list[bytes]:
    config = SubscriptionConfig(customers=customers, days=days, seed=seed, events_per_day=1.5, decline_share=0.3)
    return [serde.dumps(e) for e, _ in SubscriptionSimulator(config).stream()]


def test_one_stream_at_1_12_and_48_partitions_gives_the_same_quality():
    stream = subscription_stream()
    settings = Settings(metrics_port=0).replace(rules_path="none", churn_horizon_days=30)
    results = {}
    for n in (1, 12, 48):
        rows = evaluate(stream, {"base": {}}, settings, partitions=n, batch_size=2000)
        results[n] = next(r for r in rows if r["kind"] == "churn" and r["role"] == "champion")
    aucs = {n: r["truth_roc_auc"] for n, r in results.items()}
    assert all(a is not None and a > 0.6 for a in aucs.values()), aucs
    assert max(aucs.values()) - min(aucs.values()) <= 0.02, aucs
    assert results[1]["labels"] >= 200, "enough labels to trust the score"
    assert (
        max(r["labels"] for r in results.values()) - min(r["labels"] for r in results.values())
        <= 0.01 * results[1]["labels"]
    )


def test_labels_are_counted_once_and_class_balance_is_shown():
    stream = [serde.dumps(e) for e in (event("call", f"c{i}", T0 + i) for i in range(20))]
    stream += [serde.dumps(event("cancellation", f"c{i}", T0 + DAY + i)) for i in range(5)]
    rows = evaluate(stream, {"base": {}}, Settings(metrics_port=0).replace(rules_path="none"), partitions=4)
    churn = next(r for r in rows if r["kind"] == "churn" and r["role"] == "champion")
    assert churn["labels"] == 5 and churn["balance"] == "true:5"


def test_a_stream_whose_every_event_is_rejected_reports_it_without_crashing():
    rows = evaluate([b"not json", b'{"schema_version": 1}'], {"base": {}}, Settings(metrics_port=0))
    note = rejection_note(rows)
    assert note is not None and "2 of 2 events" in note and "every event was rejected" in note
    assert "config" in table(rows) and table([]).startswith("config")


def test_a_replayed_batch_teaches_nothing_twice():
    settings = Settings(metrics_port=0).replace(rules_path="none", churn_horizon_days=1)
    docs = [event("call", "c1", T0), event("survey", "c1", T0 + 1, kind="csat", score=1, comment="awful"),
            event("cancellation", "c1", T0 + 2)]  # fmt: skip
    e = Engine(settings, InMemoryStore(), _Discard(), clock=lambda: 4e12)
    messages = raw(docs)
    e.learner.publish(_lessons_of(e, messages))  # a first attempt published its lessons, then its commit failed
    e.process(messages)
    assert e.learner.models.model("churn").validation.labels == 1
    assert e.learner.models.model("sentiment").labels == 1


def _lessons_of(e: Engine, messages) -> list:
    """The lessons a batch would publish, from a throwaway engine on the same log."""
    twin = Engine(e.settings, InMemoryStore(), _Discard(), clock=lambda: 4e12)
    twin.process(messages)
    log = twin.store.models_log
    assert isinstance(log, MemoryModelLog)
    return [serde.loads(r) for _, r in log.entries]


class _Discard:
    def publish(self, records) -> None:
        pass


def test_workers_on_one_log_hold_the_same_models():
    log = MemoryModelLog()
    a, b = SharedLearner(log, checkpoint_every=3), SharedLearner(log, checkpoint_every=3)
    for i in range(10):
        view = (a if i % 2 else b).view()
        view.at(f"in:{i % 2}", i)
        view.teach("churn", [{"events_30d": float(i)}, i % 3 == 0], {"champion": 0.5})
        (a if i % 2 else b).publish(view.take())
        a.catch_up()
    b.catch_up()
    assert a.models.model("churn").averaged == b.models.model("churn").averaged
    assert a.models.summary() == b.models.summary()
    late = SharedLearner(log)  # starts after the log was trimmed: loads the checkpoint, then the rest
    late.catch_up()
    assert late.models.model("churn").validation.labels == 10 == a.state.applied


def test_models_and_stateful_classes_survive_pickle_and_repeat_with_the_same_seed():
    def trained(seed: int) -> ChurnModel:
        m = ChurnModel(seed=seed, max_features=3)
        for i in range(50):
            m.learn_one({"a": float(i % 5), "b": float(i % 3), "c": 1.0, "d": 2.0}, i % 4 == 0)
        return m

    m = trained(1)
    assert set(m.known) == {"a", "b", "c"}  # bounded: the 4th name is never learned
    again = pickle.loads(pickle.dumps(m))
    assert (
        again.predict_proba_one({"a": 1.0})
        == m.predict_proba_one({"a": 1.0})
        == trained(1).predict_proba_one({"a": 1.0})
    )
    part = PartitionAggregates()
    part.index_due(T0, "customer_id:c1")
    assert PartitionAggregates.from_fields({k.encode(): v for k, v in part.to_fields().items()}).churn_due == {
        T0 // DAY: {"customer_id:c1"}
    }
    assert pickle.loads(pickle.dumps(part)).churn_due == part.churn_due
    one = [e for e, _ in SubscriptionSimulator(SubscriptionConfig(customers=5, days=10, seed=2)).stream()]
    two = [e for e, _ in SubscriptionSimulator(SubscriptionConfig(customers=5, days=10, seed=2)).stream()]
    assert one == two


def test_a_lesson_no_model_can_learn_is_skipped_and_counted_not_a_failed_batch():
    """A bad lesson in the shared log would otherwise fail every worker's every batch, forever."""
    from livesignals import metrics

    log = MemoryModelLog()
    worker = SharedLearner(log)
    view = worker.view()
    view.at("in:0", 1)
    view.teach("churn", ["not a feature dict", True], {"champion": 0.5})
    view.at("in:0", 2)
    view.teach("churn", [{"events_30d": 1.0}, True], {"champion": 0.5})
    worker.publish(view.take())
    failed = metrics.MODEL_LESSONS.labels("failed")._value.get()
    assert worker.catch_up() == 2
    assert metrics.MODEL_LESSONS.labels("failed")._value.get() == failed + 1
    assert worker.state.applied == 2 and worker.catch_up() == 0, "the log moved past both, once"


def test_lessons_carry_hashed_buckets_not_the_customers_words():
    settings = Settings(metrics_port=0).replace(rules_path="none")
    comment = "the courier Zarathustra left my parcel in the rain"
    chat = event("chat", "c1", T0, event_id="m1", text="where is my parcel, Mr Quetzalcoatl?")
    docs = [chat, event("survey", "c1", T0 + 1, kind="csat", score=1, comment=comment, rates_event_id="m1")]
    e = Engine(settings, InMemoryStore(), _Discard(), clock=lambda: 4e12)
    lessons = _lessons_of(e, raw(docs))
    taught = [lesson for lesson in lessons if lesson[3] == "sentiment"]
    assert len(taught) == 2
    published = serde.dumps(lessons).decode()
    assert "Zarathustra" not in published and "Quetzalcoatl" not in published and "parcel" not in published
    # learning from the lesson is learning from the text
    from models.sentiment import SentimentModel

    by_text, by_lesson = SentimentModel(), SentimentModel()
    for _ in range(3):
        by_text.learn_one(comment, "negative")
        by_lesson.learn_one(serde.loads(serde.dumps(by_lesson.lesson(comment))), "negative")
    assert pickle.dumps(by_text.classifier) == pickle.dumps(by_lesson.classifier)
    assert by_text.score("my parcel in the rain") == by_lesson.score("my parcel in the rain")


def test_fraud_lessons_of_one_batch_are_learned_as_the_model_scores_them_when_learned():
    """Every order of a batch is scored on the model as the batch found it; the shared learner then learns
    them in order, each ranked in the calibration window by the score the model gives it *then*. A lesson
    that carried its scoring-time score instead filled the window differently once the trees' reference
    window turned over within the batch: fraud scores and ``fraud_risk`` flags changed (break-test 16b, B2)."""
    from livesignals.contract import decode
    from livesignals.errors import Origin
    from models.registry import ModelSet
    from operators.profile360.profile import CustomerState
    from operators.scoring import online

    models = ModelSet.from_config({"fraud": {"champion": {"window_size": 25}}})
    fraud = models.model("fraud")
    for i in range(2 * fraud.window_size + 1):  # warm: events are scored
        fraud.learn_one({"amount": 20.0 + i % 7, "orders_1h": 1.0})
    alone = pickle.loads(pickle.dumps(fraud))  # learns the same events one by one, scoring each as it learns
    view = SharedLearner(MemoryModelLog()).view()
    view.models = models
    orders = []
    for i in range(3 * fraud.window_size):  # one batch that crosses the trees' window more than once
        view.at("in:0", i)
        amount = 20.0 + (i * 37) % 900
        body = serde.dumps(event("order", f"c{i}", T0 + i, order_id=f"o{i}", amount=amount))
        order = decode(body, Origin("in", 0, i), now_ms=T0 + i)
        orders.append(order)
        online.score_fraud(view, CustomerState(f"customer_id:c{i}"), order, online.ScoringReport())
    lessons = serde.loads(serde.dumps(view.take()))  # as the shared log hands them back
    assert len(lessons) == len(orders)
    for lesson in lessons:
        models.teach(lesson[3], lesson[4], lesson[5])
        alone.learn_one(lesson[4][0])
    assert models.model("fraud").score_one({"amount": 700.0, "orders_1h": 3.0}) == alone.score_one(
        {"amount": 700.0, "orders_1h": 3.0}
    )
    assert list(models.model("fraud")._recent) == list(alone._recent)


class _CountingReads(MemoryModelLog):
    """The in-memory log, counting its round trips: a read alone, or an append with its read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = self.appends_read = 0

    def read(self, after: str, count: int):
        self.reads += 1
        return super().read(after, count)

    def append_and_read(self, lessons: list[bytes], after: str, count: int):
        self.appends_read += 1
        self.append(lessons)
        return MemoryModelLog.read(self, after, count)


def test_an_engine_learns_its_own_lessons_with_their_append_one_log_round_trip_less_a_batch():
    """Each batch reads the log once before it (the other workers' lessons) and reads its own lessons back with
    their append (one round trip), learning them after its commit, as a catch-up there did (a crash between
    the append and the commit must not find them learned); after every batch the models have learned all it
    published, the exported figures are the models' own, and a batch with no lessons reads nothing after it."""
    from livesignals import metrics

    settings = Settings(metrics_port=0).replace(rules_path="none", churn_horizon_days=1)
    store = InMemoryStore()
    log = store.models_log = _CountingReads()
    e = Engine(settings, store, _Discard(), clock=lambda: 4e12)
    at_commit, commit = [], store.commit

    def committing(*args, **kwargs) -> None:
        at_commit.append((e.learner.state.applied, log.appended))
        commit(*args, **kwargs)

    store.commit = committing  # type: ignore[method-assign]
    docs = [event("call", f"c{i}", T0 + i) for i in range(4)]
    docs += [event("cancellation", f"c{i}", T0 + DAY + i) for i in range(4)]
    messages = raw([*docs, event("page_view", "c9", T0 + 2 * DAY)])
    batches = [messages[:4], messages[4:8], messages[8:]]
    for n, (messages, appends) in enumerate(zip(batches, (0, 1, 1), strict=True), 1):
        e.process(messages)
        assert e.learner.state.applied == log.appended, "learned all it published, before the next batch"
        assert log.reads == n, "one read before each batch, none after"
        assert log.appends_read == appends, "its lessons' append reads too; no lessons, no round trip"
    assert at_commit[1][0] < at_commit[1][1], "the second batch's lessons were appended, not learned, at its commit"
    champion = next(r for r in e.learner.models.summary() if r["kind"] == "churn" and r["role"] == "champion")
    assert metrics.MODEL_METRIC.labels("churn", "champion", "labels", "all")._value.get() == champion["labels"] > 0
