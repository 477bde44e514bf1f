"""The poison corpus: every kind of bad input a producer can send, with the reason it must get.

Built from the outside reliability review (issue 9) and the fuzzing of
:func:`livesignals.contract.decode`: any JSON shape in any field, sizes up to
what a broker accepts, invalid UTF-8, NaN and huge numbers, deep nesting,
duplicate keys, lookalike identifiers, payload fields of the wrong type. The
unit tests decode it, the integration tests send it through real Kafka into the
real flow (``test_poison_corpus.py``; with Debian's ``kcat`` as the producer in
``test_kcat_poison.py``) and ``bench.fuzz`` seeds its fuzzer with it.

Also :data:`GOOD`: valid events with odd but acceptable shapes (ids that are
normalised, duplicate keys whose last value is valid) that must be applied.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from livesignals import serde
from livesignals.errors import Reason
from tests.helpers import T0, event

BIG_MESSAGE_BYTES = 1_000_200
"""The review's message: over librdkafka's default ``message.max.bytes`` (1,000,000),
under Apache Kafka's default broker limit (1,048,588)."""


@dataclass(frozen=True)
class Poison:
    """One kind of bad input and the reason the engine must dead-letter it with."""

    kind: str
    value: bytes | None
    reason: Reason


def _env(**changes: Any) -> bytes:
    return serde.dumps({**event("chat", "c-poison", text="hello"), **changes})


def _ids(value: str) -> bytes:
    return _env(customer={"customer_id": value})


def _std(doc: dict[str, Any]) -> bytes:
    """Python's own JSON encoder: it writes integers of any size (orjson refuses beyond 64 bits)."""
    return json.dumps(doc).encode()


