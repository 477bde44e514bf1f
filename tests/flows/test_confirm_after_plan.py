"""Kafka's confirmation of a batch's outputs is awaited after the commit is planned (issue 16, item 3), on a real Redis.

Planning changes the states (timeline entries and links taken, erasures done): a confirmation that fails after it
must leave the batch to be redone from scratch, exactly as a publish failure did when it came first.
"""

from __future__ import annotations

from typing import Any

import pytest

from flows.engine_sink import default_engine
from flows.publisher import DeliveryError
from livesignals import serde
from operators.ports import OutRecord, plan_commit, send
from state.connection import connect
from state.keys import Keys
from state.memory import InMemoryStore
from tests import faults
from tests.helpers import event


class SplitPublisher:
    """Sends, then confirms; the confirmation of batch ``fail_at`` fails once (the broker refused it)."""

    def __init__(self, fail_at: int | None, planned: list[Any]) -> None:
        self.records: list[OutRecord] = []
        self._sent: list[OutRecord] = []
        self.sends = 0
        self.fail_at = fail_at
        self.planned = planned
        self.failures: list[int] = []
        """For each failed confirmation: how many commits had been planned by then."""

    def publish(self, records: list[OutRecord]) -> None:
        self.send(records)
        self.confirm()

    def send(self, records: list[OutRecord]) -> None:
        self._sent = list(records)
        self.sends += 1

    def confirm(self) -> None:
        if self.sends == self.fail_at:
            self.failures.append(len(self.planned))
            raise DeliveryError("1 records failed: the broker refused them")
        self.records.extend(self._sent)


def _messages() -> list[Any]:
    """The fault-injection stream (timelines, links, flags, triggers) with an erasure in the failing batch."""
    erase = event("erase", "victim", faults.NOON + 50 * 60_000, channel="backoffice", event_id="erase-v",
                  request_id="r1")  # fmt: skip
    return faults.appended(faults.stream(None), [erase])


def _run(settings: Any, messages: list[Any], fail_at: int | None) -> SplitPublisher:
    planned: list[Any] = []
    pub = SplitPublisher(fail_at, planned)
    engine = default_engine(settings.replace(models_enabled=False), pub)
    engine.clock = faults.clock
    store: Any = engine.store
    plan = store.plan

    def planning(*args: Any, **kwargs: Any) -> Any:
        planned.append(plan(*args, **kwargs))
        return planned[-1]

    store.plan = planning
    for batch in faults.batches(messages):
        while True:
            try:
                engine.process(batch)
                break
            except DeliveryError:
                engine.forget()  # as the sink's retry path does (flows.engine_sink)
    return pub


def same_secrets(*runs: Any) -> None:
    """Give the runs' key prefixes the same deployment secrets (pseudonyms and erasure subjects are keyed with them)."""
    for run in runs:
        for name in ("privacy", "pseudonym", "origin"):
            connect(run).set(Keys(run.key_prefix).secret(name), name * 8)


def _dump(settings: Any) -> dict[str, Any]:
    """Everything the run left in Redis under its prefix (stream entry ids and the erasure audit's ``at`` are wall
    clock: left out)."""
    client: Any = connect(settings)
    prefix = settings.key_prefix
    out: dict[str, Any] = {}
    for name in client.scan_iter(f"*{prefix}*", count=1000):
        kind = client.type(name).decode()
        value: Any
        if kind == "string":
            value = client.get(name)
        elif kind == "hash":
            value = client.hgetall(name)
        elif kind == "set":
            value = client.smembers(name)
        elif kind == "zset":
            value = client.zrange(name, 0, -1, withscores=True)
        elif kind == "stream":
            value = [{k: v for k, v in fields.items() if k != b"at"} for _, fields in client.xrange(name)]
        else:
            value = kind
        out[name.decode().replace(prefix, "P")] = value
    return out


@pytest.mark.parametrize("fail_at", [2, 4])  # 4: the last batch, which erases the victim
def test_a_confirmation_failing_after_the_plan_redoes_the_batch_to_the_same_state_and_outputs(settings, fail_at):
    messages = _messages()
    assert len(list(faults.batches(messages))) == 4
    calm, failing = (
        settings.replace(key_prefix=settings.key_prefix + "a"),
        settings.replace(key_prefix=settings.key_prefix + "b"),
    )
    same_secrets(calm, failing)
    clean = _run(calm, messages, None)
    faulty = _run(failing, messages, fail_at)
    assert faulty.failures == [fail_at], "the failing confirmation came after its batch's commit was planned"
    assert [(r.topic, r.key, r.value, r.headers) for r in faulty.records] == [
        (r.topic, r.key, r.value, r.headers) for r in clean.records
    ]
    assert any(r.topic == settings.flags_topic for r in clean.records)
    calm_dump, failing_dump = _dump(calm), _dump(failing)
    assert any(":timeline:" in k or "timeline" in k for k in calm_dump), sorted(calm_dump)[:20]
    assert failing_dump == calm_dump


def test_a_store_without_a_plan_commits_when_asked_and_a_publisher_without_send_publishes_at_once():
    store, published, committed = InMemoryStore(), [], []
    store.commit = lambda *a, **k: committed.append((a, k))  # type: ignore[method-assign]

    class Publisher:
        def publish(self, records: list[OutRecord]) -> None:
            published.append(records)

    record = OutRecord("t", b"k", serde.dumps({"a": 1}))
    confirm = send(Publisher(), [record])
    assert published == [[record]]
    commit = plan_commit(store, [], [], {("t", 0): 1}, {})
    confirm()
    assert committed == []
    commit()
    assert committed == [(([], [], {("t", 0): 1}, {}), {"notify": True})]
