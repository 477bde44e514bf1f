"""The engine dataflow under Bytewax's testing source, on a real Redis.

Kafka is not what these tests are about, so outputs go to an in-memory
publisher; tests/integration covers the Kafka side.
"""

from __future__ import annotations

import pickle

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from flows.engine_sink import EngineSink, default_engine
from livesignals import documents, serde
from livesignals.errors import Reason
from operators.ports import OutRecord
from operators.profile360.profile import CustomerState
from state.connection import connect
from state.keys import Keys
from tests.helpers import T0, event, raw


class MemoryPublisher:
    def __init__(self):
        self.records: list[OutRecord] = []

    def publish(self, records):
        self.records.extend(records)


def run_flow(settings, messages, publisher, batch_size=50):
    flow = Dataflow("test")
    stream = op.input("in", flow, TestingSource(messages, batch_size=batch_size))
    op.output("engine", stream, EngineSink(settings, lambda s: default_engine(s, publisher)))
    run_main(flow)


def profile(settings, customer):
    return documents.read(connect(settings).get(Keys(settings.key_prefix).profile(f"customer_id:{customer}")))


def state_of(settings, customer):
    return CustomerState.from_bytes(f"customer_id:{customer}", profile(settings, customer))


def test_events_build_profiles_and_raise_flags(settings):
    docs = [
        event("order", "c1", T0, order_id="o1", amount=40.0),
        event("call", "c2", T0 + 1),
        event("chat", "c2", T0 + 2),
        event("email", "c2", T0 + 3),
        event("delivery", "c1", T0 + 4, order_id="o1", status="delayed"),
    ]
    pub = MemoryPublisher()
    run_flow(settings, raw(docs, settings.input_topics[0]), pub)
    c1 = state_of(settings, "c1")
    assert (c1.events, c1.value["spend"]) == (2, 40.0)
    assert state_of(settings, "c2").history["by_type"] == {"call": 1, "chat": 1, "email": 1}
    flags = [serde.loads(r.value)["flag"] for r in pub.records if r.topic == settings.flags_topic]
    assert sorted(flags) == ["context_carried", "delivery_problem", "repeat_contact"]
    stream = connect(settings).xrange(Keys(settings.key_prefix).flags_stream)
    assert len(stream) == 3


def test_bad_input_is_dead_lettered_while_good_events_around_it_apply(settings):
    messages = raw([event("chat", "c1", T0), b"{nope", event("chat", "c1", T0 + 1)], settings.input_topics[0])
    pub = MemoryPublisher()
    run_flow(settings, messages, pub)
    dead = [r for r in pub.records if r.topic == settings.dead_letter_topic]
    assert [r.value for r in dead] == [b"{nope"]
    assert dict(dead[0].headers or [])["ls.dlq.reason"] == Reason.NOT_JSON.value.encode()
    assert state_of(settings, "c1").events == 2


def test_replaying_the_same_messages_changes_nothing(settings):
    docs = [event("order", "c1", T0 + i, order_id=f"o{i}", amount=10.0) for i in range(20)]
    messages = raw(docs, settings.input_topics[0])
    run_flow(settings, messages, MemoryPublisher())
    once = profile(settings, "c1")
    run_flow(settings, messages, MemoryPublisher())
    assert profile(settings, "c1") == once
    assert state_of(settings, "c1").value["spend"] == 200.0


def test_batched_and_per_event_modes_give_the_same_state(settings):
    docs = [event("chat" if i % 3 else "order", f"c{i % 7}", T0 + i, order_id=f"o{i}", amount=5.0) for i in range(60)]
    per_event = settings.replace(key_prefix=settings.key_prefix + "pe", redis_mode="per_event")
    run_flow(settings, raw(docs, settings.input_topics[0]), MemoryPublisher())
    run_flow(per_event, raw(docs, settings.input_topics[0]), MemoryPublisher())
    for c in range(7):
        assert profile(settings, f"c{c}") == profile(per_event, f"c{c}")


def test_the_sink_is_picklable(settings):
    pickle.dumps(EngineSink(settings))


def test_an_event_the_engine_cannot_apply_is_dead_lettered_not_retried_forever(settings, monkeypatch):
    import operators.engine as engine_module

    real = engine_module.apply_event

    def flaky(state, event, *rest):
        if event.event_id == "poison":
            raise KeyError("unforeseen shape")
        real(state, event, *rest)

    monkeypatch.setattr(engine_module, "apply_event", flaky)
    docs = [event("chat", "c1", T0), event("chat", "c1", T0 + 1, event_id="poison"), event("chat", "c1", T0 + 2)]
    pub = MemoryPublisher()
    run_flow(settings, raw(docs, settings.input_topics[0]), pub)
    dead = [r for r in pub.records if r.topic == settings.dead_letter_topic]
    assert len(dead) == 1 and dict(dead[0].headers or [])["ls.dlq.reason"] == Reason.PROCESSING_ERROR.value.encode()
    detail = dict(dead[0].headers or [])["ls.dlq.detail"]
    assert isinstance(detail, bytes) and b"unforeseen shape" in detail
    assert state_of(settings, "c1").events == 2


def test_triggers_held_back_by_the_contact_policy_never_go_out_and_are_counted(settings):
    from prometheus_client import REGISTRY

    def suppressed():
        labels = {"action": "proactive_notification", "reason": "no_service_consent"}
        return REGISTRY.get_sample_value("livesignals_triggers_suppressed_total", labels) or 0.0

    before = suppressed()
    noon = T0 + 12 * 3_600_000  # outside the default quiet hours (21-8 UTC)
    docs = [
        event("consent", "c1", noon, purpose="service", granted=False),
        event("delivery", "c1", noon + 1, order_id="o1", status="failed"),
        event("delivery", "c2", noon + 2, order_id="o2", status="failed"),
    ]
    pub = MemoryPublisher()
    settings = settings.replace(policy_clock="stream")  # a scripted day in 2026: the policy's now is its time
    run_flow(settings, raw(docs, settings.input_topics[0]), pub)
    triggers = [serde.loads(r.value) for r in pub.records if r.topic == settings.triggers_topic]
    assert [(t["customer"], t["action"]) for t in triggers] == [("customer_id:c2", "proactive_notification")], triggers
    assert suppressed() == before + 1
