"""Who was shown which customer through a followed queue: one entry per queue, customer and minute, and a
roster of the queue's followers per minute, so the trail grows with the customers, not with desks x customers
(break-tests 12d D1, 12e E2, 12f F3, 12h H3).

A push connection that follows a queue (not named customers) is shown every customer waiting in it. Two kinds
of entries, in ``<prefix>:audit:queues``, answer "who was shown customer X through queue Q":

* **the customer**, once per queue and minute whatever the desks and connections (action ``push``,
  ``customer`` its pseudonym, field ``queue`` the queue, ``who`` the first desk shown it in the minute):
  up to ``gateway_queue_audited_per_min`` customers a queue and minute one entry each. Past that bound --
  an outsider opening hundreds of anonymous chats a minute decides when -- the customers are still shown and
  still named: their pseudonyms are gathered per queue and written :data:`BATCH` to an entry (action
  ``push``, ``customer`` the queue, field ``customers`` the pseudonyms, space-separated), at most
  :data:`MAX_BATCHES` entries per queue and minute; beyond that they are only counted
  (``livesignals_gateway_push_over_rate_total``) and the minute's last entry says how many went unnamed. A
  batch not yet full is written when the queue's minute turns (at its next delivery past the bound, or a
  keep-alive of a queue stream) or when a connection following it closes;
* **the roster**: each desk shown any customer through the queue in a minute, once (action
  ``queue_follow``, ``who`` the desk, ``customer`` the queue).

So the desks shown X through Q are the roster of Q in the minutes of X's entries (or a later minute of the
same connection). A queue writes at most ``gateway_queue_audited_per_min`` + :data:`MAX_BATCHES` + 1 customer
entries a minute, plus one roster entry per desk following it, whatever the number of desks; what a process
held when it died is lost.

>>> names = OverflowNames(batch=2, max_batches=2, clock=lambda: 0.0)
>>> [names.add("billing", c) for c in ("c1", "c2", "c3", "c4", "c5", "c6")]
[None, (['c1', 'c2'], 0), None, (['c3', 'c4'], 0), None, None]
>>> names.flush("billing")
([], 2)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.audit_writer import AuditWriter
from gateway.auth import Principal
from gateway.refusals import MAX_CALLERS, WINDOW_S
from livesignals import metrics

BATCH: Final = 100
"""Customers named per audit entry past the per-minute bound."""
MAX_BATCHES: Final = 20
"""Such entries per queue and minute; past them customers are counted, not named."""


@dataclass
class _Pending:
    window: int
    names: list[str] = field(default_factory=list)
    written: int = 0
    unnamed: int = 0


class OverflowNames:
    """Per queue (or caller), the customers shown past the bound this minute and not yet written (thread-safe,
    per process; at most :data:`gateway.refusals.MAX_CALLERS` queues held)."""

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


def write_batch(writer: AuditWriter, queue: str, batch: tuple[list[str], int] | None, limit: int) -> None:
    """Hand over one batch of customers shown through ``queue`` past the bound: their pseudonyms (the erasure
    ledger's keyed hash, as in ``customer``) in the field ``customers``."""
    if batch is None:
        return
    names, unnamed = batch
    reason = f"{len(names)} customers shown through queue {queue[:64]} past {limit} a minute"
    if unnamed:
        reason += f"; {unnamed} more shown, not named"
    audit = writer.audit
    writer.record("*", "-", "push", "#" + audit.pseudonym("queue:" + queue), None, True, reason,
                  customers=" ".join(audit.pseudonym(n) for n in names))  # fmt: skip


def audit_shown(service: Any, principal: Principal, queue: str, customer: str) -> None:
    """Audit that ``principal`` was shown ``customer`` through ``queue`` (see the module docstring): the desk in
    the queue's roster once a minute, the customer once per queue and minute, entries handed to the audit
    writer (``service``: :class:`gateway.api.Service`)."""
    writer, label = service.audit_writer, "queue:" + queue
    if service.queue_roster.first(principal.subject, label):
        writer.record(principal.subject, principal.role, "queue_follow", label, None, True,
                      "shown customers through this queue this minute")  # fmt: skip
    if not service.queue_audited.first(label, customer):
        return
    if service.queue_deliveries.allow(queue):
        writer.record(principal.subject, principal.role, "push", customer, None, True,
                      "shown through a followed queue (its roster: queue_follow)", queue=label[:70])  # fmt: skip
    else:
        metrics.GATEWAY_PUSH_OVER_RATE.inc()
        batch = service.queue_overflow.add(queue, customer)
        write_batch(writer, queue, batch, service.settings.gateway_queue_audited_per_min)
