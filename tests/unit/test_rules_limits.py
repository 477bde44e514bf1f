"""The rules language has resource limits: no rules file and no event can exhaust memory or the stack.

Each attack of issue 9 either is rejected at load as ``rules.toml:LINE: ...``
or evaluates within a bound (checked by size and allocated memory, not time);
random expressions and random rule files never raise anything but the
documented errors; a rejected reload keeps the rules in force and says so.
"""

from __future__ import annotations

import math
import string
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine, _rules_path
from operators.profile360.profile import CustomerState
from operators.rules.expressions import MAX_DEPTH, MAX_NODES, MAX_TEXT, ConditionError, compile_condition
from operators.rules.rulebook import ROOTS, Rulebook, RulebookError
from operators.rules.rules_file import MAX_DOTS_PER_LINE, MAX_FILE_BYTES
from operators.rules.templates import (
    MAX_EVIDENCE_CHARS,
    MAX_EVIDENCE_ITEMS,
    MAX_FORMAT_WIDTH,
    MAX_REASON,
    Template,
    evidence_items,
)
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

BIG_TEXT = "x" * 1_000_000
WHERE = r"^rules\.toml:\d+: "


def peak_bytes(function, *args):
    """What ``function(*args)`` allocates at its peak, and its result."""
    tracemalloc.start()
    try:
        result = function(*args)
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def metric(name, labels=None):
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


# --- expressions -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "event.payload.text * 100000",
        "100000 * event.payload.text",
        "event.payload.text + event.payload.text",
        "event.payload.items * 100000",
        "(event.payload.text or 0) * 100000",
        "-event.payload.text",
        "event.payload.text / 2",
    ],
)
def test_arithmetic_on_a_payload_string_or_list_is_null_and_allocates_nothing(text):
    ctx = {"event": {"payload": {"text": BIG_TEXT, "items": [1] * 1000}}}
    peak, result = peak_bytes(compile_condition(text), ctx)
    assert result is None
    assert peak < 10_000, f"{peak} bytes allocated"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"ab" * 100000', "numbers only, not on a string"),
        ('100000 * "ab"', "numbers only, not on a string"),
        ('"a" + "b"', "numbers only, not on a string"),
        ("[1, 2] * 100000", "numbers only, not on a list"),
        ('("a" or "b") * 3', "numbers only, not on a string"),
        ('1 + ("a" + "b")', "numbers only, not on a string"),
        ("2 ** 1000000", "BinOp is not allowed"),
        ("1e999 > 0", "finite"),
        ("-1e999 > 0", "finite"),
        ("w1h.errors in [1e999]", "finite"),
        ("value.spend > 99999999999999999999999", "beyond"),
        ("value.spend > " + "9" * 5000, "longer than"),
    ],
)
def test_what_could_grow_without_bound_is_rejected_at_load(text, message):
    with pytest.raises(ConditionError, match=message):
        compile_condition(text)


def test_integer_results_stay_within_64_bits():
    square = " * ".join(["value.n"] * 20)
    assert compile_condition(square)({"value": {"n": 2**40}}) is None
    assert compile_condition("value.n * 3 + 1")({"value": {"n": 5}}) == 16
    assert compile_condition(f"({square}) * 0.5 == null")({"value": {"n": 2**62}}) is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-" * (MAX_TEXT - 1) + "x", "nested deeper"),
        ("not " * 240 + "x", "nested deeper"),
        ("(" * 250 + "x" + ")" * 250, "not a valid expression"),
        ("x" + ".y" * 400, "nested deeper"),
        ("+".join(["x"] * 200), "nested deeper"),
        ("<".join(["1"] * (MAX_NODES + 1)), "larger than"),
        ("x in [" + ", ".join(["1"] * (MAX_NODES + 1)) + "]", "larger than"),
        ("a" * (MAX_TEXT + 1), "longer than"),
        ("a\x00b", "not a valid expression"),
    ],
)
def test_deep_or_large_expressions_are_a_condition_error_never_a_recursion_error(text, message):
    with pytest.raises(ConditionError, match=message):
        compile_condition(text)


