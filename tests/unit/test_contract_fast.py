"""The msgspec fast path never accepts what the published schema rejects, and changes no outcome.

The corpus: the poison corpus and its odd-but-valid events, the simulator's
reference mix, hostile mutations (``tests/fuzzing.py``) and systematic ones
built here from a valid event of every type -- every field given every JSON
type, removed, or joined by an unknown one; strings at, under and over every
length bound (ASCII, accented, astral); numbers at and beyond every bound
(huge ints, 2**53 + 1, -0.0, floats for ints); NaN and Infinity; duplicate keys;
nesting at the depth limit; 1 MB bodies. For each message:

* safety: if :meth:`FastPath.accepts` the parsed document, the schema validators do too;
* equivalence: :func:`decode` gives the same :class:`Event` (or the same reason and detail)
  as the schema path alone (the fast path switched off).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings

from app.simulator import Simulator, SimulatorConfig
from livesignals import contract, serde
from livesignals.contract import FAST_PATH, decode, load_schema
from livesignals.contract_fast import FastPath
from livesignals.errors import InvalidEvent, Origin
from tests.fuzzing import PAYLOAD_FIELDS, TEMPLATES, Mutator, encode, event_docs
from tests.helpers import T0, event
from tests.poison import CORPUS, good_events

O = Origin("in", 0, 0)
NOW = T0 + 10**9
ENVELOPE = ("schema_version", "event_id", "type", "channel", "customer", "event_time", "payload")
ANY_TYPE: tuple[Any, ...] = (None, True, False, 0, 1, -1, 1.5, "", "x", [], ["x"], {}, {"a": 1})
LENGTHS = (0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1024, 1025, 2048, 2049,
           20000, 20001)  # fmt: skip
CHARS = ("a", "\u00e9", "\U0001f600", "\ufb2c")
NUMBERS: tuple[Any, ...] = (
    -1, 0, -0.0, 1, 5, 5.5, 7, 10, 10.000001, 86400, 86400.5, 10**9, 10**9 + 1, 1e9 + 0.5, 10**12, -(10**12),
    -(10**12) - 1, 1e12 + 1, 2**53 + 1, 2**63, 2**64 - 1, 1e308, -1e308, 5e-324, 253402300799999, 253402300800000,
    float(T0),
)  # fmt: skip


def schema_path(value: bytes | None, **kw: Any) -> Any:
    """The outcome of today's path alone: orjson, fastjsonschema and the checks (the fast path off)."""
    with mock.patch.dict(contract._FAST_STRUCTS, clear=True):  # no type takes the fast path
        return outcome(value, **kw)


def outcome(value: bytes | None, **kw: Any) -> Any:
    """The Event, or the rejection's (reason, detail)."""
    try:
        return decode(value, O, now_ms=NOW, **kw)
    except InvalidEvent as exc:
        return (exc.reason, exc.detail)


def schema_accepts(doc: Any) -> bool:
    """The schema validators' verdict alone."""
    try:
        contract._validate(doc)
    except InvalidEvent:
        return False
    return True


def check(value: bytes | None, **kw: Any) -> bool:
    """Both properties for one message; True if the fast path took it."""
    try:
        doc = serde.loads(value or b"")
    except serde.JSONDecodeError:
        doc = None
    fast = isinstance(doc, dict) and FAST_PATH.accepts(doc)
    if fast:
        assert schema_accepts(copy.deepcopy(doc)), f"the fast path accepted what the schema rejects: {value!r:.300}"
    assert outcome(value, **kw) == schema_path(value, **kw), f"{value!r:.300}"
    return fast


