"""Property tests: decode is total, and what it accepts has the types the engine relies on.

Hypothesis generates any bytes, and valid events with any JSON in any field
(``tests/fuzzing.py``); ``bench.fuzz`` runs the same properties millions of times.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from livesignals.contract import decode
from livesignals.errors import InvalidEvent, Origin
from livesignals.identifiers import normalise_identifier
from tests.fuzzing import check_event, check_rejection, encode, event_docs, messages
from tests.helpers import T0

O = Origin("in", 0, 0)


def decoded(value: bytes | None) -> Any:
    """The Event, or the InvalidEvent; any other exception fails the test."""
    try:
        return decode(value, O, now_ms=T0 + 10**9)
    except InvalidEvent as exc:
        return exc


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_rejected_with_a_reason(value):
    out = decoded(value)
    check_rejection(out) if isinstance(out, InvalidEvent) else check_event(out)


@settings(max_examples=200, deadline=None)
@given(messages())
def test_any_json_in_any_field_decodes_to_a_well_typed_event_or_a_reason(value):
    out = decoded(value)
    check_rejection(out) if isinstance(out, InvalidEvent) else check_event(out)


@settings(max_examples=100, deadline=None)
@given(event_docs())
def test_decode_is_deterministic(doc):
    a, b = decoded(encode(doc)), decoded(encode(doc))
    assert type(a) is type(b)
    if isinstance(a, InvalidEvent):
        assert (a.reason, a.detail) == (b.reason, b.detail)
    else:
        assert (a.customer_key, a.event_id, a.payload) == (b.customer_key, b.event_id, b.payload)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_an_identifier_is_normalised_once_or_rejected(text):
    try:
        once = normalise_identifier(text)
    except ValueError:
        return
    assert once and once.isprintable() and once == once.strip(" ")
    assert normalise_identifier(once) == once, "normalising is idempotent"
