"""The erase event in the contract, and dead letters without personal data (``dead_letter_redact``)."""

from __future__ import annotations

import pytest

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import InvalidEvent, Origin, Reason
from livesignals.privacy import REDACTED, redact_dead_letter, subject_hash
from operators.engine import Engine
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

NOW = T0 + 1000


def erase(**payload) -> bytes:
    return serde.dumps(event("erase", "c9", T0, channel="backoffice", event_id="x1", **payload))


def test_an_erase_event_decodes_with_an_optional_request_id():
    e = decode(erase(request_id=" req-7 "), Origin("in", 0, 0), now_ms=NOW)
    assert (e.type, e.customer_key, e.payload) == ("erase", "customer_id:c9", {"request_id": "req-7"})
    assert decode(erase(), Origin("in", 0, 0), now_ms=NOW).payload == {}


@pytest.mark.parametrize("payload", [{"text": "Zelda Quill"}, {"request_id": "a\nb"}, {"request_id": 3}])
def test_an_erase_event_carries_nothing_else(payload):
    """Erase requests stay free of personal data beyond the identifiers: any other field is rejected."""
    with pytest.raises(InvalidEvent) as exc:
        decode(erase(**payload), Origin("in", 0, 0), now_ms=NOW)
    assert exc.value.reason in (Reason.SCHEMA, Reason.BAD_IDENTIFIER)


PII = ("zelda@example.org", "Zelda Quill", "+44 7700 900123", "12 Acacia Avenue")


def bad_event() -> bytes:
    doc = event("chat", "c9", T0, text=f"I am {PII[1]}", topic="billing")
    doc["customer"] = {"customer_id": "c9", "email": PII[0], "phone": PII[2]}
    doc["payload"]["fields"] = {"address": PII[3], "name": PII[1]}
    doc["event_time"] = f"when {PII[1]} called"  # not a time: bad_time, and a name where nobody looks
    return serde.dumps(doc)


def test_redacted_dead_letters_keep_the_shape_and_drop_the_personal_data():
    value, key = redact_dead_letter(bad_event(), b"email:" + PII[0].encode(), "s")
    doc = serde.loads(value)
    assert not any(p.encode() in value + (key or b"") for p in PII)
    assert doc["payload"]["topic"] == "billing" and doc["type"] == "chat" and doc["payload"]["text"] == REDACTED
    assert doc["customer"]["email"] == subject_hash(f"email:{PII[0]}", "s") and doc["event_time"] == REDACTED
    assert key == subject_hash(f"email:{PII[0]}", "s").encode()


@pytest.mark.parametrize("redact", [False, True])
def test_the_engine_redacts_dead_letters_when_asked(settings, redact):
    s = settings.replace(dead_letter_redact=redact, models_enabled=False)
    published = []

    class Capture:
        def publish(self, records):
            published.extend(records)

    Engine(s, InMemoryStore(), Capture(), clock=lambda: NOW / 1000).process(raw([bad_event()]))
    (dead,) = [r for r in published if r.topic == s.dead_letter_topic]
    blob = dead.value + b"".join(v or b"" for _, v in dead.headers or []) + (dead.key or b"")
    assert any(p.encode() in blob for p in PII) is not redact
    headers = dict(dead.headers or [])
    assert headers["ls.dlq.reason"] == b"bad_time" and ("ls.dlq.redacted" in headers) is redact


def test_an_event_that_cannot_be_applied_is_logged_without_its_body(settings, caplog):
    """The exception may quote the payload: the log line names the position and the exception type only."""

    def scorer(text, lang):
        raise ValueError(f"cannot score {text!r}")

    s = settings.replace(models_enabled=False)
    doc = event("chat", "c9", T0, text=f"I am {PII[1]}, mail {PII[0]}")
    published = []

    class Capture:
        def publish(self, records):
            published.extend(records)

    Engine(s, InMemoryStore(), Capture(), clock=lambda: NOW / 1000, sentiment=scorer).process(raw([doc]))
    assert [r.topic for r in published] == [s.dead_letter_topic]
    assert "could not be applied: ValueError" in caplog.text and "in:0:0" in caplog.text
    assert not any(p in caplog.text for p in PII) and doc["event_id"] not in caplog.text


def test_the_ledger_secret_is_never_shown(settings):
    s = settings.replace(erasure_ledger_secret="hunter2-ledger")
    assert "hunter2-ledger" not in repr(s) and "hunter2-ledger" not in str(s.redacted())
