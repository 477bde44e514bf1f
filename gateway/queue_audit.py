"""Who was shown which customer through a followed queue: audited one by one up to a bound, then by name in
batches, in bounded space (break-tests 12d D1, 12e E2, 12f F3).

A push connection that follows a queue (not named customers) is shown every customer waiting in it. Each
customer is audited the first time a caller receives it in a minute, whatever the connections
(:class:`gateway.refusals.AuditedInWindow`): up to ``gateway_queue_audited_per_min`` one entry each. Past
that bound -- an outsider opening hundreds of anonymous chats a minute decides when -- the customers are
still shown and still named: their pseudonyms are gathered per caller and written :data:`BATCH` to an entry
(action ``push``, ``customer`` the caller's queues, field ``customers`` the pseudonyms, space-separated), at
most :data:`MAX_BATCHES` entries per caller and minute; beyond that they are only counted
(``livesignals_gateway_push_over_rate_total``) and the minute's last entry says how many went unnamed. A
batch not yet full is written when the caller's minute turns (at its next delivery past the bound, or a
keep-alive of a queue stream) or when one of its connections closes. So one caller writes at most
``gateway_queue_audited_per_min`` + :data:`MAX_BATCHES` + 1 entries a minute and names up to :data:`BATCH` x
:data:`MAX_BATCHES` customers past the bound; what a process held when it died is lost.

>>> names = OverflowNames(batch=2, max_batches=2, clock=lambda: 0.0)
>>> [names.add("a7", c) for c in ("c1", "c2", "c3", "c4", "c5", "c6")]
[None, (['c1', 'c2'], 0), None, (['c3', 'c4'], 0), None, None]
>>> names.flush("a7")
([], 2)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gateway.audit_writer import AuditWriter
from gateway.auth import Principal
from gateway.refusals import MAX_CALLERS, WINDOW_S

BATCH: Final = 100
"""Customers named per audit entry past the per-minute bound."""
MAX_BATCHES: Final = 20
"""Such entries per caller and minute; past them customers are counted, not named."""


@dataclass
class _Pending:
    window: int
    names: list[str] = field(default_factory=list)
    written: int = 0
    unnamed: int = 0


class OverflowNames:
    """Per caller, the customers shown past the bound this minute and not yet written (thread-safe, per
    process; at most :data:`gateway.refusals.MAX_CALLERS` callers held)."""

    def __init__(
        self, batch: int = BATCH, max_batches: int = MAX_BATCHES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.batch = batch
        self.max_batches = max_batches
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def add(self, caller: str, name: str) -> tuple[list[str], int] | None:
        """Gather ``name`` for ``caller``: a batch to write now, ``(names, unnamed)``, or ``None``. The batch of a
        minute that has turned is handed back first (``name`` then starts the new minute's)."""
        with self._lock:
            window = int(self.clock() // WINDOW_S)
            pending = self._pending.get(caller)
            out = None
            if pending is not None and pending.window != window:
                out = (pending.names, pending.unnamed) if pending.names or pending.unnamed else None
                pending = None
            if pending is None:
                if len(self._pending) >= MAX_CALLERS:
                    self._pending = {k: p for k, p in self._pending.items() if p.window == window}
                pending = self._pending[caller] = _Pending(window)
            if pending.written >= self.max_batches:
                pending.unnamed += 1
                return out
            pending.names.append(name)
            if len(pending.names) >= self.batch and out is None:
                out, pending.names = (pending.names, 0), []
                pending.written += 1
            return out

    def flush(self, caller: str, turned_only: bool = False) -> tuple[list[str], int] | None:
        """``caller``'s batch not yet written (and the count of customers left unnamed), to write now; with
        ``turned_only``, only once its minute has turned (a keep-alive's check)."""
        with self._lock:
            pending = self._pending.get(caller)
            if pending is None or (turned_only and pending.window == int(self.clock() // WINDOW_S)):
                return None
            if not pending.names and not pending.unnamed:
                return None
            out = (pending.names, pending.unnamed)
            pending.names, pending.unnamed = [], 0
            pending.written += 1
            return out


def write_batch(writer: AuditWriter, principal: Principal, batch: tuple[list[str], int] | None, limit: int) -> None:
    """Hand over one batch of customers shown past the bound: their pseudonyms (the erasure ledger's keyed hash,
    as in ``customer``) in the field ``customers``."""
    if batch is None:
        return
    names, unnamed = batch
    queues = "queue:" + ",".join(sorted(principal.queues))
    reason = f"{len(names)} customers shown through followed queues past {limit} a minute"
    if unnamed:
        reason += f"; {unnamed} more shown, not named"
    audit = writer.audit
    writer.record(principal.subject, principal.role, "push", "#" + audit.pseudonym(queues), None, True, reason,
                  customers=" ".join(audit.pseudonym(n) for n in names))  # fmt: skip