def _nested(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = [doc]
    return doc


def _big(size: int) -> bytes:
    head = serde.dumps(event("chat", "c-poison", text=""))[:-3]  # ... "text":"" -> open the string again
    body = head + b'"'
    return body + b"x" * (size - len(body) - 3) + b'"}}'


def _dup(last: str) -> bytes:
    raw = _env()
    return raw[:-1] + b',"type":' + last.encode() + b"}"


P = Poison
R = Reason
CORPUS: tuple[Poison, ...] = (
    # any JSON shape in any envelope field (the review's TypeError: unhashable type)
    P("type_object", _env(type={"a": 1}), R.UNKNOWN_TYPE),
    P("type_list", _env(type=["chat"]), R.UNKNOWN_TYPE),
    P("type_number", _env(type=7), R.UNKNOWN_TYPE),
    P("type_only_object", b'{"schema_version":1,"event_id":"e1","type":{"a":1}}', R.UNKNOWN_TYPE),
    P("channel_object", _env(channel={"a": [1]}), R.UNKNOWN_TYPE),
    P("channel_list", _env(channel=["chat"]), R.UNKNOWN_TYPE),
    P("schema_version_object", _env(schema_version={"v": 1}), R.UNSUPPORTED_VERSION),
    P("schema_version_2", _env(schema_version=2), R.UNSUPPORTED_VERSION),
    P("event_id_object", _env(event_id={"id": "e1"}), R.SCHEMA),
    P("event_id_list", _env(event_id=["e1"]), R.SCHEMA),
    P("customer_list", _env(customer=["c1"]), R.NO_CUSTOMER),
    P("customer_empty", _env(customer={}), R.NO_CUSTOMER),
    P("customer_id_object", _env(customer={"customer_id": {"id": "c1"}}), R.SCHEMA),
    P("payload_list", _env(payload=[1, 2]), R.SCHEMA),
    P("payload_string", _env(payload="text"), R.SCHEMA),
    P("event_time_object", _env(event_time={"ms": T0}), R.SCHEMA),
    P("unknown_envelope_field", _env(surprise=1), R.SCHEMA),
    # bytes that are not JSON, or not an object
    P("tombstone", None, R.NOT_JSON),
    P("empty", b"", R.NOT_JSON),
    P("binary", b"\x00\x01 binary garbage", R.NOT_JSON),
    P("invalid_utf8", b'{"schema_version":1,"event_id":"\xff\xfe"}', R.NOT_JSON),
    P("lone_surrogate", _env()[:-2] + b',"x":"\\ud800"}}', R.NOT_JSON),
    P("nan", _env()[:-2] + b',"score":NaN}}', R.NOT_JSON),
    P("infinity", _env()[:-2] + b',"score":Infinity}}', R.NOT_JSON),
    P("number_overflows_double", _env()[:-2] + b',"amount":1e400}}', R.NOT_JSON),
    P("nested_2000", b"[" * 2000 + b"]" * 2000, R.NOT_JSON),
    P("top_level_array", b"[1, 2]", R.NOT_AN_OBJECT),
    P("top_level_string", b'"just a string"', R.NOT_AN_OBJECT),
    P("top_level_number", b"42", R.NOT_AN_OBJECT),
    # sizes
    P("oversized_1mb", _big(BIG_MESSAGE_BYTES), R.OVERSIZED),
    P("oversized_70kb", _big(70_000), R.OVERSIZED),
    # numbers
    P("int_beyond_64_bits_time", _std({**event("chat", "c-poison"), "event_time": 2**70}), R.SCHEMA),
    P("int_beyond_64_bits_amount", _std(event("order", "c-poison", order_id="o1", amount=2**65)), R.SCHEMA),
    P("negative_time", _env(event_time=-1), R.SCHEMA),
    # nesting
    P("nested_payload_field", _env(payload={"text": "hi", "extra": _nested(30)}), R.TOO_DEEP),
    # duplicate keys: the last one wins, so a bad last value is rejected
    P("duplicate_key_last_bad", _dup('{"a":1}'), R.UNKNOWN_TYPE),
    # lookalike identifiers
    P("id_nul", _ids("c1\x00"), R.BAD_IDENTIFIER),
    P("id_zero_width_space", _ids("c\u200b1"), R.BAD_IDENTIFIER),
    P("id_zero_width_joiner", _ids("c\u200d1"), R.BAD_IDENTIFIER),
    P("id_rtl_mark", _ids("\u200fc1"), R.BAD_IDENTIFIER),
    P("id_rtl_override", _ids("c\u202e1"), R.BAD_IDENTIFIER),
    P("id_newline", _ids("c1\n"), R.BAD_IDENTIFIER),
    P("id_tab", _ids("c\t1"), R.BAD_IDENTIFIER),
    P("id_bom", _ids("\ufeffc1"), R.BAD_IDENTIFIER),
    P("id_no_break_space", _ids("c\u00a01"), R.BAD_IDENTIFIER),
    P("id_line_separator", _ids("c\u20281"), R.BAD_IDENTIFIER),
    P("id_blank", _ids("   "), R.BAD_IDENTIFIER),
    P("id_combining_grapheme_joiner_first", _ids("\u034fc1"), R.BAD_IDENTIFIER),
    P("id_khmer_inherent_vowel_last", _ids("c1\u17b4"), R.BAD_IDENTIFIER),
    P("id_mongolian_variation_selector", _ids("c\u180b1"), R.BAD_IDENTIFIER),
    P("id_replacement_character", _ids("c1\ufffd"), R.BAD_IDENTIFIER),
    P("id_object_replacement_character", _ids("\ufffcc1"), R.BAD_IDENTIFIER),
    P("id_starts_with_spacing_mark", _ids("\u0903c1"), R.BAD_IDENTIFIER),
    P("email_zero_width", _env(customer={"email": "a\u200b@b.c"}), R.BAD_IDENTIFIER),
    P("event_id_nul", _env(event_id="e\x001"), R.BAD_IDENTIFIER),
    P("rates_event_id_newline",
      serde.dumps(event("survey", "c-poison", kind="csat", score=2, rates_event_id="e1\n")), R.BAD_IDENTIFIER),
    P("order_id_rtl", serde.dumps(event("order", "c-poison", order_id="o\u202e1", amount=5)), R.BAD_IDENTIFIER),
    # payload fields of the wrong type (rejected at decode, not deep in the engine)
    P("timezone_list", serde.dumps(event("profile_update", "c-poison", fields={"timezone": ["Europe/Paris"]})), R.SCHEMA),
    P("timezone_object", serde.dumps(event("profile_update", "c-poison", fields={"timezone": {"tz": "UTC"}})), R.SCHEMA),
    P("profile_field_nested", serde.dumps(event("profile_update", "c-poison", fields={"address": {"city": "X"}})),
      R.SCHEMA),
    P("relationship_nested",
      serde.dumps(event("profile_update", "c-poison", relationships=[{"type": "household", "with": {"a": 1}}])),
      R.SCHEMA),
    P("survey_score_string", serde.dumps(event("survey", "c-poison", kind="nps", score="9")), R.SCHEMA),
    P("survey_score_off_scale", serde.dumps(event("survey", "c-poison", kind="csat", score=9)), R.SCHEMA),
    P("label_capitalised",
      serde.dumps(event("agent_feedback", "c-poison", target_id="e1", kind="sentiment", label="Negative")), R.SCHEMA),
    P("label_wrong_kind",
      serde.dumps(event("agent_feedback", "c-poison", target_id="e1", kind="sentiment", label="relevant")), R.SCHEMA),
    P("amount_string", serde.dumps(event("order", "c-poison", order_id="o1", amount="free")), R.SCHEMA),
    P("amount_negative", serde.dumps(event("order", "c-poison", order_id="o1", amount=-5)), R.SCHEMA),
    P("amount_on_profile_update", serde.dumps(event("profile_update", "c-poison", amount="x")), R.SCHEMA),
    P("items_nested_list", serde.dumps(event("order", "c-poison", order_id="o1", amount=1, items=[["p1"]])), R.SCHEMA),
    P("handle_time_list", serde.dumps(event("call", "c-poison", handle_time_s=[60])), R.SCHEMA),
    P("decision_id_object", serde.dumps(event("offer_response", "c-poison", response="accepted", decision_id={"a": 1})),
      R.SCHEMA),
    P("topic_object_on_survey", serde.dumps(event("survey", "c-poison", kind="csat", score=1, topic={"a": 1})),
      R.SCHEMA),
    P("text_list", serde.dumps(event("chat", "c-poison", text=["hi"])), R.SCHEMA),
    P("lang_object", serde.dumps(event("chat", "c-poison", text="hi", lang={"code": "en"})), R.SCHEMA),
    P("granted_string", serde.dumps(event("consent", "c-poison", purpose="marketing", granted="yes")), R.SCHEMA),
    # time
    P("future_time", _env(event_time=4_102_444_800_000), R.FUTURE_TIME),
    P("time_words", _env(event_time="last tuesday"), R.BAD_TIME),
    P("time_naive", _env(event_time="2026-01-01T00:00:00"), R.BAD_TIME),
    P("time_before_1970", _env(event_time="0001-01-01T00:00:00+05:00"), R.BAD_TIME),
    # event_time forms datetime.fromisoformat takes but RFC 3339 does not
    P("time_space_separator", _env(event_time="2026-01-01 00:00:00Z"), R.BAD_TIME),
    P("time_basic_format", _env(event_time="20260101T000000Z"), R.BAD_TIME),
    P("time_week_date", _env(event_time="2026-W01-1T00:00:00Z"), R.BAD_TIME),
    P("time_hour_only", _env(event_time="2026-01-01T00Z"), R.BAD_TIME),
    P("time_no_seconds", _env(event_time="2026-01-01T00:00+00:00"), R.BAD_TIME),
    P("time_comma_fraction", _env(event_time="2026-01-01T00:00:00,5Z"), R.BAD_TIME),
    P("time_offset_without_colon", _env(event_time="2026-01-01T00:00:00+0000"), R.BAD_TIME),
    P("time_offset_hours_only", _env(event_time="2026-01-01T00:00:00+00"), R.BAD_TIME),
    P("time_offset_24h", _env(event_time="2026-01-01T00:00:00+24:00"), R.BAD_TIME),
    # an hour ahead of the wall clock: beyond max_future_skew_s (5 min)
    P("future_time_one_hour", _env(event_time=int(time.time() * 1000) + 3_600_000), R.FUTURE_TIME),
    # NFC makes these ids longer than the schema's maxLength (U+FB2C: one character, three once composed)
    P("id_longer_after_nfc", _ids("\ufb2c" * 100), R.BAD_IDENTIFIER),
    P("event_id_longer_after_nfc", _env(event_id="\ufb2c" * 50), R.BAD_IDENTIFIER),
    P("order_id_longer_after_nfc", serde.dumps(event("order", "c-poison", order_id="\ufb2c" * 50, amount=5)),
      R.BAD_IDENTIFIER),
)  # fmt: skip
"""Every kind of poison, once."""

KINDS = frozenset(p.kind for p in CORPUS)


def _good(etype: str, customer: str, i: int, **payload: Any) -> dict[str, Any]:
    return event(etype, customer, T0 + i * 1000, event_id=f"good-{customer}-{i}", **payload)


def good_events(customer: str, n: int) -> list[bytes]:
    """``n`` valid events of one customer, of many types, some with odd but valid shapes."""
    shapes = [
        lambda i: _good("chat", customer, i, text="hello there", topic="billing"),
        lambda i: _good("order", customer, i, order_id=f"o{i}", amount=12.5, items=["p1", {"product_id": "p2"}]),
        lambda i: _good("survey", customer, i, kind="csat", score=4),
        lambda i: _good("profile_update", customer, i, fields={"timezone": "Europe/Paris", "vip": True}),
        lambda i: {
            **_good("web_event", customer, i, action="page_view"),
            "customer": {"customer_id": f"  {customer} "},
        },
        lambda i: _good("agent_feedback", customer, i, target_id="e-x", kind="sentiment", label="negative"),
        lambda i: _good("chat", customer, i, text="deep but fine", extra=_nested(10)),
    ]
    out = [serde.dumps(shapes[i % len(shapes)](i)) for i in range(n)]
    return out
