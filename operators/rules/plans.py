"""Which flag rules an event runs, worked out once per (changed inputs, event kind) and kept.

:meth:`operators.rules.rulebook.Rulebook.evaluate` walks a :class:`Plan`
instead of every rule: each step says whether the customer's
:class:`~operators.rules.dependencies.RuleMemo` may skip the rule (it is
tracked and reads none of the inputs the event changed,
:mod:`operators.rules.dependencies`) and whether its ``raise_when`` and its
``clear_when`` are false for the event's kind (:mod:`operators.rules.guards`).

Most customers have no flag raised and a *quiet* memo (every tracked rule was
stable with no flag): for them :attr:`Plan.quiet_steps` leaves out the rules the
memo skips, and :attr:`Plan.quiet_stable` is what their memo entries would be
(none raised). Without a flag raised when the walk starts, an untracked rule
false for the kind is left out too: a rule raises only its own flag, so none
appears for it while the others run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from operators.rules import guards

if TYPE_CHECKING:
    from operators.rules.rulebook import FlagRule

Step = tuple["FlagRule", bool, bool, bool, bool]
"""A flag rule with: memo-skippable, ``raise_when`` false for the kind, ``clear_when`` none or false for the
kind, tracked (its inputs known: it has memo entries)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps of one (changed inputs, kind, no flag raised yet) evaluation (see the module docstring)."""

    steps: tuple[Step, ...]
    quiet_steps: tuple[Step, ...]
    """The steps left once a quiet memo skipped its rules (only when no flag is raised)."""
    quiet_stable: dict[str, None]
    """The memo entries of the rules a quiet memo skips: stable, no flag. Copy it before changing it."""


def verdicts(rules: Sequence[FlagRule], kind: guards.Kind) -> tuple[tuple[bool, bool], ...]:
    """Per rule: ``raise_when`` false for ``kind``, ``clear_when`` false for it (or none)."""
    return tuple(
        (guards.false_for(r.guards[0], kind), r.clear_when is None or guards.false_for(r.guards[1], kind))
        for r in rules
    )


def plan(
    rules: Sequence[FlagRule],
    changed: frozenset[str] | None,
    falsity: tuple[tuple[bool, bool], ...] | None,
    bare: bool,
) -> Plan:
    """The plan of ``rules`` for an event changing ``changed`` (None: no memo, every rule runs), whose kind
    makes them false as ``falsity`` says (:func:`verdicts`; None: not known, nothing folded), ``bare``: no
    flag raised when it starts."""
    steps = []
    for i, rule in enumerate(rules):
        skippable = changed is not None and rule.inputs is not None and rule.inputs.isdisjoint(changed)
        raise_false, clear_false = (False, rule.clear_when is None) if falsity is None else falsity[i]
        if bare and raise_false and rule.inputs is None:
            continue
        steps.append((rule, skippable, raise_false, clear_false, rule.inputs is not None))
    quiet = tuple(s for s in steps if not s[1]) if bare else tuple(steps)
    return Plan(tuple(steps), quiet, {s[0].name: None for s in steps if s[1]} if bare else {})