def _set(doc: dict[str, Any], where: str, name: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    (out if where == "envelope" else out["payload"])[name] = value
    return out


def _fields_to_break(i: int, template: dict[str, Any], full: bool) -> list[str]:
    """Every payload field the tests know (``full``), or the template's own and a rotating seven of the others."""
    every = [*PAYLOAD_FIELDS, "purpose", "request_id"]
    if full:
        return every
    others = [f for f in every if f not in template["payload"]]
    return [*template["payload"], *(others[(i * 7 + k) % len(others)] for k in range(7))]


def mutations(full: bool = False) -> Iterator[bytes]:
    """Systematic mutations of a valid event of every type (``full``: every field of every template,
    ~115k messages, run once for the closing note; the test breaks a rotating subset: ~28k)."""
    for i, template in enumerate(TEMPLATES):
        for name in ENVELOPE:
            rest = {k: v for k, v in template.items() if k != name}
            yield encode(rest)
            for value in ANY_TYPE:
                yield encode(_set(template, "envelope", name, value))
        yield encode({**template, "surprise": 1})
        yield encode({**template, "customer": {"customer_id": "c1", "account": "a1"}})
        yield encode({**template, "customer": {k: "x" * 257 for k in ("email", "phone")}})
        for value in (*NUMBERS, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00" + "0" * 60 + "Z", 1000.0, 2**70):
            yield encode(_set(template, "envelope", "event_time", value))
        for name in template["payload"]:
            yield encode({**template, "payload": {k: v for k, v in template["payload"].items() if k != name}})
        for name in _fields_to_break(i, template, full):
            for value in ANY_TYPE:
                yield encode(_set(template, "payload", name, value))
            for n in LENGTHS:
                if n > 2049 and name not in ("text", "comment"):
                    continue  # 20,000 characters: the bound of text and comment only
                for ch in CHARS if n <= 257 else CHARS[::2]:
                    yield encode(_set(template, "payload", name, ch * n))
            for number in NUMBERS:
                yield encode(_set(template, "payload", name, number))
        for n in (0, 1, 499, 500, 501):
            yield encode(_set(template, "payload", "items", ["p"] * n))
        yield encode(_set(template, "payload", "items", ["p", {"product_id": "p2"}]))
        yield encode(_set(template, "payload", "items", ["p" * 129]))
        for key in ("event_id", "customer"):
            yield encode(
                _set(template, "envelope", key, "e" * 129 if key == "event_id" else {"customer_id": "c" * 257})
            )
        raw = serde.dumps(template)
        yield raw[:-1] + b',"type":"chat"}'  # duplicate keys: the last one wins
        yield raw[:-1] + b',"schema_version":2}'
        yield raw[:-1] + b',"payload":{"text":"' + b"x" * 20001 + b'"}}'
        yield raw[:-2] + b',"score":NaN}}'
        yield raw[:-2] + b',"score":Infinity}}'
        yield raw[:-2] + b',"amount":1e400}}'
        yield raw[:-2] + b',"amount":' + str(10**30).encode() + b"}}"
        for depth in (14, 15, 16):
            nested: Any = 1
            for _ in range(depth):
                nested = [nested]
            yield encode(_set(template, "payload", "extra", nested))


def simulator_stream(n: int) -> list[bytes]:
    """The reference mix of the simulator (as ``bench.apply`` and ``bench.reference`` feed it)."""
    sim = Simulator(SimulatorConfig(customers=300, seed=7, start_ms=T0, step_ms=20))
    return [serde.dumps(doc) for doc, _ in sim.stream(n)]


def test_the_fast_path_accepts_only_what_the_schema_accepts_and_changes_no_outcome():
    corpus = [p.value for p in CORPUS] + good_events("c1", 14) + list(mutations())
    mutator = Mutator(seed=16)
    corpus += [mutator.message() for _ in range(3000)]
    taken = sum(check(value) for value in corpus)
    assert len(corpus) > 20_000
    assert 2000 < taken < len(corpus), "the corpus exercises both paths"


def test_the_reference_mix_takes_the_fast_path_and_decodes_as_before():
    stream = simulator_stream(3000)
    taken = sum(check(value) for value in stream)
    assert taken / len(stream) >= 0.99, f"coverage {taken / len(stream):.2%}"


@pytest.mark.parametrize("size", [1_000_000, 1_000_200])
def test_one_megabyte_bodies(size):
    for field in ("text", "extra"):
        doc = event("chat", text="hi")
        doc["payload"][field] = "x" * size
        check(serde.dumps(doc), max_bytes=2_000_000)
        check(serde.dumps(doc))  # oversized at the default limit


@settings(max_examples=300, deadline=None)
@given(event_docs())
def test_any_json_in_any_field(doc):
    check(encode(doc))


def _with(schema: dict[str, Any], path: list[str], **keywords: Any) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    node = out
    for part in path:
        node = node[part]
    node.update(keywords)
    return out


def test_a_keyword_the_translator_does_not_know_narrows_the_fast_path_never_widens_it():
    text = ["definitions", "payloads", "contact", "properties", "text"]
    changed = FastPath(_with(load_schema(), text, pattern="^[a-z]*$"))
    chat = event("chat", text="Hello!")
    assert FAST_PATH.accepts(chat)
    assert not changed.accepts(chat), "a pattern it cannot check sends the field to the schema path"
    assert changed.accepts(event("chat")), "events without the field stay on the fast path"
    survey = ["definitions", "payloads", "survey"]
    assert "survey" in FastPath(_with(load_schema(), survey, minProperties=3)).schema_only_types


def test_fields_relationships_and_object_items_go_to_the_schema_path():
    assert not FAST_PATH.accepts(event("profile_update", fields={"timezone": "UTC"}))
    assert not FAST_PATH.accepts(event("chat", text="hi", relationships=[]))
    assert not FAST_PATH.accepts(event("order", order_id="o1", amount=1, items=[{"product_id": "p1"}]))
    assert FAST_PATH.accepts(event("order", order_id="o1", amount=1, items=["p1"]))
    assert FAST_PATH.accepts(event("profile_update"))
    assert FAST_PATH.schema_only_types == frozenset()


def test_msgspec_type_information_is_built_at_import_not_at_a_structs_first_use_in_a_worker_thread():
    """msgspec builds a struct's type information lazily, at its first use; two Bytewax workers of one process
    using a struct for the first time at once crashed it with a segmentation fault (session 17, Apache Kafka
    leg: a two-worker replay). Built at import, nothing is built while events are decoded."""
    import subprocess
    import sys

    code = """
import msgspec._utils as u
from livesignals import contract
from bench.apply import messages
built = []
original = u._eval_type  # what msgspec's lazy build of a struct's type information calls, per field
u._eval_type = lambda *a, **k: (built.append(a[0]), original(*a, **k))[1]
for m in messages(3000, 300):
    try:
        contract.decode(m.value, m.origin, now_ms=m.origin.timestamp_ms + 60_000)
    except Exception:
        pass
print(len(built))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "0"
