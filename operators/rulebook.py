"""Declarative flags from a TOML rules file, with hysteresis, validated at load, reloadable.

A business analyst writes::

    [[flag]]
    name = "vip_stuck"
    severity = "warning"
    raise_when = "derived.vip and w1h.errors >= 2"
    clear_when = "w1h.errors == 0"
    ttl_hours = 4
    reason = "valuable customer stuck: errors in the last hour"

``raise_when`` raises the flag (once while it is active); ``clear_when``
clears it (hysteresis: a flag raised at ``errors >= 2`` stays until ``errors ==
0``, so it does not flap); without ``clear_when`` the flag lasts ``ttl_hours``.
Conditions use :mod:`operators.expressions` over the names in
:data:`ROOTS`. A malformed file is rejected with the line of the error, and
the rules in force stay in force (:class:`RulebookSource`).
"""

from __future__ import annotations

import logging
import os
import re
import time
import tomllib
from dataclasses import dataclass
from typing import Any

from livesignals.contract import Event
from operators import views
from operators.expressions import Condition, ConditionError, compile_condition
from operators.profile import CustomerState
from operators.signals import Flag, new_flag

log = logging.getLogger(__name__)

ROOTS = frozenset({
    "event", "identity", "activity", "history", "value", "consent", "flags", "predictions",
    "w1h", "w24h", "w7d", "w30d", "rfm", "derived",
})  # fmt: skip
"""What a condition can read (windows as ``w1h``/``w24h``/``w7d``/``w30d``)."""

SEVERITIES = frozenset({"info", "warning", "critical"})
_FLAG_KEYS = {"name", "severity", "raise_when", "clear_when", "ttl_hours", "reason"}


class RulebookError(ValueError):
    """A rules file that cannot be used; the message names the line."""


@dataclass(frozen=True)
class FlagRule:
    """One declared flag."""

    name: str
    severity: str
    raise_when: Condition
    clear_when: Condition | None
    ttl_ms: int
    reason: str


@dataclass(frozen=True)
class Rulebook:
    """The flags of one rules file."""

    flags: tuple[FlagRule, ...]
    source: str = ""

    @classmethod
    def parse(cls, text: str, source: str = "<rules>") -> Rulebook:
        """Validate and compile a rules file, or raise :class:`RulebookError` naming the line."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulebookError(f"{source}: {exc}") from None
        unknown = set(doc) - {"flag"}
        if unknown:
            raise RulebookError(f"{source}:{_line_of(text, sorted(unknown)[0])}: unknown table {sorted(unknown)[0]!r}")
        rules, seen = [], set()
        for i, table in enumerate(doc.get("flag", [])):
            name = table.get("name")
            where = f"{source}:{_line_of(text, repr_value(name)) if name else _nth_table_line(text, i)}"
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
                raise RulebookError(f"{where}: flag needs a name of lower-case letters, digits and _")
            if name in seen:
                raise RulebookError(f"{where}: flag {name!r} is declared twice")
            seen.add(name)
            extra = set(table) - _FLAG_KEYS
            if extra:
                raise RulebookError(f"{where}: flag {name!r}: unknown keys {sorted(extra)}")
            if table.get("severity", "warning") not in SEVERITIES:
                raise RulebookError(f"{where}: flag {name!r}: severity must be one of {sorted(SEVERITIES)}")
            rules.append(
                FlagRule(
                    name=name,
                    severity=table.get("severity", "warning"),
                    raise_when=_condition(table, "raise_when", text, source, name, required=True),  # type: ignore[arg-type]
                    clear_when=_condition(table, "clear_when", text, source, name, required=False),
                    ttl_ms=int(float(table.get("ttl_hours", 24)) * 3_600_000),
                    reason=str(table.get("reason", name.replace("_", " "))),
                )
            )
        return cls(tuple(rules), source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rulebook:
        """Read and validate a rules file."""
        with open(path, encoding="utf-8") as fh:
            return cls.parse(fh.read(), str(path))

    def evaluate(self, state: CustomerState, event: Event) -> tuple[list[Flag], list[Flag]]:
        """Flags this event raises and flags it clears (both deduplicated against the state)."""
        if not self.flags:
            return [], []
        ctx = context(state, event)
        now = event.event_time_ms
        raised, cleared = [], []
        for rule in self.flags:
            active = state.flags.get(rule.name)
            is_active = active is not None and active["expires_at"] > now
            if not is_active and rule.raise_when(ctx):
                flag = new_flag(event, rule.name, rule.severity, rule.reason, rule.ttl_ms)
                state.flags[rule.name] = {"id": flag.flag_id, "severity": flag.severity,
                                          "raised_at": flag.raised_at_ms, "expires_at": flag.expires_at_ms}  # fmt: skip
                raised.append(flag)
            elif is_active and rule.clear_when is not None and rule.clear_when(ctx):
                del state.flags[rule.name]
                cleared.append(new_flag(event, rule.name, "info", f"cleared: {rule.reason}", 0, cleared=True))
        return raised, cleared


def repr_value(value: Any) -> str:
    """How a string value appears in TOML (to find its line)."""
    return f'"{value}"'


def _condition(table: dict[str, Any], key: str, text: str, source: str, name: str, required: bool) -> Condition | None:
    expr = table.get(key)
    if expr is None:
        if required:
            raise RulebookError(f"{source}:{_line_of(text, repr_value(name))}: flag {name!r} needs {key}")
        return None
    try:
        return compile_condition(str(expr), ROOTS)
    except ConditionError as exc:
        raise RulebookError(f"{source}:{_line_of(text, str(expr))}: flag {name!r}: {key}: {exc}") from None


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 1


def _nth_table_line(text: str, index: int) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == "[[flag]]"]
    return lines[index] if index < len(lines) else 1


class _Lazy(dict[str, Any]):
    """A context entry computed only when a condition reads it, then kept for the event."""

    def __init__(self, compute: Any, missing: Any = None) -> None:
        super().__init__()
        self._compute = compute
        self._missing = missing
        self._value: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        if self._value is None:
            self._value = self._compute()
        return self._value.get(key, self._missing)


class _LazyFields(dict[str, Any]):
    """Each field computed on first read (conditions usually read one or two)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self._fields = fields
        self._values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._values:
            compute = self._fields.get(key)
            self._values[key] = compute() if compute is not None else default
        return self._values[key]


