"""Audit entries of queue deliveries, written off the delivery path: one thread, one pipelined round trip per
batch (break-test 12f, F6).

A push connection following a queue is shown every customer waiting in it, and each customer's first delivery
to a caller in a minute is audited (:mod:`gateway.queue_audit`). Written one by one -- a thread hop and an XADD
round trip per frame on the event loop's path -- those entries cost ~0.6-0.8 ms of the process's one core per
frame: twenty desks following a queue an outsider filled with 1,500 anonymous chats fell tens of seconds behind
and were disconnected. Here the delivery only decides (in memory) and hands the entry over; one writer thread
pseudonymises and appends everything handed over since its last write in one pipelined round trip.

An entry is handed over before its frame is sent and written within about :data:`FLUSH_S`; what a process holds
when it dies is lost (at most :data:`MAX_PENDING` entries). Past :data:`MAX_PENDING` waiting entries (Redis
slower than the deliveries) an entry is counted, not kept (``livesignals_gateway_audit_dropped_total``), so the
process's memory stays bounded; a failed write is logged and its entries counted the same way.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Final

from gateway.audit import AuditLog
from livesignals import metrics

log = logging.getLogger(__name__)

MAX_PENDING: Final = 100_000
"""Entries waiting to be written, at most (about 30 MB)."""
BATCH: Final = 2_000
"""Entries written per round trip, at most."""
FLUSH_S: Final = 0.2
"""How long the writer waits for more entries before it writes what it has (it writes at once under load)."""

Row = tuple[str, str, str, str, str | None, bool, str, dict[str, str]]
"""``(who, role, action, customer as asked, as resolved, allowed, reason, extra fields)``; a ``customer``
starting with ``#`` is already pseudonymised (a batch's ``queue:...``, the ``customers`` field's names)."""


class AuditWriter:
    """Hands audit entries to one writer thread (started on first use) that appends them in batches."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._pending: queue.SimpleQueue[Row | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, who: str, role: str, action: str, asked: str, resolved: str | None, allowed: bool,
               reason: str, **extra: str) -> None:  # fmt: skip
        """Hand one entry over (as :meth:`gateway.audit.AuditLog.record` takes it); never blocks."""
        if self._pending.qsize() >= MAX_PENDING:
            metrics.GATEWAY_AUDIT_DROPPED.inc()
            return
        self._pending.put((who, role, action, asked, resolved, allowed, reason, extra))
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                    self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is waiting and stop the thread (the service's shutdown)."""
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._pending.get(timeout=FLUSH_S)
            except queue.Empty:
                continue
            rows: list[Row] = []
            item: Row | None = first
            while item is not None:
                rows.append(item)
                if len(rows) >= BATCH:
                    break
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
            stop = item is None
            self._write(rows)

    def _write(self, rows: list[Row]) -> None:
        try:
            named = [(w, role, action, self._named(asked, resolved), ok, why, extra)
                     for w, role, action, asked, resolved, ok, why, extra in rows]  # fmt: skip
            self.audit.append_many(named)
            for _, _, action, _, _, allowed, _, _ in rows:
                metrics.GATEWAY_DECISIONS.labels(action, "allowed" if allowed else "denied").inc()
        except Exception as exc:  # Redis unreachable: logged and counted, the writer goes on
            log.warning("%d audit entries not written (%s)", len(rows), type(exc).__name__)
            metrics.GATEWAY_AUDIT_DROPPED.inc(len(rows))

    def _named(self, asked: str, resolved: str | None) -> str:
        """The ``customer`` field as :meth:`gateway.audit.AuditLog.record` writes it."""
        if asked.startswith("#"):
            return asked[1:]
        customer = self.audit.pseudonym(asked)
        if resolved not in (None, asked):
            customer = f"{customer} -> {self.audit.pseudonym(resolved)}"
        return customer
