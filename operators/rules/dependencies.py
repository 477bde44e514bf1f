"""Dependency-aware flag evaluation: a flag rule runs only when this event can change what it reads.

At load, each flag rule's ``raise_when`` and ``clear_when`` are reduced to
the *inputs* they read (:func:`inputs_of`). Only inputs that neither time nor
the event itself can change, and whose writers are known, are *tracked*:

==========================  ===========================================================
input                       changed by (:func:`changed_by`)
==========================  ===========================================================
``value``                   orders, returns, loyalty events (``derived.vip`` reads it)
``consent``                 consent events
``activity.deliveries``     delivery events (``derived.deliveries_in_trouble``)
``activity.open_cases``     ticket events; and, for ``derived.oldest_case_days`` (it reads the
                            present too), any event of a customer with a case open
``history.offers``          offer responses
``predictions.mood``        any event with a text (sentiment scoring)
``predictions.churn``       any event but plain browsing, models on (``derived.churn_risk``,
                            ``derived.churn_drivers``); the silent-customer sweep
``predictions.fraud``       orders, returns, account changes, models on; and, for
                            ``derived.fraud_score`` (the score of *this* event: it reads
                            the event's time too), an event at the time of the last
                            fraud score or right after one that was
==========================  ===========================================================

A rule reading anything else -- ``event``, windows, ``rfm``, other
``derived`` values (they change with time or with the event), ``flags``
(other rules change them), other sections -- runs on every event, as before.

A rule whose inputs are all tracked is skipped when the customer's
:class:`RuleMemo` says the rule was *stable* at its last evaluation (it raised,
cleared or held back nothing and failed nothing there, so running it again on
the same inputs does nothing either), its flag is the same one (or still
none), and the event changes none of its inputs. A flag's TTL is checked on
every event whatever the rule's inputs. The memo is kept in memory only
(:attr:`CustomerState.rules_memo`); a state loaded afresh, changed outside an
event (the sweep, an erasure), put back after a failed event, or that just had
a *late* event applied (late events skip evaluation) has none, and every rule
runs: so flags and triggers are exactly those of evaluating every rule on
every event, whatever the batch boundaries, caches and restarts
(``tests/unit/test_rule_dependencies.py`` compares both on a long stream).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from livesignals.contract import Event
from operators.profile360.profile import CustomerState

_ROOT_INPUTS = {"value": "value", "consent": "consent"}
_FIELD_INPUTS = {
    ("activity", "deliveries"): "activity.deliveries",
    ("activity", "open_cases"): "activity.open_cases",
    ("history", "offers"): "history.offers",
    ("predictions", "mood"): "predictions.mood",
    ("predictions", "churn"): "predictions.churn",
    ("predictions", "fraud"): "predictions.fraud",
}
_DERIVED_INPUTS = {
    "vip": "value",
    "deliveries_in_trouble": "activity.deliveries",
    "oldest_case_days": "activity.open_cases",
    "churn_risk": "predictions.churn",
    "churn_drivers": "predictions.churn",
    "fraud_score": "predictions.fraud",
}
_CONSTANTS = frozenset({"true", "false", "null"})

_VALUE_TYPES = frozenset({"order", "return", "loyalty"})
_FRAUD_TYPES = frozenset({"order", "return", "profile_update", "consent"})
"""As :data:`operators.scoring.online.FRAUD_TYPES` (checked by the tests)."""
_BROWSING = frozenset({"page_view", "product_view", "search"})
"""As :data:`operators.scoring.online.BROWSING`: app/web actions never scored for churn."""


def paths(text: str) -> list[tuple[str, ...]]:
    """The dotted paths an expression reads (``true``/``false``/``null`` are constants, not paths).

    >>> paths("derived.vip and w1h.errors >= 2 or value.spend > 0 or true")
    [('derived', 'vip'), ('w1h', 'errors'), ('value', 'spend')]
    """
    out: list[tuple[str, ...]] = []

    def visit(node: ast.AST) -> None:  # depth bounded: the expression passed the language's limits
        if isinstance(node, ast.Attribute | ast.Name):
            names: list[str] = []
            while isinstance(node, ast.Attribute):
                names.append(node.attr)
                node = node.value
            if isinstance(node, ast.Name):
                if names or node.id not in _CONSTANTS:
                    out.append((node.id, *reversed(names)))
                return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(text, mode="eval").body)
    return out


def inputs_of(*texts: str | None) -> frozenset[str] | None:
    """The tracked inputs the expressions read, or None when any read is untracked (run on every event).

    >>> sorted(inputs_of("derived.churn_risk >= 0.7", "not derived.churn_risk >= 0.5"))
    ['predictions.churn']
    >>> inputs_of("(derived.vip or value.spend >= 500) and w1h.errors >= 2") is None
    True
    """
    found: set[str] = set()
    for text in texts:
        if text is None:
            continue
        for path in paths(text):
            tracked = _tracked(path)
            if tracked is None:
                return None
            found.add(tracked)
    return frozenset(found)


def _tracked(path: tuple[str, ...]) -> str | None:
    root = path[0]
    if root in _ROOT_INPUTS:
        return _ROOT_INPUTS[root]
    if len(path) < 2:
        return None
    if root == "derived":
        return _DERIVED_INPUTS.get(path[1])
    return _FIELD_INPUTS.get((root, path[1]))


def changed_by(event: Event, text: bool, models: bool, state: CustomerState | None = None) -> frozenset[str]:
    """The tracked inputs applying and scoring ``event`` may change (``text``: it carries one;
    ``models``: the online models are on), for ``state`` (the customer's, scored and applied, its
    :class:`RuleMemo` still the last evaluation's; None: not known, as if every fraud score were this
    event's). A superset is safe; a missing input is a wrong skip."""
    t = event.type
    out: list[str] = []
    if t in _VALUE_TYPES:
        out.append("value")
    elif t == "consent":
        out.append("consent")
    elif t == "delivery":
        out.append("activity.deliveries")
    elif t == "offer_response":
        out.append("history.offers")
    if t == "ticket" or state is None or state.activity.get("open_cases"):  # an open case ages with the present
        out.append("activity.open_cases")
    if text:
        out.append("predictions.mood")
    if models and not (t in ("web_event", "app_event") and event.payload.get("action") in _BROWSING):
        out.append("predictions.churn")
    if (models and t in _FRAUD_TYPES) or _fraud_score_moved(event, state):  # models off: a score kept from before
        out.append("predictions.fraud")
    return frozenset(out)


def _fraud_score_moved(event: Event, state: CustomerState | None) -> bool:
    """Whether ``derived.fraud_score`` may differ from the last evaluation's on an event the fraud model did
    not score: it is the prediction's score when the prediction's time is the reading event's own, else null;
    so it moves only when this event or the last evaluated one is at the prediction's time."""
    if state is None:
        return True
    fraud = state.predictions.get("fraud")
    if not fraud:
        return False
    at, memo = fraud.get("t"), state.rules_memo
    return at == event.event_time_ms or memo is None or at == memo.at


@dataclass(slots=True)
class RuleMemo:
    """What a customer's last rule evaluation left (in memory only; see the module docstring)."""

    rulebook: Any
    """The rulebook evaluated (a reload makes the memo void)."""
    stable: dict[str, str | None] = field(default_factory=dict)
    """Rule name -> the id of its raised flag then (None: none), for the rules that were stable."""
    at: int | None = None
    """The event time of that evaluation (what ``derived.fraud_score`` read it at)."""
    quiet: bool = False
    """Every tracked rule was stable with no flag raised (:mod:`operators.rules.plans` then skips them at once)."""
