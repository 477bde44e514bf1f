"""The poison corpus decodes to the reason each kind must get; odd but valid shapes decode."""

from __future__ import annotations

import pytest

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import InvalidEvent, Origin, Reason
from tests.helpers import T0, event
from tests.poison import CORPUS, KINDS, good_events

O = Origin("in", 0, 0)


def test_the_corpus_has_at_least_40_kinds_and_every_reason_a_producer_can_cause():
    assert len(KINDS) == len(CORPUS) >= 40
    # unverified_reroute is the router's, not the decoder's: tests/unit/test_forged_origin.py
    producer_reasons = set(Reason) - {Reason.PROCESSING_ERROR, Reason.UNPUBLISHABLE, Reason.UNVERIFIED_REROUTE}
    assert {p.reason for p in CORPUS} == producer_reasons


@pytest.mark.parametrize("poison", CORPUS, ids=lambda p: p.kind)
def test_each_poison_is_rejected_with_its_reason(poison):
    with pytest.raises(InvalidEvent) as info:
        decode(poison.value, O, now_ms=T0, max_bytes=65_536)
    assert info.value.reason == poison.reason, info.value.detail
    assert 0 < len(info.value.detail) <= 1000


def test_odd_but_valid_shapes_decode():
    events = [decode(raw, O, now_ms=T0 + 10**9) for raw in good_events("c1", 14)]
    assert {e.customer_key for e in events} == {"customer_id:c1"}, "surrounding spaces are stripped"


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("cafe\u0301", "customer_id:caf\u00e9"),  # NFD -> NFC
        ("caf\u00e9", "customer_id:caf\u00e9"),
        (" c 1 ", "customer_id:c 1"),  # inner spaces are kept, surrounding ones stripped
        ("\u05d0\u05d1", "customer_id:\u05d0\u05d1"),  # right-to-left letters are letters, not marks
    ],
)
def test_lookalike_spellings_of_an_id_key_one_customer(spelling, key):
    doc = {**event(), "customer": {"customer_id": spelling}}
    assert decode(serde.dumps(doc), O, now_ms=T0).customer_key == key


def test_referenced_ids_are_normalised_like_event_ids():
    doc = event("survey", kind="nps", score=3, rates_event_id=" e\u0301 ", event_id="e\u0301")
    e = decode(serde.dumps(doc), O, now_ms=T0)
    assert e.payload["rates_event_id"] == e.event_id == "\u00e9"


def test_duplicate_keys_take_the_last_value():
    raw = serde.dumps(event(text="hi"))[:-1] + b',"channel":"sms"}'
    assert decode(raw, O, now_ms=T0).channel == "sms"


def test_integer_valued_float_times_and_the_year_9999_bound():
    assert decode(serde.dumps({**event(), "event_time": float(T0)}), O, now_ms=T0).event_time_ms == T0
    with pytest.raises(InvalidEvent) as info:
        decode(serde.dumps({**event(), "event_time": 253402300800000}), O, now_ms=T0)
    assert info.value.reason == Reason.SCHEMA


def test_a_valid_event_builds_no_exception_object(monkeypatch):
    import fastjsonschema

    built = []
    original = fastjsonschema.JsonSchemaValueException.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(fastjsonschema.JsonSchemaValueException, "__init__", counting)
    for raw in good_events("c1", 14):
        decode(raw, O, now_ms=T0 + 10**9)
    decode(serde.dumps({**event(), "event_time": "2026-01-01T00:00:00+00:00"}), O, now_ms=T0)
    assert built == []


def test_the_readme_lists_every_dead_letter_reason_and_header():
    from pathlib import Path

    from livesignals.errors import DeadLetter

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Bad input and dead letters", 1)[1].split("\n## ", 1)[0]
    for reason in Reason:
        assert f"| `{reason.value}` |" in section, reason
    for name, _ in DeadLetter(b"x", None, Reason.SCHEMA, "d", O).headers():
        assert f"`{name}`" in section, name