def test_expressions_within_the_limits_still_compile():
    deep = "(" * (MAX_DEPTH // 3) + "w1h.errors" + ")" * (MAX_DEPTH // 3) + " >= 2"
    wide = "w1h.errors in [" + ", ".join(str(i) for i in range(MAX_NODES // 2)) + "]"
    assert compile_condition(deep, ROOTS)({"w1h": {"errors": 2}}) is True
    assert compile_condition(wide, ROOTS)({"w1h": {"errors": 7}}) is True


def nested(depth):
    """A list nested ``depth`` deep: comparing two of them raises RecursionError inside Python."""
    deep: list = []
    for _ in range(depth):
        deep = [deep]
    return deep


def test_a_condition_that_raises_at_run_time_is_null_and_reported():
    seen: list[Exception] = []
    check = compile_condition("value.a == value.b", on_error=seen.append)
    assert check({"value": {"a": nested(100_000), "b": nested(100_000)}}) is None
    assert [type(e) for e in seen] == [RecursionError]


# --- reasons and evidence --------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    ["{event.payload.text:>200000000}", "{event.payload.text:.100000}", "{value.spend:.1000f}", "{value.spend:65}"],
)
def test_format_widths_and_precisions_are_capped_at_load(reason):
    with pytest.raises(ConditionError, match="at most 64"):
        Template(reason)


def test_formats_up_to_the_cap_are_accepted():
    assert Template("{v:>64.64}").render({"v": "ab"}) == " " * 62 + "ab"
    assert Template("{v:,.2f}").render({"v": 1234.5}) == "1,234.50"


def test_a_reason_is_at_most_500_characters_however_large_the_values():
    ctx = {"event": {"payload": {"text": BIG_TEXT, "nested": {"a": [list(range(1000))] * 1000}}}}
    for text in ["{event.payload.text}", "{event.payload.text:>64}", "{event.payload.nested}", "{event.payload.nested:d}",
                 "{event.payload.text}" * 20]:  # fmt: skip
        peak, reason = peak_bytes(Template(text).render, ctx)
        assert len(reason) <= MAX_REASON and (reason.endswith("…") or "..." in reason), text
        assert peak < 100_000, f"{text}: {peak} bytes allocated"
    assert len(Template("{v:,.64f}").render({"v": 1e308})) <= MAX_REASON
    with pytest.raises(ConditionError, match="at most 500"):
        Template("x" * (MAX_REASON + 1))


def test_evidence_is_a_bounded_number_of_bounded_strings():
    deep: list = ["e-1"]
    for _ in range(5_000):  # deeper than Python's recursion limit
        deep = [deep]
    for values in ([BIG_TEXT], [["e"] * 10_000], [deep], [[["f", 10**400]]], [{"event_id": BIG_TEXT}]):
        peak, items = peak_bytes(evidence_items, values)
        assert 1 <= len(items) <= MAX_EVIDENCE_ITEMS
        assert all(len(item) <= MAX_EVIDENCE_CHARS for item in items)
        assert peak < 100_000


# --- rules files -----------------------------------------------------------

GOOD = """[[flag]]
name = "stuck"
raise_when = "w1h.errors >= 2"
reason = "stuck on {w1h.errors} errors"
"""


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[[flag]]\nname = 'x'\nraise_when = 'true'\nttl_hours = inf\n", ":4: flag 'x': ttl_hours"),
        ("[[flag]]\nname = 'x'\nraise_when = 'true'\nttl_hours = nan\n", ":4: flag 'x': ttl_hours"),
        ("[[flag]]\nname = 'x'\nraise_when = 'true'\nttl_hours = 1e300\n", ":4: flag 'x': ttl_hours"),
        ("[[flag]]\nname = 'x'\nraise_when = 'true'\nttl_hours = true\n", ":4: flag 'x': ttl_hours"),
        ("[[action]]\nname = 'x'\neligible_when = 'true'\nweight = nan\n", ":4: action 'x': weight"),
        ("[[action]]\nname = 'x'\neligible_when = 'true'\ncooldown_hours = -inf\n", ":4: action 'x': cooldown"),
        ("[[flag]]\nname = 'x'\n\nraise_when = 'w1h.errors > 1e999'\n", ":4: flag 'x': raise_when: numbers must be"),
        (
            "[[flag]]\nname = 'x'\nraise_when = 'event.payload.text * 3 > 1'\nreason = '{event.payload.text:>200000000}'\n",
            ":4: flag 'x': reason: format width",
        ),
        (
            "[[flag]]\nname = 'x'\nraise_when = '" + "not " * 100 + "true'\n",
            ":3: flag 'x': raise_when: expression nested deeper",
        ),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", ":1: arrays or tables nested too deeply"),
        ("\n\nflag = [" + "{a=" * 3000 + "1" + "}" * 3000 + "]\n", ":3: arrays or tables nested too deeply"),
        ("[[flag]]\nname = 'x'\nttl_hours = " + "1" * 5000 + "\n", ":3: a number too long"),
        ("[[flag]]\nname = 'x'\nraise_when = 'true'\nraise_when = 'false'\n", ":4: Cannot overwrite"),
        ("[[flag]]\nname = 'x'\nseverity = ['warning']\n", ":3: flag 'x': severity must be one of"),
        ("[[flag]]\nname = 'x'\nseverity = {a = 1}\n", ":3: flag 'x': severity must be one of"),
        ("[[flag]]\nname = 'x'\nraise_when = 5\n", ":3: flag 'x': raise_when must be a string, not a number"),
        ("[[flag]]\nname = 'x'\nraise_when = ['true']\n", ":3: flag 'x': raise_when must be a string, not an array"),
        ("[[flag]]\nname = 'x'\nraise_when = 'true'\nreason = 5\n", ":4: flag 'x': reason must be a string"),
        ("[[flag]]\nname = 'x'\nraise_when = 'true'\nevidence = 'x'\n", ":4: flag 'x': evidence must be a list"),
        ("[[action]]\nname = 'x'\neligible_when = 'true'\nchannel = ['sms']\n", ":4: action 'x': unknown channel"),
        ("[[action]]\nname = 'x'\neligible_when = 'true'\nitem = {a = 1}\n", ":4: action 'x': item must be a string"),
        ("\nflag = 5\n", ":2: flag must be written as [[flag]] tables"),
        ("\n[flag]\nname = 'x'\n", ":2: flag must be written as [[flag]] tables"),
        ("[[flag]]\nname = 5\n", ":1: flag needs a name"),
    ],
)
def test_every_bad_file_is_a_rules_error_with_the_line(text, where):
    with pytest.raises(RulebookError, match=WHERE) as info:
        Rulebook.parse(text, "rules.toml")
    assert where in str(info.value), str(info.value)


