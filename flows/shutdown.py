"""Graceful shutdown on SIGTERM: finish the batch in flight, say so, exit.

On SIGTERM the engine takes no new batch (what it has read but not processed is
read again at the next start: Redis holds where to resume), lets the batch in
flight commit — Redis, then the consumer group, committed once more
synchronously so that lag tools see the final offsets — writes one JSON
``shutdown`` line (:mod:`flows.monitor`) and exits with code 0. A batch waiting
for Redis or Kafka before it wrote anything is abandoned at once; a batch still
running after ``shutdown_grace_s`` (e.g. the store retrying its commit through an
outage) is left as after a crash — the next start resumes from what Redis
holds — and the exit code is 143 (128 + SIGTERM).

The signal reaches a thread of ours through a pipe (``signal.set_wakeup_fd``), so
it is handled whatever Bytewax's own threads are doing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger(__name__)

EXIT_CLEAN = 0
EXIT_GRACE_EXPIRED = 128 + signal.SIGTERM
EXIT_PARTITIONS_CHANGED = 5
"""The input or repartition topics' partition count changed while the engine ran (:mod:`flows.monitor`): a
restart reads every partition. Exited between batches, as on SIGTERM (:func:`exit_between_batches`)."""


class Shutdown:
    """Counts batches in flight and refuses new ones once a stop is requested (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inflight = 0
        self._requested = False

    @property
    def requested(self) -> bool:
        """True once a stop was requested: take no new batch, stop retrying."""
        return self._requested

    def begin_batch(self) -> bool:
        """Enter a batch; False when stopping (then do not process it)."""
        with self._cond:
            if self._requested:
                return False
            self._inflight += 1
            return True

    def end_batch(self) -> None:
        """Leave a batch entered with :meth:`begin_batch`."""
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()

    def request(self) -> None:
        """Ask every worker to stop after its batch in flight."""
        with self._cond:
            self._requested = True
            self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no batch is in flight; False if one still is after ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._inflight == 0, timeout_s)


SHUTDOWN = Shutdown()
"""This process's shutdown state (one per process)."""

_INSTALLED: list[tuple[float, Callable[[bool, float], None]]] = []
"""``(grace_s, on_exit)`` given to :func:`install` (empty: not installed)."""


def _last_steps(on_exit: Callable[[bool, float], None], finished: bool, started: float) -> None:
    try:
        on_exit(finished, time.monotonic() - started)
    except Exception:
        log.exception("shutdown: the last steps failed (state is safe: Redis holds where to resume)")


def install(grace_s: float, on_exit: Callable[[bool, float], None]) -> threading.Thread:
    """Handle SIGTERM: stop taking batches, wait up to ``grace_s`` for the one in flight, call
    ``on_exit(finished, waited_s)`` (final commit, shutdown line), then end the process -- all within
    ``grace_s`` (at least 1 s for the last steps): a consumer-group commit that Kafka does not answer
    is abandoned, never a reason to outlive the grace.

    Call from the main thread. Whichever thread the kernel hands the signal to, Python's C-level
    handler writes its number to a pipe (``signal.set_wakeup_fd``), which a thread of ours reads:
    the main thread is inside Bytewax and may not run Python signal handlers for a long time.
    """
    _INSTALLED[:] = [(grace_s, on_exit)]
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, lambda *_: None)  # not the default (which kills at once); see above

    def wait_for_sigterm() -> None:
        while signal.SIGTERM not in os.read(read_end, 64):
            pass  # another signal (SIGINT keeps Python's and Bytewax's own handling)
        log.warning("SIGTERM: finishing the batch in flight (at most %.0f s), then exiting", grace_s)
        finished = _stop(grace_s, on_exit)
        os._exit(EXIT_CLEAN if finished else EXIT_GRACE_EXPIRED)

    thread = threading.Thread(target=wait_for_sigterm, name="livesignals-sigterm", daemon=True)
    thread.start()
    return thread


def _stop(grace_s: float, on_exit: Callable[[bool, float], None] | None) -> bool:
    """Take no new batch, wait up to ``grace_s`` for the one in flight, run ``on_exit`` within the grace, flush
    the logs; True when no batch was left running."""
    started = time.monotonic()
    SHUTDOWN.request()
    finished = SHUTDOWN.wait_idle(grace_s)
    if on_exit is not None:
        last_steps = threading.Thread(target=_last_steps, args=(on_exit, finished, started), daemon=True)
        last_steps.start()
        last_steps.join(max(1.0, grace_s - (time.monotonic() - started)))  # the whole stop within the grace
        if last_steps.is_alive():
            log.warning("shutdown: the last steps did not finish within %.0f s (Kafka not answering?); "
                        "exiting anyway: Redis holds where to resume", grace_s)  # fmt: skip
    for handler in [*logging.getLogger().handlers, *logging.getLogger("livesignals.status").handlers]:
        handler.flush()
    sys.stderr.flush()
    return finished


def exit_between_batches(code: int, grace_s: float) -> NoReturn:
    """End the process with ``code`` as SIGTERM would end it: no new batch, the one in flight committed (or,
    after ``grace_s``, left as after a crash: Redis holds where to resume), the last steps run -- never a
    batch half-applied by the exit itself."""
    grace, on_exit = _INSTALLED[0] if _INSTALLED else (grace_s, None)
    _stop(grace, on_exit)
    os._exit(code)
