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

Resource limits: a rule runs for every event, so nothing in it may grow
without bound. Arithmetic works on numbers only: a string or list operand
is an error at load (``"ab" * 3``), and where the type is known only at run
time (a path) a non-number makes the result ``null`` -- never a repeated or
joined string. Integer results beyond +-2**63 are ``null``; ``inf``/``nan``
and integer literals beyond +-2**63 are rejected. An expression is at most
:data:`MAX_TEXT` characters, :data:`MAX_NODES` syntax nodes and
:data:`MAX_DEPTH` levels deep; anything else is a :class:`ConditionError`
(never a ``RecursionError``).

>>> compile_condition('event.payload.text * 100000')({"event": {"payload": {"text": "x"}}}) is None
True
>>> compile_condition('"ab" * 3')
Traceback (most recent call last):
...
operators.rules.expressions.ConditionError: '*' works on numbers only, not on a string

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
import math
import operator
from collections.abc import Callable
from typing import Any

Condition = Callable[[dict[str, Any]], Any]
"""A compiled condition or value expression: context -> value."""

OnError = Callable[[Exception], None]
"""Told of an exception raised while a compiled expression runs (which then gives null)."""

MAX_TEXT = 1000
"""Longest expression, in characters."""
MAX_NODES = 300
"""Most syntax nodes (names, constants, operators, list items) in one expression."""
MAX_DEPTH = 30
"""Deepest nesting of sub-expressions (a dotted path counts one level per name)."""
MAX_INT = 2**63
"""Integer literals and integer results must lie within +-MAX_INT (results beyond are null)."""

_CONSTANTS = {"true": True, "false": False, "null": None}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {ast.Add: "_add", ast.Sub: "_sub", ast.Mult: "_mul", ast.Div: "_div"}
_ARITH_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class ConditionError(ValueError):
    """The expression is not in the rule language."""


def compile_condition(
    text: str,
    roots: frozenset[str] | None = None,
    fields: dict[str, frozenset[str]] | None = None,
    on_error: OnError | None = None,
) -> Condition:
    """Parse ``text`` once into a function of the context; raise :class:`ConditionError` if invalid.

    ``roots`` restricts the first name of every path, ``fields`` the second
    name under some roots (typos are caught at load). With ``roots``, the
    context must hold every root (``ctx[root]``); without, a missing root is null.
    With ``on_error``, an exception while the function runs (say a
    ``RecursionError`` comparing absurdly nested payload values) is passed
    to it and the function gives null instead of raising.
    """
    if not isinstance(text, str):
        raise ConditionError(f"an expression must be a string, not {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ConditionError(f"expression longer than {MAX_TEXT} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid expression: {exc.msg}") from None
    except (ValueError, OverflowError) as exc:
        raise ConditionError(f"not a valid expression: {exc}") from None
    except (RecursionError, MemoryError):
        raise ConditionError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    _check_size(tree.body)
    source = _Translator(roots, fields or {}).expr(tree.body)
    namespace: dict[str, Any] = dict(_RUNTIME)
    if on_error is None:
        code = f"def _condition(ctx):\n    return {source}\n"
    else:
        namespace["_on_error"] = on_error
        code = (
            f"def _condition(ctx):\n    try:\n        return {source}\n"
            "    except _Exception as exc:\n        _on_error(exc)\n        return None\n"
        )
    try:
        exec(compile(code, f"<rule {text[:60]!r}>", "exec"), namespace)  # noqa: S102 - from a checked AST
    except (SyntaxError, RecursionError, MemoryError):  # a limit of Python's compiler: too deep after all
        raise ConditionError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    function: Condition = namespace["_condition"]
    return function


def _check_size(root: ast.AST) -> None:
    """Reject an expression over :data:`MAX_NODES` nodes or :data:`MAX_DEPTH` levels (without recursing)."""
    nodes = 0
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr_context | ast.operator | ast.boolop | ast.unaryop | ast.cmpop):
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise ConditionError(f"expression larger than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise ConditionError(f"expression nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


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
            for operand in (node.left, node.right):
                kind = _kind(operand)
                if kind in ("string", "list"):
                    symbol = _ARITH_SYMBOL[type(node.op)]
                    raise ConditionError(f"{symbol!r} works on numbers only, not on a {kind}")
            return f"{_ARITH[type(node.op)]}({self.expr(node.left)}, {self.expr(node.right)})"
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
            return repr(_checked_constant(node.value))
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


def _kind(node: ast.AST) -> str:
    """What an operand is known to be at load: ``string``, ``list``, ``number`` or ``unknown`` (a path)."""
    if isinstance(node, ast.Constant):
        return "string" if isinstance(node.value, str) else "number" if isinstance(node.value, int | float) else "other"
    if isinstance(node, ast.List | ast.Tuple):
        return "list"
    if isinstance(node, ast.BoolOp):  # gives one of its operands
        kinds = {_kind(value) for value in node.values}
        return kinds.pop() if len(kinds) == 1 else "unknown"
    return "unknown"


def _checked_constant(value: Any) -> Any:
    """A literal within the limits: no ``inf``/``nan``, no integer beyond +-:data:`MAX_INT`."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConditionError("numbers must be finite (no inf or nan)")
    if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise ConditionError(f"integer beyond +-2**63: {str(value)[:20]}...")
    return value


def _literal(node: ast.AST) -> Any:
    """An item of a list literal: a constant only (``["delayed", "failed"]``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
        return _checked_constant(node.value)
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


# Arithmetic: numbers only (a str or list operand gives null: no repetition, no
# concatenation), integer results within +-MAX_INT. ``type(x) in _NUMBERS`` is the
# cheapest exact check (a subclass of int or str from a payload never gets here).


def _add(a: Any, b: Any) -> Any:
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        r = a + b
        return r if type(r) is float or -MAX_INT <= r <= MAX_INT else None
    return None


def _sub(a: Any, b: Any) -> Any:
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        r = a - b
        return r if type(r) is float or -MAX_INT <= r <= MAX_INT else None
    return None


def _mul(a: Any, b: Any) -> Any:
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        r = a * b
        return r if type(r) is float or -MAX_INT <= r <= MAX_INT else None
    return None


def _div(a: Any, b: Any) -> Any:
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        try:
            return a / b
        except (ZeroDivisionError, OverflowError):
            return None
    return None


def _neg(value: Any) -> Any:
    return -value if type(value) in _NUMBERS else None


_NUMBERS = frozenset({int, float, bool})
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_RUNTIME = {
    "__builtins__": {}, "isinstance": isinstance, "type": type, "dict": dict, "_NUMBERS": _NUMBERS,
    "_Exception": Exception, "_cmp": _cmp, "_in": _in, "_not_in": _not_in,
    "_add": _add, "_sub": _sub, "_mul": _mul, "_div": _div, "_neg": _neg,
}  # fmt: skip
"""All a compiled condition can reach: no builtins beyond these."""