def test_invalid_utf8_and_oversized_files_are_rules_errors_with_the_line(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_bytes(GOOD.encode().replace(b"stuck on", b"stuck \xff on"))
    with pytest.raises(RulebookError, match=r"rules\.toml:4: not UTF-8 \(byte 0xff"):
        Rulebook.load(path)
    path.write_bytes(GOOD.encode() + b"#" * MAX_FILE_BYTES)
    with pytest.raises(RulebookError, match=r"rules\.toml:1: larger than"):
        Rulebook.load(path)
    with pytest.raises(RulebookError, match=r"missing\.toml:1: cannot read"):
        Rulebook.load(tmp_path / "missing.toml")


# --- evaluation never fails the batch --------------------------------------


def test_a_flag_rule_that_raises_is_counted_and_false_and_the_others_still_run(caplog):
    book = Rulebook.parse(
        '[[flag]]\nname = "broken"\nraise_when = "value.a == value.b"\n'
        '[[flag]]\nname = "fine"\nraise_when = "true"\nreason = "{value.a}"\n'
    )
    ctx: dict[str, Any] = {root: {} for root in ROOTS}
    ctx["value"] = {"a": nested(100_000), "b": nested(100_000)}
    before = metric("livesignals_rule_errors_total", {"kind": "flag", "rule": "broken"})
    state = CustomerState("customer_id:c1")
    e = decode(serde.dumps(event("chat", text="hi")), Origin("in", 0, 1), now_ms=T0)
    with caplog.at_level("WARNING"):
        flags = book.evaluate(state, e, ctx)
        book.evaluate(CustomerState("customer_id:c2"), e, ctx)
    assert [f.name for f in flags] == ["fine"] and list(state.flags) == ["fine"]
    logged = [r for r in caplog.records if "'broken'" in r.getMessage()]
    assert len(logged) == 1 and "RecursionError" in logged[0].getMessage(), "logged once, with the cause"
    assert len(flags[0].reason) <= MAX_REASON
    assert metric("livesignals_rule_errors_total", {"kind": "flag", "rule": "broken"}) == before + 2


def test_a_corrupt_active_flag_is_counted_and_skipped_not_raised():
    book = Rulebook.parse('[[flag]]\nname = "odd"\nraise_when = "true"\n[[flag]]\nname = "fine"\nraise_when = "true"\n')
    state = CustomerState("customer_id:c1")
    state.flags["odd"] = {"reason": "no expiry"}  # say, written by a buggy older version
    before = metric("livesignals_rule_errors_total", {"kind": "flag", "rule": "odd"})
    e = decode(serde.dumps(event("chat", text="hi")), Origin("in", 0, 1), now_ms=T0)
    assert [f.name for f in book.evaluate(state, e, {root: {} for root in ROOTS})] == ["fine"]
    assert metric("livesignals_rule_errors_total", {"kind": "flag", "rule": "odd"}) == before + 1


class Publisher:
    def __init__(self) -> None:
        self.records: list = []

    def publish(self, records) -> None:
        self.records.extend(records)


def test_the_engine_applies_huge_payloads_with_bounded_reasons_and_no_repetition(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[flag]]\nname = "said"\nraise_when = "event.payload.text != null"\nreason = "said: {event.payload.text}"\n'
        'evidence = ["event.payload.text"]\n'
        '[[flag]]\nname = "repeated"\nraise_when = "event.payload.text * 100000 != null"\n'
        '[[action]]\nname = "echo"\neligible_when = "true"\nitem = "event.payload.text"\n'
        'value = "event.payload.text * 100000"\nreason = "{event.payload.text:>64}"\n'
    )
    pub = Publisher()
    noon = T0 + 12 * 3_600_000  # out of the quiet hours
    engine = Engine(Settings(metrics_port=0, rules_path=str(rules)), InMemoryStore(), pub, clock=lambda: noon / 1000)
    report = engine.process(raw([event("chat", t=noon, text="y" * 19_000)]))  # the contract allows 20,000
    docs = [serde.loads(r.value) for r in pub.records if r.topic in (engine.settings.flags_topic,
                                                                    engine.settings.triggers_topic)]  # fmt: skip
    (flag,) = [d for d in docs if d.get("flag")]
    assert flag["flag"] == "said" and len(flag["reason"]) <= MAX_REASON
    assert all(len(item) <= MAX_EVIDENCE_CHARS for item in flag["evidence"])
    (trigger,) = [d for d in docs if d.get("action")]
    assert len(trigger["item"]) <= MAX_REASON and all(len(r) <= MAX_REASON for r in trigger["reasons"])
    assert not report.dead_letters


