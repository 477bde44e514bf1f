"""Event-kind guards: the flag conditions an event's kind alone makes false, found once per kind.

Most flag rules that run on every event (:mod:`operators.rules.dependencies`
cannot skip them: they read the event) are about one kind of event: ``event.inbound
and derived.same_topic_contacts >= 3``, ``derived.context_carried != null``,
``derived.negative_survey or (event.type == 'survey' and ...)``. On a page view
(70 % of a typical stream) each is false before it reads anything else.

:func:`false_for` folds an expression over what the event's *kind* -- its
``(type, channel, inbound)`` -- fixes, in the expression's own evaluation order
(``and``/``or`` left to right, stopping where Python stops), and answers True
only when the expression is falsy before reaching anything the kind does not
fix. So skipping it changes nothing: it would have read the same known values,
raised nothing (no rule error is counted) and been false. What a kind fixes:

============================  ==============================================
``event.type``                the type
``event.channel``             the channel
``event.inbound``             whether it is an inbound contact
``derived.context_carried``   null unless inbound (:mod:`operators.rules.context`)
``derived.negative_survey``   false unless a survey
``true``/``false``/``null``,  themselves
numbers, strings
============================  ==============================================

and ``and``, ``or``, ``not`` and a single ``==``/``!=`` of two known values.
Anything else is unknown. The answers hold for a context built by
:func:`operators.rules.context.context` only (a hand-made context may say
anything): :class:`operators.rules.rulebook.Rulebook` asks only then.
``tests/unit/test_rule_guards.py`` checks them against running the
conditions on every kind.
"""

from __future__ import annotations

import ast
from typing import Any

Kind = tuple[str, str, bool]
"""An event's ``(type, channel, inbound)``, as the rule context has them."""

_UNKNOWN: Any = object()
_CONSTANTS = {"true": True, "false": False, "null": None}
_FIXED = frozenset({
    ("event", "type"), ("event", "channel"), ("event", "inbound"),
    ("derived", "context_carried"), ("derived", "negative_survey"),
})  # fmt: skip
"""The paths a kind fixes (all or in part): see :func:`_path`."""


def parse(text: str | None) -> ast.expr | None:
    """The expression's tree, for :func:`false_for`; None for no expression or one that reads nothing a
    kind fixes (nothing to fold: it runs, as an unknown would).

    >>> parse("derived.churn_risk >= 0.7") is None, parse("event.inbound and w1h.errors >= 1") is None
    (True, False)
    """
    if text is None:
        return None
    tree = ast.parse(text, mode="eval").body
    reads = {
        (node.value.id, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }
    return tree if reads & _FIXED else None


def false_for(tree: ast.expr | None, kind: Kind) -> bool:
    """Whether the expression is falsy for every event of ``kind`` without reading anything the kind
    does not fix (see the module docstring); False when not known, or for no expression.

    >>> false_for(parse("event.inbound and derived.same_topic_contacts >= 3"), ("web_event", "web", False))
    True
    >>> false_for(parse("derived.same_topic_contacts >= 3 and event.inbound"), ("web_event", "web", False))
    False
    """
    if tree is None:
        return False
    value = _fold(tree, kind)
    return value is not _UNKNOWN and not value


def _fold(node: ast.AST, kind: Kind) -> Any:
    """The value ``node`` evaluates to for every event of ``kind``, or :data:`_UNKNOWN`."""
    if isinstance(node, ast.BoolOp):
        value: Any = _UNKNOWN
        for operand in node.values:  # Python's order: stop at the first falsy (and) or truthy (or) operand
            value = _fold(operand, kind)
            if value is _UNKNOWN:
                return _UNKNOWN
            if bool(value) != isinstance(node.op, ast.And):
                return value
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        value = _fold(node.operand, kind)
        return _UNKNOWN if value is _UNKNOWN else not value
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq | ast.NotEq):
            return _UNKNOWN
        left, right = _fold(node.left, kind), _fold(node.comparators[0], kind)
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        return (left == right) if isinstance(node.ops[0], ast.Eq) else (left != right)
    if isinstance(node, ast.Constant):
        return node.value if type(node.value) in (str, int, float, bool) or node.value is None else _UNKNOWN
    if isinstance(node, ast.Name):
        return _CONSTANTS.get(node.id, _UNKNOWN)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return _path(node.value.id, node.attr, kind)
    return _UNKNOWN


def _path(root: str, name: str, kind: Kind) -> Any:
    etype, channel, inbound = kind
    if root == "event":
        if name == "type":
            return etype
        if name == "channel":
            return channel
        if name == "inbound":
            return inbound
    elif root == "derived":
        if name == "context_carried" and not inbound:
            return None
        if name == "negative_survey" and etype != "survey":
            return False
    return _UNKNOWN
