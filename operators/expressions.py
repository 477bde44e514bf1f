"""A small, safe condition language for rules a business analyst can read.

Conditions are Python-like expressions over the customer's live picture::

    value.spend >= 500 and w24h.errors >= 2
    predictions.churn.p >= 0.6 and consent.marketing != false
    event.type == "call" and "billing" in history.touch.social.topic

Allowed: ``and``, ``or``, ``not``, comparisons (``== != < <= > >= in not
in``), ``+ - * /``, numbers, strings, ``true``/``false``/``null``, lists of
those (``event.payload.status in ["delayed", "failed"]``), and dotted
paths into the context. Nothing else parses (no calls, no indexing, no
lambdas), so a rules file cannot run code. A path that does not exist is
``null``; a comparison involving ``null`` (other than ``==``/``!=``) is false.

>>> check = compile_condition("value.spend >= 500 and not consent.marketing == false")
>>> check({"value": {"spend": 620.0}, "consent": {}})
True
>>> compile_condition("open('x')")
Traceback (most recent call last):
...
operators.expressions.ConditionError: function calls are not allowed
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

Condition = Callable[[dict[str, Any]], Any]

_CONSTANTS = {"true": True, "false": False, "null": None}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}  # fmt: skip
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class ConditionError(ValueError):
    """The expression is not in the rule language."""


def compile_condition(text: str, roots: frozenset[str] | None = None) -> Condition:
    """Parse ``text`` once into a function of the context; raise :class:`ConditionError` if invalid.

    ``roots`` restricts the first name of every path (typos are caught at load).
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid expression: {exc.msg}") from None
    return _compile(tree.body, roots)


def _compile(node: ast.AST, roots: frozenset[str] | None) -> Condition:
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, roots) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda ctx: all(p(ctx) for p in parts)
        return lambda ctx: any(p(ctx) for p in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _compile(node.operand, roots)
        return lambda ctx: not inner(ctx)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _compile(node.operand, roots)
        return lambda ctx: _neg(inner(ctx))
    if isinstance(node, ast.Compare):
        return _compile_compare(node, roots)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        left, right, op = _compile(node.left, roots), _compile(node.right, roots), _ARITH[type(node.op)]
        return lambda ctx: _arith(op, left(ctx), right(ctx))
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
        value = node.value
        return lambda ctx: value
    if isinstance(node, ast.Name | ast.Attribute):
        return _compile_path(node, roots)
    if isinstance(node, ast.List | ast.Tuple):
        items = tuple(_literal(item) for item in node.elts)
        return lambda ctx: items
    if isinstance(node, ast.Call):
        raise ConditionError("function calls are not allowed")
    raise ConditionError(f"{type(node).__name__} is not allowed in a condition")


def _literal(node: ast.AST) -> Any:
    """An item of a list literal: a constant only (``["delayed", "failed"]``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    raise ConditionError("a list may hold only numbers, strings, true, false and null")


def _compile_compare(node: ast.Compare, roots: frozenset[str] | None) -> Condition:
    left = _compile(node.left, roots)
    steps: list[tuple[Callable[[Any, Any], bool], Condition]] = []
    for op, comparator in zip(node.ops, node.comparators, strict=True):
        right = _compile(comparator, roots)
        if isinstance(op, ast.In | ast.NotIn):
            steps.append((_not_in if isinstance(op, ast.NotIn) else _in, right))
        elif type(op) in _COMPARE:
            steps.append((_safe(_COMPARE[type(op)], type(op) in (ast.Eq, ast.NotEq)), right))
        else:
            raise ConditionError(f"{type(op).__name__} comparisons are not allowed")

    def compare(ctx: dict[str, Any]) -> bool:
        current = left(ctx)
        for fn, right in steps:
            value = right(ctx)
            if not fn(current, value):
                return False
            current = value
        return True

    return compare


def _compile_path(node: ast.AST, roots: frozenset[str] | None) -> Condition:
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ConditionError("only dotted names can be read")
    names.append(node.id)
    names.reverse()
    if len(names) == 1 and names[0] in _CONSTANTS:
        constant = _CONSTANTS[names[0]]
        return lambda ctx: constant
    if roots is not None and names[0] not in roots:
        raise ConditionError(f"unknown name {names[0]!r} (known: {', '.join(sorted(roots))})")

    def read(ctx: dict[str, Any]) -> Any:
        value: Any = ctx
        for name in names:
            if not isinstance(value, dict):
                return None
            value = value.get(name)
        return value

    return read


def _safe(fn: Callable[[Any, Any], bool], allow_null: bool) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if (a is None or b is None) and not allow_null:
            return False
        try:
            return bool(fn(a, b))
        except TypeError:
            return False

    return compare


def _in(item: Any, container: Any) -> bool:
    return _contains(container, item)


def _not_in(item: Any, container: Any) -> bool:
    return container is not None and not _contains(container, item)


def _contains(container: Any, item: Any) -> bool:
    try:
        return container is not None and item in container
    except TypeError:
        return False


def _arith(op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    try:
        return None if a is None or b is None else op(a, b)
    except (TypeError, ZeroDivisionError):
        return None


def _neg(value: Any) -> Any:
    return -value if isinstance(value, int | float) else None
