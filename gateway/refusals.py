"""A bound on what refused callers can write to the audit trail: per address and per claimed subject, per minute.

Every refusal is audited (a bad token, a role that may not, a bad identifier, a
customer or queue not yours), but a caller who is refused again and again must
not be able to fill the trail and push older entries out of it (``MAXLEN``):
each caller may write at most ``gateway_audit_refusals_per_min`` refusal
entries per minute. A caller with a verified token -- or a refused one whose
signature verifies (expired, not yet valid, bad claims: it proves its subject;
break-test 12j, J6) -- is counted by its subject alone, in a table of its own:
nobody else's traffic -- tokenless requests from
the same address (a NAT, the reverse proxy), or forged tokens claiming its
name -- can spend its budget and silence its refusals (break-test 12c, C2). A
caller without one is counted both by its address (the TCP peer) and by the
subject its token only claims, so neither a fresh address nor a fresh made-up
subject resets the count on its own; and all of them together by one shared
count of :data:`UNVERIFIED_SHARE` times the bound, so rotating addresses and
subjects at once (IPv6, proxies) does not either (break-test 12c, C3). Past
the bound, in that minute:

* the first refusal over it writes one summarising entry in its place
  (action ``refusals_over_limit``, the caller's address and subject, the
  bound) -- one per caller and window; callers without a valid token write
  at most :data:`UNVERIFIED_SUMMARIES` such entries a window between them
  all, then one aggregate entry (``who`` and ``source`` ``*``) saying that
  more passed the bound, so made-up subjects (free to invent, one summary
  each) cannot grow the trail with the request rate either (break-test
  12h, H2): per process and minute, callers without a valid token write at
  most :data:`UNVERIFIED_SHARE` times the bound + :data:`UNVERIFIED_SUMMARIES`
  + 1 entries, whatever their number;
* none of them is written as itself; each is counted:
  ``livesignals_gateway_refusals_unaudited_total{limit="source"|"subject"|"unverified"}``
  (and ``livesignals_gateway_access_total`` as every denial).

Allowed reads are never held back. The count is per process (``--workers N``:
at most N times the bound) and forgets a caller when its window ends. At most
:data:`MAX_CALLERS` callers are counted per window; beyond, new ones share
one count, so a flood of addresses cannot grow the table.

>>> budget = RefusalBudget(2, clock=lambda: 0.0)
>>> [budget.admit("10.0.0.9", "a7") for _ in range(4)]
['write', 'write', 'summarise', 'count']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from livesignals import metrics

MAX_CALLERS: Final = 50_000
"""Callers (addresses and subjects) counted separately in one window."""
WINDOW_S: Final = 60.0
UNVERIFIED_SHARE: Final = 10
"""Callers without a valid token write at most this many times the per-caller bound of refusal entries per
window between them all (per process)."""
UNVERIFIED_SUMMARIES: Final = 10
"""Summarising entries callers without a valid token write per window between them all (per process); past
them, one aggregate entry."""
SUMMARY_ACTION: Final = "refusals_over_limit"
"""The audit action of a summarising entry (and of the aggregate one)."""

Admission = Literal["write", "summarise", "aggregate", "count"]


class WindowCounts:
    """Counts per caller in fixed windows of ``window_s`` seconds (per process, thread-safe): the counter
    :class:`RefusalBudget` and :class:`CallerRate` are built on. At most :data:`MAX_CALLERS` callers are
    counted apart; beyond, a newcomer ``(kind, name)`` shares the count of ``(kind, "*")``.
    ``clock``: seconds, injected by tests.

    >>> counts = WindowCounts(2, clock=lambda: 0.0)
    >>> counts.count([("source", "10.0.0.1"), ("subject", "a7")]), counts.count([("subject", "a7")])
    ([1, 1], [2])
    """

    def __init__(
        self, per_window: int, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self.clock = clock
        self._window = -1
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def count(self, callers: list[tuple[str, str]]) -> list[int]:
        """Count one more for each caller (in one step); each one's count in the current window."""
        out = []
        with self._lock:
            window = int(self.clock() // self.window_s)
            if window != self._window:
                self._window, self._counts = window, {}
            for caller in callers:
                if caller not in self._counts and len(self._counts) >= MAX_CALLERS:
                    caller = (caller[0], "*")  # the table is full: newcomers share one count
                n = self._counts[caller] = self._counts.get(caller, 0) + 1
                out.append(n)
        return out


class RefusalBudget(WindowCounts):
    """How many refusal entries each caller has written in the current window (see the module docstring);
    thread-safe (reads are answered in a thread pool). ``clock``: seconds, injected by tests.

    >>> budget = RefusalBudget(1, clock=lambda: 0.0)
    >>> budget.admit("10.0.0.9", "-"), budget.admit("10.0.0.9", "a7", verified=True)
    ('write', 'write')
    """

    def __init__(
        self, per_window: int, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(per_window, window_s, clock)
        self._verified = WindowCounts(per_window, window_s, clock=lambda: self.clock())
        """Verified subjects: a table only signed tokens add to (a flood of made-up names cannot fill it)."""
        self._unverified = WindowCounts(per_window * UNVERIFIED_SHARE, window_s, clock=lambda: self.clock())
        """Every caller without a valid token, together."""
        self._summaries = WindowCounts(UNVERIFIED_SUMMARIES, window_s, clock=lambda: self.clock())
        """Summaries written for callers without a valid token, together."""

    def admit(self, source: str, subject: str, verified: bool = False) -> Admission:
        """Count one refusal of the caller at ``source`` naming ``subject`` (``-``: none; ``verified``: the
        subject of a valid token, counted alone): ``write`` it, ``summarise`` (the caller just passed the bound:
        write one entry saying so), ``aggregate`` (one more caller without a valid token passed it, and their
        summaries are past :data:`UNVERIFIED_SUMMARIES` this window: write the one entry saying so), or only
        ``count`` it."""
        if verified:
            callers, counts = [("subject", subject)], self._verified.count([("subject", subject)])
        else:
            callers = [("source", source)] + ([("subject", subject)] if subject and subject != "-" else [])
            counts = self.count(callers)
            (together,) = self._unverified.count([("unverified", "*")])
            if together > self._unverified.per_window:  # over the shared bound: one summary, when first passed
                first = together == self._unverified.per_window + 1
                callers, counts = [*callers, ("unverified", "*")], [*counts, self.per_window + (1 if first else 2)]
        seen = zip((kind for kind, _ in callers), counts, strict=True)
        over = [(kind, n) for kind, n in seen if n > self.per_window]
        if not over:
            return "write"
        metrics.GATEWAY_REFUSALS_UNAUDITED.labels(over[0][0]).inc()
        if not any(n == self.per_window + 1 for _, n in over):
            return "count"
        if verified:
            return "summarise"
        (summaries,) = self._summaries.count([("unverified", "*")])
        if summaries <= UNVERIFIED_SUMMARIES:
            return "summarise"
        return "aggregate" if summaries == UNVERIFIED_SUMMARIES + 1 else "count"


def record_refusal(
    audit: Any,
    budget: RefusalBudget,
    source: str,
    who: str,
    role: str,
    action: str,
    asked: str,
    resolved: str | None,
    reason: str,
    signed: bool = False,
    **refused: str,
) -> None:
    """Audit one refusal (``audit``: :class:`gateway.audit.AuditLog`) within the caller's budget: the entry,
    a summarising entry in its place, or only the metrics. ``who``: the verified subject, else ``-`` and
    ``refused['claimed']`` the subject the token claims; ``signed``: that token's signature verified (expired,
    say), so the claim is proven and counts in the subject's own budget, which forged tokens cannot spend
    (break-test 12j, J6: 700 forged requests left a replayed expired token's probes unaudited)."""
    subject = who if who != "-" else refused.get("claimed", "-")
    admission = budget.admit(source, subject, verified=who != "-" or (signed and subject != "-"))
    if admission == "write":
        audit.record(who, role, action, asked, resolved, False, reason, **{"source": source, **refused})
        return
    if admission == "summarise":
        note = (f"more than {budget.per_window} refusals in {budget.window_s:g} s from this caller: the rest of "
                f"the window's are counted (livesignals_gateway_refusals_unaudited_total), not written")  # fmt: skip
        audit.append(who, role, SUMMARY_ACTION, "-", False, note, **{"source": source, **refused})
    elif admission == "aggregate":
        note = (f"more than {UNVERIFIED_SUMMARIES} callers without a valid token passed {budget.per_window} "
                f"refusals in {budget.window_s:g} s: the rest of the window's callers are counted "
                f"(livesignals_gateway_refusals_unaudited_total), not summarised")  # fmt: skip
        audit.append("*", role, SUMMARY_ACTION, "-", False, note, source="*", claimed="*")
    metrics.GATEWAY_DECISIONS.labels(action, "denied").inc()


class CallerRate(WindowCounts):
    """At most ``per_window`` actions per caller (a token subject) per window (fixed windows, per process;
    at most :data:`MAX_CALLERS` callers counted apart, newcomers beyond share one count): the push route
    uses it to bound how often one caller opens subscriptions, each of which reads and audits its customers.

    >>> rate = CallerRate(2, clock=lambda: 0.0)
    >>> [rate.allow("a7") for _ in range(3)], rate.allow("a8")
    ([True, True, False], True)
    """

    def allow(self, caller: str) -> bool:
        """Count one action of ``caller``; False once it is past the bound in this window."""
        return self.count([("subject", caller)])[0] <= self.per_window


class AuditedInWindow:
    """Which customers each caller was already audited as receiving through a followed queue in the current
    window (per process, thread-safe): a caller re-opening its queue streams is not audited again for the
    same customers, however many connections it opens (break-test 12d, D1). At most ``max_pairs`` pairs a
    window are remembered; beyond, a pair counts as new (audited again, never the other way).

    >>> seen = AuditedInWindow(clock=lambda: 0.0)
    >>> seen.first("a7", "customer_id:c1"), seen.first("a7", "customer_id:c1"), seen.first("a8", "customer_id:c1")
    (True, False, True)
    """

    def __init__(
        self, window_s: float = WINDOW_S, max_pairs: int = 20 * MAX_CALLERS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.max_pairs = max_pairs
        self.clock = clock
        self._window = -1
        self._pairs: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def first(self, caller: str, customer: str) -> bool:
        """True the first time in this window ``caller`` is seen with ``customer`` (and remember it)."""
        with self._lock:
            window = int(self.clock() // self.window_s)
            if window != self._window:
                self._window, self._pairs = window, set()
            pair = (caller, customer)
            if pair in self._pairs:
                return False
            if len(self._pairs) < self.max_pairs:
                self._pairs.add(pair)
            return True