def context(state: CustomerState, event: Event) -> dict[str, Any]:
    """What a condition sees for this event (windows, RFM and derived values computed on demand)."""
    now = event.event_time_ms

    def oldest_case_days() -> float:
        cases = state.activity.get("open_cases", {}).values()
        return max(((now - c["opened"]) / 86_400_000 for c in cases), default=0.0)

    def vip() -> bool:
        loyalty = state.value.get("loyalty") or {}
        return state.value.get("spend", 0.0) >= 2000 or loyalty.get("tier") in ("gold", "platinum")

    derived = _LazyFields({
        "lifetime_value": lambda: views.lifetime_value(state, now),
        "cart_abandoned": lambda: views.cart_abandoned(state, now) is not None,
        "oldest_case_days": oldest_case_days,
        "vip": vip,
    })  # fmt: skip

    def window(name: str) -> _Lazy:
        return _Lazy(lambda: state.windows.totals(name, now), missing=0)  # no events: 0, not null

    return {
        "event": {"type": event.type, "channel": event.channel, "payload": event.payload},
        "identity": state.identity, "activity": state.activity, "history": state.history,
        "value": state.value, "consent": state.consent, "flags": state.flags,
        "predictions": state.predictions,
        "w1h": window("1h"), "w24h": window("24h"), "w7d": window("7d"), "w30d": window("30d"),
        "rfm": _Lazy(lambda: views.rfm(state, now)), "derived": derived,
    }  # fmt: skip


class RulebookSource:
    """The rules in force, reloaded when the file changes; a bad file keeps the old rules."""

    def __init__(self, path: str | None, check_every_s: float = 5.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self.rulebook = Rulebook.load(path) if path else Rulebook(())
        self.last_error: str | None = None
        self._mtime = os.stat(path).st_mtime if path else 0.0
        self._checked = time.monotonic()

    def current(self) -> Rulebook:
        """The rules in force (checking the file at most every ``check_every_s``)."""
        now = time.monotonic()
        if self.path and now - self._checked >= self.check_every_s:
            self._checked = now
            self.reload_if_changed()
        return self.rulebook

    def reload_if_changed(self) -> bool:
        """Reload now if the file changed; True when new rules took effect."""
        if not self.path:
            return False
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            self.last_error = f"{self.path}: {exc}"
            log.error("rules file unreadable, keeping the rules in force: %s", self.last_error)
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            self.rulebook = Rulebook.load(self.path)
        except RulebookError as exc:
            self.last_error = str(exc)
            log.error("rules file rejected, keeping the rules in force: %s", exc)
            return False
        self.last_error = None
        log.info("rules reloaded from %s: %d flags", self.path, len(self.rulebook.flags))
        return True
