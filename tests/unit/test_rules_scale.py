"""Rules files at scale: linear loading, a cap on the rule count, stable flags beyond MAX_FLAGS, bounded items.

From the last outside review of issue 9: a file of 8,000 flags took 58 s to
load (each key's line was found by rescanning the text); more than
``MAX_FLAGS`` rules that all hold made flags flap (raised, evicted, raised
again on the next event); an action's ``item`` that reads a map or a list
was not bounded.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from livesignals import serde
from livesignals.settings import Settings
from operators.engine import Engine
from operators.profile360.update import MAX_FLAGS
from operators.rules.rulebook import MAX_RULES, Rulebook, RulebookError
from operators.rules.rules_file import parse_toml
from operators.rules.templates import MAX_REASON
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

NOON = T0 + 12 * 3_600_000


class _CountingText(str):
    """A rules text that counts how often it is split into lines."""

    splits = 0

    def splitlines(self, keepends: bool = False) -> list[str]:
        type(self).splits += 1
        return super().splitlines(keepends)


def _flags(n: int, severity: str = "info", prefix: str = "f") -> str:
    return "".join(
        f'[[flag]]\nname = "{prefix}{i:04d}"\nseverity = "{severity}"\nraise_when = "true"\nttl_hours = 1000\n\n'
        for i in range(n)
    )


def test_loading_reads_the_lines_once_not_once_per_rule():
    text = _CountingText(_flags(MAX_RULES))
    _CountingText.splits = 0
    book = Rulebook.parse(text, "rules.toml")
    assert len(book.flags) == MAX_RULES
    assert _CountingText.splits <= 1, "a line index built once; rescanning per key made 8k flags take 58 s"


def test_errors_still_name_the_line_of_the_key_at_fault():
    text = _flags(200) + '[[flag]]\nname = "late"\nraise_when = "true"\nttl_hours = -1\n'
    with pytest.raises(RulebookError, match=r"^rules.toml:1204: flag 'late': ttl_hours"):
        Rulebook.parse(text, "rules.toml")


def test_more_than_max_rules_flags_is_an_error_naming_the_first_one_too_many():
    text = _flags(MAX_RULES + 10)
    line = 1 + 6 * MAX_RULES
    with pytest.raises(RulebookError, match=rf"^rules.toml:{line}: more than {MAX_RULES} \[\[flag\]\] tables"):
        Rulebook.parse(text, "rules.toml")
    actions = "".join(f'[[action]]\nname = "a{i}"\neligible_when = "true"\n' for i in range(MAX_RULES + 1))
    with pytest.raises(RulebookError, match=rf"^rules.toml:{1 + 3 * MAX_RULES}: more than {MAX_RULES} \[\[action\]\]"):
        Rulebook.parse(actions, "rules.toml")


class _Capture:
    def __init__(self) -> None:
        self.records: list = []

    def publish(self, records) -> None:
        self.records.extend(records)


def _held_back(name: str) -> float:
    return REGISTRY.get_sample_value("livesignals_flags_held_back_total", {"flag": name}) or 0.0


def test_more_rules_holding_than_max_flags_raise_once_and_then_stay_put(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(_flags(MAX_FLAGS + 3) + _flags(1, "critical", "alarm"))
    out = _Capture()
    store = InMemoryStore()
    engine = Engine(Settings(metrics_port=0, rules_path=str(rules)), store, out, clock=lambda: NOON / 1000)
    per_event = []
    before = _held_back(f"f{MAX_FLAGS:04d}")
    for i in range(4):
        out.records.clear()
        report = engine.process(raw([event("web_event", t=NOON + i * 1000, action="page_view")], start=i))
        per_event.append([(f.name, f.cleared) for f in report.flags])
    first = per_event[0]
    raised = {name for name, cleared in first if not cleared}
    assert len(raised) == MAX_FLAGS + 1 and "alarm0000" in raised, "32 raised, then the critical one displaced one"
    assert [name for name, cleared in first if cleared] == ["f0000"], "the displaced flag is published as cleared"
    assert per_event[1:] == [[], [], []], "no raise/clear churn on later events"
    state = store.states["customer_id:c1"]
    assert len(state.flags) == MAX_FLAGS and "alarm0000" in state.flags
    assert _held_back(f"f{MAX_FLAGS:04d}") - before == 4, "the overflow is counted, once per event"


def test_an_action_item_that_reads_a_map_or_list_is_bounded():
    book = Rulebook.parse(
        '[[action]]\nname = "echo"\neligible_when = "true"\nitem = "event.payload.extra"\n', "rules.toml"
    )
    item = book.actions[0].item
    assert item is not None
    small = {"sku": "p1", "qty": 2}
    assert item({"event": {"payload": {"extra": small}}}) == small
    assert item({"event": {"payload": {"extra": ["p1", "p2"]}}}) == ["p1", "p2"]
    before = REGISTRY.get_sample_value("livesignals_rule_errors_total", {"kind": "action", "rule": "echo"}) or 0.0
    big = {"k": "x" * 10_000}
    assert item({"event": {"payload": {"extra": big}}}) is None
    assert item({"event": {"payload": {"extra": [["y" * 100] * 10] * 10}}}) is None
    after = REGISTRY.get_sample_value("livesignals_rule_errors_total", {"kind": "action", "rule": "echo"})
    assert after == before + 2
    assert len(serde.dumps(small)) <= MAX_REASON


def test_a_deeply_dotted_key_is_refused_before_the_parser_spends_minutes_on_it():
    """Outside review of #9: one 100 kB dotted key took Python's TOML parser 140 s (quadratic in depth)."""
    with pytest.raises(RulebookError, match=r"rules\.toml:2: more than 8 dots outside quotes"):
        Rulebook.parse("# rules\n" + "a" + ".a" * 50_000 + " = 1\n", "rules.toml")
    # dots inside quoted strings (expressions, reasons) are not keys
    parse_toml('x = "' + "event.payload." * 40 + '"\n', "rules.toml")
