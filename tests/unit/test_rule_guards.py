"""Event-kind guards (operators.rules.guards): a condition said false for a kind of event is false for
every event of that kind without reading anything the kind does not fix, and the rulebook then does not
run it (issue 16: browsing events no longer pay for the contact and survey rules)."""

from __future__ import annotations

import dataclasses
import importlib.resources
from pathlib import Path
from typing import Any

import pytest

from livesignals.contract import CHANNELS, EVENT_TYPES
from livesignals.settings import Settings
from operators.engine import Engine
from operators.rules import guards
from operators.rules.expressions import compile_condition
from operators.rules.rulebook import FIELDS, ROOTS, Rulebook
from state.memory import InMemoryStore
from tests.fuzzing import ListPublisher
from tests.helpers import T0, event
from tests.unit.test_rule_dependencies import PARTITIONS, _raw

MINUTE = 60_000
KINDS = [(t, c, inbound) for t in sorted(EVENT_TYPES) for c in sorted(CHANNELS) for inbound in (False, True)]

EXPRESSIONS = [
    "event.inbound and derived.same_topic_contacts >= 3",
    "derived.context_carried != null",
    "derived.negative_survey or (event.type == 'survey' and event.payload.comment != null)",
    "not event.inbound or w1h.errors >= 1",
    "event.type != 'order' and (event.channel == 'web' or event.channel == \"app\")",
    "(event.type == 'call' or event.type == 'chat') and not derived.negative_survey",
    "not (derived.context_carried == null) and value.spend > 0",
    "event.inbound == false and false",
    "null or 0 or '' or event.inbound",
    "derived.same_topic_contacts >= 3 and event.inbound",  # reads an unknown first: never folded
    "event.type == 'survey' and derived.negative_survey",
    "event.inbound and (event.type in ['call', 'chat'])",
]


class _Strict(dict[str, Any]):
    """A context part that fails the test when a condition reads what the kind does not fix."""

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self:
            raise AssertionError(f"read {key!r}, which the event's kind does not fix")
        return self[key]


class _StrictContext(dict[str, Any]):
    def __missing__(self, root: str) -> Any:
        raise AssertionError(f"read root {root!r}, which the event's kind does not fix")


def _context(kind: guards.Kind) -> dict[str, Any]:
    etype, channel, inbound = kind
    derived = _Strict()
    if not inbound:
        derived["context_carried"] = None
    if etype != "survey":
        derived["negative_survey"] = False
    return _StrictContext(event=_Strict(type=etype, channel=channel, inbound=inbound), derived=derived)


def _shipped() -> list[str]:
    path = Path(str(importlib.resources.files("livesignals").joinpath("rules", "catalogue.toml")))
    import tomllib

    doc = tomllib.loads(path.read_text())
    return [t[k] for t in doc["flag"] for k in ("raise_when", "clear_when") if k in t]


@pytest.mark.parametrize("text", EXPRESSIONS + _shipped())
def test_a_condition_said_false_for_a_kind_is_false_there_reading_only_what_the_kind_fixes(text):
    condition = compile_condition(text, ROOTS, FIELDS)  # no error handler: a read of anything else fails
    tree = guards.parse(text)
    for kind in KINDS:
        if guards.false_for(tree, kind):
            assert not condition(_context(kind)), (text, kind)


def test_the_contact_and_survey_rules_are_false_on_a_page_view_and_the_others_unknown():
    view = ("web_event", "web", False)
    book = Rulebook.load(Path(str(importlib.resources.files("livesignals").joinpath("rules", "catalogue.toml"))))
    false = {r.name for r in book.flags if guards.false_for(r.guards[0], view)}
    assert false == {"repeat_contact", "context_carried", "negative_survey"}
    call = ("call", "phone", True)
    assert {r.name for r in book.flags if guards.false_for(r.guards[0], call)} == {"negative_survey"}
    assert not guards.false_for(guards.parse("derived.same_topic_contacts >= 3 and event.inbound"), view)
    assert not guards.false_for(None, view)


def test_a_rule_false_for_a_page_view_is_not_run_on_page_views(tmp_path):
    """Fails on bf662ce: there every untracked rule ran on every event."""
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[flag]]\nname = "calls"\nraise_when = "event.inbound and derived.same_topic_contacts >= 2"\n'
        'clear_when = "not event.inbound and history.offers.rejected >= 5"\n'
    )
    settings = Settings(metrics_port=0).replace(rules_path=str(path), policy_clock="stream", models_enabled=False)
    e = Engine(settings, InMemoryStore(), ListPublisher(), clock=lambda: 4e12)
    rule, calls = e.rulebook.rulebook.flags[0], []

    def raise_when(ctx: dict[str, Any]) -> Any:
        calls.append(ctx["event"]["type"])
        return rule.raise_when(ctx)

    counted = dataclasses.replace(rule, raise_when=raise_when)
    e.rulebook.rulebook = dataclasses.replace(e.rulebook.rulebook, flags=(counted,))
    views = [event("web_event", "c1", T0 + i * MINUTE, event_id=f"v{i}", action="page_view") for i in range(4)]
    contacts = [event("call", "c1", T0 + (5 + i) * MINUTE, event_id=f"c{i}", topic="billing") for i in range(2)]
    e.process(_raw([*views, *contacts], PARTITIONS))
    assert calls == ["call", "call"]  # the second call raises it
    assert "calls" in e.store.load(["customer_id:c1"])["customer_id:c1"].flags
    every = Engine(settings, InMemoryStore(), ListPublisher(), clock=lambda: 4e12)
    every.rules_dependency_aware = False  # every rule on every event: the same flag
    every.process(_raw([*views, *contacts], PARTITIONS))
    assert [(r.topic, r.value) for r in every.publisher.records] == [  # type: ignore[attr-defined]
        (r.topic, r.value)
        for r in e.publisher.records  # type: ignore[attr-defined]
    ]
