"""The rules file: declarative flags and next-best actions, validated at load, reloadable.

A business analyst writes::

    [[flag]]
    name = "vip_stuck"
    severity = "warning"
    raise_when = "derived.vip and w1h.errors >= 2"
    clear_when = "w1h.errors == 0"
    ttl_hours = 4
    reason = "valuable customer stuck: {w1h.errors} errors in the last hour"
    evidence = ["derived.context_carried"]

    [[action]]
    name = "retention_offer"
    purpose = "marketing"
    eligible_when = "predictions.churn.p >= 0.5"
    value = "derived.lifetime_value * 0.2"
    weight = 1.0
    cooldown_hours = 72
    reason = "churn risk {predictions.churn.p:.0%}"

A flag is raised when ``raise_when`` holds (once while it is active) and
cleared when ``clear_when`` holds (hysteresis: raised at ``errors >= 2``, it
stays until ``errors == 0``, so it does not flap) or, lazily, by the first
event after its ``ttl_hours``. Both raise and clear are published.

An action is a *candidate* for the customer while ``eligible_when`` holds
and it was not proposed within ``cooldown_hours``; :mod:`operators.decisions.actions`
ranks the candidates by propensity x ``value`` x ``weight``.

Conditions use :mod:`operators.rules.expressions` over :data:`ROOTS`
(:mod:`operators.rules.context` lists the ``derived`` values); reasons use
:mod:`operators.rules.templates`. A malformed file is rejected with the line of
the error, and the rules in force stay in force
(:class:`operators.rules.rulebook_source.RulebookSource`).

Whatever the file holds, loading it either succeeds or raises
:class:`RulebookError` (``rules.toml:LINE: ...``; see
:mod:`operators.rules.rules_file` for the file itself and the limits in
:mod:`operators.rules.expressions` and :mod:`operators.rules.templates`). A
rule that raises while it runs is counted in
``livesignals_rule_errors_total``, logged once, and taken as false: it never
fails the batch.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from livesignals import metrics
from livesignals.contract import Event
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import printable
from operators.profile360.update import MAX_FLAGS
from operators.rules import plans, rules_file
from operators.rules.context import kind_of
from operators.rules.dependencies import RuleMemo
from operators.rules.failures import TALLY, counting, rule_failed
from operators.rules.reader import (  # the rule types and the names conditions read: re-exported
    FIELDS,
    ROOTS,
    ActionRule,
    FlagRule,
    Reader,
)
from operators.rules.rules_file import RulebookError
from operators.rules.signals import Flag, new_flag
from operators.rules.templates import clip, evidence_items

log = logging.getLogger(__name__)

_RANK = {"info": 1, "warning": 2, "critical": 3}
MAX_STORED_REASON = 200
"""A raised flag's reason as the profile keeps it, in characters (the published flag has it whole)."""
MAX_RULES = 256
"""Most ``[[flag]]`` and most ``[[action]]`` tables in one file: every rule runs for every event."""
__all__ = ["FIELDS", "ROOTS", "ActionRule", "FlagRule", "Rulebook", "RulebookError"]

MAX_STORED_EVIDENCE = 100
"""An evidence item as the profile keeps it, in characters (the published flag has it whole): with
:data:`FLAG_EVIDENCE_KEPT` it bounds a profile's flags in bytes (``state/keys.py``)."""
FLAG_EVIDENCE_KEPT = 5
"""Evidence items (each <= 200 characters) a raised flag keeps in the profile, for the 360 and the agent
desktop: the raising event first. The published flag carries all of them."""


