"""Issue 9's poison cases through the real flow (Bytewax testing source, real Redis).

* a ``profile_update`` whose ``fields.timezone`` is a list used to raise in
  the contact policy *after* the event was applied: every later inbound
  contact of that customer was both dead-lettered and counted;
* an agent label ``"Negative"`` used to raise after the text was marked
  labelled, so the agent's corrected retry was counted a ``duplicate``.
"""

from __future__ import annotations

from livesignals.errors import Reason
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests.faults import learned
from tests.flows.test_live_flow import MemoryPublisher, run_flow, state_of
from tests.helpers import T0, event, raw

NOON = T0 + 12 * 3_600_000


def dead(settings, pub) -> list[dict]:
    return [dict(r.headers or []) for r in pub.records if r.topic == settings.dead_letter_topic]


def test_a_time_zone_that_is_a_list_does_not_poison_the_customer(settings):
    settings = settings.replace(quiet_hours="21-8")
    docs = [
        event("profile_update", "c1", NOON, fields={"timezone": ["Europe/Athens"]}),
        *(event("call", "c1", NOON + i * 60_000, topic="billing") for i in range(1, 6)),
        event("delivery", "c1", NOON + 10 * 60_000, order_id="o1", status="failed"),
    ]
    pub = MemoryPublisher()
    run_flow(settings, raw(docs, settings.input_topics[0]), pub)
    processing = [d for d in dead(settings, pub) if d["ls.dlq.reason"] == Reason.PROCESSING_ERROR.value.encode()]
    assert processing == []
    state = state_of(settings, "c1")
    applied = state.history["by_type"]
    assert applied.get("call") == 5 and applied.get("delivery") == 1
    assert state.events == len(docs) - len(dead(settings, pub))  # the update: applied, or refused at decode


def test_an_agent_label_with_a_bad_class_is_refused_whole_and_the_corrected_retry_is_learned(settings):
    docs = [
        event("chat", "c1", NOON, event_id="x1", text="the box was crushed"),
        event("agent_feedback", "c1", NOON + 1, event_id="f1", target_id="x1", kind="sentiment", label="Negative"),
        event("agent_feedback", "c1", NOON + 2, event_id="f1", target_id="x1", kind="sentiment", label="negative"),
    ]
    pub = MemoryPublisher()
    run_flow(settings, raw(docs, settings.input_topics[0]), pub)
    assert len(dead(settings, pub)) == 1
    state = state_of(settings, "c1")
    assert state.predictions["recent_texts"][0][3] == ["agent"] and state.events == 2
    log = ProfileStore(connect(settings), Keys(settings.key_prefix)).models_log
    assert learned(log).model("sentiment").labels == 1  # the retry's label, learned once