# --- property tests --------------------------------------------------------

TOKENS = [
    "value.spend", "event.payload.text", "w1h.errors", "derived.vip", "x", "x.y", "true", "false", "null",
    "1", "0", "-1", "2.5", "1e999", "9" * 30, '"ab"', "'c'", "[1, 'a']", "[]", "+", "-", "*", "/", "**", "%",
    "and", "or", "not", "in", "not in", "==", "!=", "<", "<=", ">", ">=", "(", ")", "[", "]", ",", ".", "{", "}",
    "lambda", "if", "else", ":", "f'x'", "__import__", "open('x')", "x[0]", "\\", "\x00", "\n", "é", "😀",
]  # fmt: skip
CONTEXT = {
    "value": {"spend": 620.0, "n": 2**62, "tags": ["a", "b"], "t": "x" * 10_000},
    "event": {"payload": {"text": "y" * 10_000, "items": list(range(100)), "d": {"a": 1}}},
    "w1h": {"errors": 3},
    "derived": {"vip": True},
    "x": {"y": [1, [2, [3]]]},
}
LEAVES = st.sampled_from(
    ["value.spend", "value.n", "value.tags", "value.t", "event.payload.text", "event.payload.items", "event.payload.d",
     "x.y", "w1h.errors", "missing.path", "true", "false", "null", "0", "1", "-3", "2.5", "1e308", '"ab"', "[1, 'a']"]
)  # fmt: skip
grammar = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.tuples(
            inner, st.sampled_from(["+", "-", "*", "/", "and", "or", "==", "<", ">=", "in", "not in"]), inner
        ).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"(not {e})"),
        inner.map(lambda e: f"(-{e})"),
    ),
    max_leaves=60,
)
expressions = st.one_of(
    grammar,
    st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(TOKENS), max_size=400).map("".join),
    st.text(max_size=200),
    st.text(alphabet=string.printable, max_size=2000),
)