@dataclass(frozen=True)
class Rulebook:
    """The flags and actions of one rules file."""

    flags: tuple[FlagRule, ...]
    actions: tuple[ActionRule, ...] = ()
    source: str = ""
    token: int = field(default_factory=itertools.count().__next__, compare=False)
    """Unique per rulebook built: a customer's :class:`RuleMemo` holds for this one only."""
    _plans: dict[Any, plans.Plan] = field(default_factory=dict, init=False, compare=False, repr=False)
    """:meth:`_plan`'s memo."""
    _verdicts: dict[Any, tuple[tuple[bool, bool], ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    """Per event kind, :func:`operators.rules.plans.verdicts` (plans of one kind share them)."""
    _tracked: int = field(default=0, init=False, compare=False, repr=False)
    """How many flag rules are tracked (their inputs known)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tracked", sum(1 for rule in self.flags if rule.inputs is not None))

    @classmethod
    def parse(cls, text: str, source: str = "<rules>") -> Rulebook:
        """Validate and compile a rules file, or raise :class:`RulebookError` naming the line."""
        doc = rules_file.parse_toml(text, source)
        unknown = set(doc) - {"flag", "action"}
        if unknown:
            raise RulebookError(
                f"{source}:{rules_file.line_of(text, sorted(unknown)[0])}: unknown table {sorted(unknown)[0]!r}"
            )
        reader = Reader(text, source)
        found = {kind: rules_file.tables(doc, kind, source, text) for kind in ("flag", "action")}
        for kind, tables in found.items():
            if len(tables) > MAX_RULES:
                line = reader.lines.table_line(kind, MAX_RULES)
                raise RulebookError(f"{source}:{line}: more than {MAX_RULES} [[{kind}]] tables (at most {MAX_RULES})")
        try:
            flags = tuple(reader.flag(t, i) for i, t in enumerate(found["flag"]))
            actions = tuple(reader.action(t, i) for i, t in enumerate(found["action"]))
        except (RecursionError, MemoryError) as exc:  # the limits should make this impossible; say where anyway
            raise RulebookError(f"{source}:1: rules too large to compile ({type(exc).__name__})") from None
        return cls(flags, actions, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rulebook:
        """Read and validate a rules file (:func:`operators.rules.rules_file.read_file` limits it)."""
        return cls.parse(rules_file.read_file(path), str(path))

    def evaluate(
        self, state: CustomerState, event: Event, ctx: dict[str, Any], changed: frozenset[str] | None = None
    ) -> list[Flag]:
        """Flags this event raises or clears, deduplicated against the state (which it updates).

        ``ctx`` is :func:`operators.rules.context.context` for this event. ``changed``: the tracked
        inputs the event changed (:func:`operators.rules.dependencies.changed_by`); a rule whose
        inputs it misses and that was stable is skipped, and, with a context built by
        :func:`~operators.rules.context.context`, a condition the event's kind makes false is not run
        (:mod:`operators.rules.guards`): the same flags either way. None: every rule runs (no memo kept).
        """
        now = event.event_time_ms
        out: list[Flag] = []
        memo = state.rules_memo if changed is not None and state.erased is None else None
        known = memo.stable if memo is not None and memo.rulebook == self.token else {}
        flags = state.flags
        bare = not flags
        plan = self._plan(changed, ctx, bare)
        stable: dict[str, str | None]
        if bare and known and memo is not None and memo.quiet:  # what the memo skips is known at once
            steps, stable = plan.quiet_steps, dict(plan.quiet_stable)
        else:
            steps, stable = plan.steps, {}
        for rule, skippable, raise_false, clear_false, tracked in steps:
            name = rule.name
            try:  # free unless it raises; state.flags changes only once all is computed
                active = flags.get(name)
                if active is not None:
                    if active["expires_at"] <= now:  # lazy expiry: say it is over
                        expired = new_flag(event, name, "info", clip(f"expired: {active.get('reason', name)}"),
                                           0, cleared=True)  # fmt: skip
                        del flags[name]
                        out.append(expired)
                        active = None
                    elif skippable and name in known and known[name] == active.get("id"):
                        stable[name] = known[name]  # nothing it reads changed since it last ran
                        continue
                elif skippable and name in known and known[name] is None:
                    stable[name] = None
                    continue
                # Stable (memo entry): it raised, cleared and held back nothing, and failed nothing.
                if active is None:
                    if raise_false:  # false for this kind of event: as if it ran
                        if tracked:
                            stable[name] = None
                        continue
                    failed = TALLY[0] if tracked else 0
                    if rule.raise_when(ctx):
                        if self._room_for(state, event, rule, out):
                            out.append(self._raise(state, event, rule, ctx))
                        continue  # raised or held back
                    if tracked and TALLY[0] == failed:
                        stable[name] = None
                else:
                    if clear_false:  # no clear_when, or false for this kind of event
                        if tracked:
                            stable[name] = active.get("id")
                        continue
                    failed = TALLY[0] if tracked else 0
                    if rule.clear_when(ctx):  # type: ignore[misc]  # not None: clear_false is
                        cleared = new_flag(event, name, "info", clip(f"cleared: {active.get('reason', name)}"),
                                           0, cleared=True)  # fmt: skip
                        del flags[name]
                        out.append(cleared)
                    elif tracked and TALLY[0] == failed:
                        stable[name] = active.get("id")
            except Exception as exc:  # a rule that fails is false for this event; the batch goes on
                rule_failed("flag", name, "evaluate", exc)
        if changed is None:
            state.rules_memo = None
            return out
        quiet = bare and len(stable) == self._tracked  # every tracked rule stable with no flag
        kept = state.rules_memo
        if isinstance(kept, RuleMemo):  # reused: one object fewer per event
            kept.rulebook, kept.stable, kept.at, kept.quiet = self.token, stable, now, quiet
        else:
            state.rules_memo = RuleMemo(self.token, stable, now, quiet)
        return out

    def _plan(self, changed: frozenset[str] | None, ctx: dict[str, Any], bare: bool) -> plans.Plan:
        """:func:`operators.rules.plans.plan` for this event, memoised (an event changes one of a few
        sets of inputs, and kinds are few); a kind only on the dependency-aware path (``changed``)
        and for a context :func:`~operators.rules.context.context` built."""
        kind = None if changed is None else kind_of(ctx)  # None: every rule runs, as it reads
        key = (changed, kind, bare)
        found = self._plans.get(key)
        if found is None:
            falsity = None if kind is None else self._verdicts.get(kind)
            if kind is not None and falsity is None:
                falsity = plans.verdicts(self.flags, kind)
                if len(self._verdicts) < 1024:
                    self._verdicts[kind] = falsity
            found = plans.plan(self.flags, changed, falsity, bare)
            if len(self._plans) < 1024:
                self._plans[key] = found
        return found

    @staticmethod
    def _raise(state: CustomerState, event: Event, rule: FlagRule, ctx: dict[str, Any]) -> Flag:
        """Raise ``rule``'s flag: published whole, kept in the profile clipped."""
        reason = rule.reason.render(ctx)
        evidence = (event.event_id, *evidence_items([read(ctx) for read in rule.evidence]))
        flag = new_flag(event, rule.name, rule.severity, reason, rule.ttl_ms, evidence=evidence)
        kept = flag.evidence[:FLAG_EVIDENCE_KEPT]  # without controls: 4 bytes a character at most
        state.flags[rule.name] = {
            "id": flag.flag_id, "severity": flag.severity,
            "reason": clip(printable(reason), MAX_STORED_REASON),
            "raised_at": flag.raised_at_ms, "expires_at": flag.expires_at_ms,
            "evidence": [clip(printable(e), MAX_STORED_EVIDENCE) for e in kept],
        }  # fmt: skip
        return flag

    @staticmethod
    def _room_for(state: CustomerState, event: Event, rule: FlagRule, out: list[Flag]) -> bool:
        """Whether ``rule`` may raise now: a profile holds at most :data:`MAX_FLAGS` raised flags.

        When full, the new flag takes the place of the weakest raised one (lowest
        severity, then the most recently raised) only if it is strictly more
        severe -- that one is published as cleared; otherwise it is held back and
        counted in ``livesignals_flags_held_back_total{flag}``. Raised flags stay
        raised while their conditions hold: no raise/clear churn however many
        rules hold (each displacement raises the total severity, so they end).
        """
        flags = state.flags
        if len(flags) < MAX_FLAGS:
            return True
        weakest = min(flags, key=lambda n: (_RANK.get(str(flags[n].get("severity")), 0), -flags[n].get("raised_at", 0)))
        if _RANK[rule.severity] <= _RANK.get(str(flags[weakest].get("severity")), 0):
            if counting():  # not again when an undo re-applies the event
                metrics.FLAGS_HELD_BACK.labels(rule.name).inc()
            return False
        shown = clip(f"displaced by {rule.name}: {flags[weakest].get('reason', weakest)}")
        out.append(new_flag(event, weakest, "info", shown, 0, cleared=True))
        del flags[weakest]
        return True
