"""An event changes all or nothing: a dead-lettered event leaves no trace, with or without a restart.

Faults are injected *after* each stage did its work (see :mod:`tests.faults`);
profiles, timelines, partition aggregates and outputs must end byte-identical
to a run where the bad event never was; the models too (their checkpoints
byte-identical, or after a restart, where pickles differ anyway, the same
figures and answers: :class:`tests.faults.Models`).
"""

from __future__ import annotations

from typing import Any

import pytest

from livesignals.errors import Reason
from operators.profile360.profile import fingerprint
from tests import faults
from tests.faults import BAD_AT, BAD_EVENTS, BAD_ID, STAGES, appended, dead_letters, run, stream


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The run without the bad event (an undecodable message in its place), no restart."""
    return faults.persisted(*run(stream(None)))


@pytest.mark.parametrize("restart", [False, True], ids=["no_restart", "restart"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_fault_after_partial_changes_leaves_no_trace(stage, restart, reference):
    kind, _ = STAGES[stage]
    messages = stream(BAD_EVENTS[kind])
    with faults.fault(stage):
        store, out = run(messages, restart_after=faults.bad_batch(messages) if restart else None)
    dead = dead_letters(out)
    assert len(dead) == 1 and dead[0]["ls.dlq.reason"] == Reason.PROCESSING_ERROR.value.encode(), dead
    got = faults.persisted(store, out)
    for part in reference:
        assert got[part] == reference[part], f"{part} differ after a fault {stage}"


def test_the_reference_run_reaches_every_stage_for_the_victim(reference):
    """The stream is worth its salt: the victim has flags, a trigger, learned labels, a timeline."""
    store, out = run(stream(BAD_EVENTS["delivery"]))
    victim = store.states["customer_id:victim"]
    assert victim.predictions["recent_texts"] and victim.history.get("recent_flags")
    assert any(r.topic == faults.SETTINGS.triggers_topic and r.key == b"customer_id:victim" for r in out.records)
    assert victim.predictions.get("fraud") and victim.predictions.get("churn")


def test_an_agent_label_with_a_bad_class_does_not_make_the_corrected_retry_a_duplicate():
    """Issue 9: "Negative" raised after the text was marked labelled; the retry was counted ``duplicate``."""
    bad = BAD_EVENTS["agent_label"]
    retry = {**bad, "event_id": "retry", "payload": {**bad["payload"], "label": "negative"}, "event_time": BAD_AT + 1}
    messages = stream(bad)
    store, out = run(appended(messages, [retry]))
    chat = next(t for t in store.states["customer_id:victim"].predictions["recent_texts"] if t[0] == "v-chat")
    assert chat[3] == ["agent"] and len(dead_letters(out)) == 1


def test_a_retry_under_the_same_event_id_applies_once_the_first_attempt_was_dead_lettered():
    """A dead-lettered event was not applied, so its id is not remembered for deduplication."""
    bad = BAD_EVENTS["agent_label"]
    retry = {**bad, "payload": {**bad["payload"], "label": "negative"}, "event_time": BAD_AT + 1}
    store, _ = run(appended(stream(bad), [retry]))
    state = store.states["customer_id:victim"]
    assert fingerprint(BAD_ID) in state.recent_ids
    chat = next(t for t in state.predictions["recent_texts"] if t[0] == "v-chat")
    assert chat[3] == ["agent"]