def bounded(value) -> bool:
    """A result no larger than what the context or the expression text already holds."""
    if isinstance(value, str):
        return len(value) <= 10_000
    if isinstance(value, list | tuple | dict):
        return len(value) <= MAX_NODES + 100
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) <= 2**63
    return value is None or isinstance(value, bool | float)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # Python's own, for text like "1and"
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_random_expressions_compile_or_are_a_condition_error_and_evaluate_bounded(text):
    try:
        check = compile_condition(text)
    except ConditionError:
        return
    assert bounded(check(CONTEXT)), text
    assert bounded(check({})), text


toml_values = st.one_of(
    expressions.map(lambda t: serde.dumps(t).decode()),
    st.integers().map(str),
    st.floats().map(lambda f: "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf") if math.isinf(f) else repr(f)),
    st.sampled_from(
        ["true", "[]", "['a', 1]", "{a = 1}", "[[[[[1]]]]]", '"warning"', '"sms"', "1979-05-27", "'''x'''"]
    ),
    st.text(max_size=20),
)
FLAG_KEYS = ["name", "severity", "raise_when", "clear_when", "ttl_hours", "reason", "evidence", "other"]
ACTION_KEYS = ["name", "purpose", "eligible_when", "value", "weight", "channel", "cooldown_hours", "ttl_hours", "item"]


@st.composite
def rule_files(draw) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flag", "action", "other"]))
        parts.append(f"[[{kind}]]")
        keys = draw(st.lists(st.sampled_from(FLAG_KEYS if kind == "flag" else ACTION_KEYS), max_size=8))
        parts += [f"{key} = {draw(toml_values)}" for key in keys]
    text = "\n".join(parts).encode()
    if draw(st.booleans()):  # and some byte-level damage
        position = draw(st.integers(0, len(text)))
        text = text[:position] + draw(st.binary(max_size=8)) + text[position:]
    return text


CATALOGUE = Path(_rules_path("") or "").read_bytes()


@st.composite
def damaged_catalogues(draw) -> bytes:
    text = CATALOGUE
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        text = text[:position] + draw(st.binary(max_size=6)) + text[position + cut :]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(rule_files(), damaged_catalogues()))
def test_random_rule_files_load_or_are_a_rules_error_with_the_line(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "rules.toml"
    path.write_bytes(data)
    try:
        Rulebook.load(path)
    except RulebookError as exc:
        assert str(exc).startswith(f"{path}:") and str(exc).split(":")[1].isdigit(), str(exc)


def test_the_readme_states_the_limits_in_force():
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    for phrase in [
        f"at most {MAX_TEXT:,} characters, {MAX_NODES} parts and {MAX_DEPTH} levels deep",
        f"width and precision are at most {MAX_FORMAT_WIDTH}",
        f"a reason is at most {MAX_REASON} characters and renders to at most {MAX_REASON}",
        f"evidence is at most {MAX_EVIDENCE_ITEMS} strings of {MAX_EVIDENCE_CHARS} characters",
        f"over {MAX_FILE_BYTES // 1024} KiB",
        f"nested more than {MAX_DOTS_PER_LINE} levels",
    ]:
        assert phrase in readme, phrase
