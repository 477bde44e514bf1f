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
``null``; a comparison involving ``null`` (other than ``==``/``!=``) is false;
arithmetic with ``null`` is ``null``. ``and``/``or`` give an operand, as in
Python, so a value can have a default: ``value.spend / value.orders or 0``.

>>> check = compile_condition("value.spend >= 500 and not consent.marketing == false")
>>> check({"value": {"spend": 620.0}, "consent": {}})
True
>>> compile_condition("open('x')")
Traceback (most recent call last):
...
operators.rules.expressions.ConditionError: function calls are not allowed
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

Condition = Callable[[dict[str, Any]], Any]
"""A compiled condition or value expression: context -> value."""

_CONSTANTS = {"true": True, "false": False, "null": None}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class ConditionError(ValueError):
    """The expression is not in the rule language."""


def compile_condition(
    text: str, roots: frozenset[str] | None = None, fields: dict[str, frozenset[str]] | None = None
) -> Condition:
    """Parse ``text`` once into a function of the context; raise :class:`ConditionError` if invalid.

    ``roots`` restricts the first name of every path, ``fields`` the second
    name under some roots (typos are caught at load). With ``roots``, the
    context must hold every root (``ctx[root]``); without, a missing root is null.
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid expression: {exc.msg}") from None
    source = _Translator(roots, fields or {}).expr(tree.body)
    function: Condition = eval(f"lambda ctx: {source}", dict(_RUNTIME))  # noqa: S307 - generated from a checked AST
    return function


class _Translator:
    """Translates a checked expression into Python source of the same (null-safe) meaning.

    Only the nodes below are accepted; names become ``.get`` chains on the
    context, strings and numbers are written with ``repr``, and every other
    operation calls one of the helpers in :data:`_RUNTIME`. The source is
    compiled once, so a rule runs as one Python function instead of a tree
    of closures (several times faster on the per-event path).
    """

    def __init__(self, roots: frozenset[str] | None, fields: dict[str, frozenset[str]]) -> None:
        self.roots = roots
        self.fields = fields
        self.temps = 0

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def expr(self, node: ast.AST) -> str:
        if isinstance(node, ast.BoolOp):
            joiner = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + joiner.join(f"({self.expr(v)})" for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return f"(not ({self.expr(node.operand)}))"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"_neg({self.expr(node.operand)})"
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return f"_arith({_ARITH[type(node.op)]!r}, {self.expr(node.left)}, {self.expr(node.right)})"
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
            return repr(node.value)
        if isinstance(node, ast.Name | ast.Attribute):
            return self.path(node)
        if isinstance(node, ast.List | ast.Tuple):
            return repr(tuple(_literal(item) for item in node.elts))
        if isinstance(node, ast.Call):
            raise ConditionError("function calls are not allowed")
        raise ConditionError(f"{type(node).__name__} is not allowed in a condition")

    def compare(self, node: ast.Compare) -> str:
        left = self.expr(node.left)
        steps = []
        for i, (op, comparator) in enumerate(zip(node.ops, node.comparators, strict=True)):
            right = self.expr(comparator)
            last = i == len(node.ops) - 1
            if not last:  # a chained middle operand is evaluated once
                name = self.temp()
                right_value, right = f"({name} := {right})", name
            else:
                right_value = right
            steps.append(self.compare_one(op, left, right_value, comparator))
            left = right
        return steps[0] if len(steps) == 1 else "(" + " and ".join(steps) + ")"

    def compare_one(self, op: ast.cmpop, left: str, right: str, right_node: ast.AST) -> str:
        if isinstance(op, ast.In):
            return f"_in({left}, {right})"
        if isinstance(op, ast.NotIn):
            return f"_not_in({left}, {right})"
        if isinstance(op, ast.Eq | ast.NotEq):
            return f"({left} {_SYMBOL[type(op)]} {right})"
        if type(op) not in _SYMBOL:
            raise ConditionError(f"{type(op).__name__} comparisons are not allowed")
        numeric = isinstance(right_node, ast.Constant) and type(right_node.value) in (int, float)
        if numeric:  # the common case, inlined: a number or nothing
            name = self.temp()
            return f"(type({name} := {left}) in _NUMBERS and {name} {_SYMBOL[type(op)]} {right})"
        return f"_cmp({_SYMBOL[type(op)]!r}, {left}, {right})"

    def path(self, node: ast.AST) -> str:
        names: list[str] = []
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            raise ConditionError("only dotted names can be read")
        names.append(node.id)
        names.reverse()
        if len(names) == 1 and names[0] in _CONSTANTS:
            return repr(_CONSTANTS[names[0]])
        if self.roots is not None and names[0] not in self.roots:
            raise ConditionError(f"unknown name {names[0]!r} (known: {', '.join(sorted(self.roots))})")
        known = self.fields.get(names[0])
        if known is not None and len(names) > 1 and names[1] not in known:
            raise ConditionError(f"unknown name {names[0]}.{names[1]} (known: {', '.join(sorted(known))})")
        # Roots that were declared always exist (the context supplies them, lazily if
        # need be, see operators.rules.context): read them by subscription.
        source = f"ctx[{names[0]!r}]" if self.roots is not None else f"ctx.get({names[0]!r})"
        for name in names[1:]:
            temp = self.temp()
            source = f"({temp}.get({name!r}) if isinstance({temp} := {source}, dict) else None)"
        return source


def _literal(node: ast.AST) -> Any:
    """An item of a list literal: a constant only (``["delayed", "failed"]``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    raise ConditionError("a list may hold only numbers, strings, true, false and null")


def _cmp(symbol: str, a: Any, b: Any) -> bool:
    """An ordering comparison: false with null or values that do not compare."""
    if a is None or b is None:
        return False
    try:
        return bool(_ORDER[symbol](a, b))
    except TypeError:
        return False


def _in(item: Any, container: Any) -> bool:
    return _contains(container, item)


def _not_in(item: Any, container: Any) -> bool:
    return container is not None and not _contains(container, item)


def _contains(container: Any, item: Any) -> bool:
    try:
        return container is not None and item in container
    except TypeError:
        return False


def _arith(symbol: str, a: Any, b: Any) -> Any:
    try:
        return None if a is None or b is None else _OPERATORS[symbol](a, b)
    except (TypeError, ZeroDivisionError):
        return None


def _neg(value: Any) -> Any:
    return -value if isinstance(value, int | float) else None


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_RUNTIME = {
    "__builtins__": {}, "isinstance": isinstance, "type": type, "dict": dict, "_NUMBERS": (int, float, bool),
    "_cmp": _cmp, "_in": _in, "_not_in": _not_in, "_arith": _arith, "_neg": _neg,
}  # fmt: skip
"""All a compiled condition can reach: no builtins beyond these."""
