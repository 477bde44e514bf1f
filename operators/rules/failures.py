"""A rule that raises while it runs: counted, logged once, taken as false -- never a failed batch.

The limits of the language make failures rare (see :mod:`operators.rules.expressions`),
but a payload can still hold values Python cannot compare (nested thousands of
levels deep, say). Every compiled piece of a rule gets :func:`counted_errors`
as its error handler: the failure is counted in ``livesignals_rule_errors_total``
by rule kind and name (a bounded set: the rules file's names), its first
occurrence per rule and key is logged with the cause's exception type (never its
message, which may quote a payload value: log lines carry no message body), and
the piece gives null.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from livesignals import metrics
from operators.rules.expressions import OnError

log = logging.getLogger(__name__)

MAX_LOGGED = 1000
"""Most distinct (kind, rule, key) failures logged per process (each once)."""

_logged: set[tuple[str, str, str]] = set()
TALLY = [0]
"""How many rule failures this process has seen, in a one-item list: :meth:`Rulebook.evaluate
<operators.rules.rulebook.Rulebook.evaluate>` reads ``TALLY[0]`` around each tracked rule without a call."""
_uncounted = False


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Rules run again for events already counted (an undo's re-applied events): no metric, no log."""
    global _uncounted
    before, _uncounted = _uncounted, True
    try:
        yield
    finally:
        _uncounted = before


def counting() -> bool:
    """False inside :func:`uncounted`."""
    return not _uncounted


def failures_so_far() -> int:
    """How many rule failures this process has seen (a rule that failed is evaluated again next time)."""
    return TALLY[0]


def rule_failed(kind: str, name: str, key: str, exc: BaseException) -> None:
    """Count a rule that raised while it ran; log its first failure per rule and key, with the cause's type.

    The exception's message is not logged: it may quote a value of the event.
    """
    TALLY[0] += 1
    if _uncounted:
        return
    metrics.RULE_ERRORS.labels(kind, name).inc()
    if (kind, name, key) not in _logged and len(_logged) < MAX_LOGGED:
        _logged.add((kind, name, key))
        log.warning("%s %r: %s raised %s (taken as false; counted in livesignals_rule_errors_total)",
                    kind, name, key, type(exc).__name__)  # fmt: skip


def counted_errors(kind: str, name: str, key: str) -> OnError:
    """The error handler of one compiled piece of a rule (``raise_when``, ``reason`` ...)."""
    return lambda exc: rule_failed(kind, name, key, exc)
