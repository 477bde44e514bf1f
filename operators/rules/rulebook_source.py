"""The rules in force: the rules file reloaded when it changes, a bad file never replacing good rules.

Split from :mod:`operators.rules.rulebook` (which parses and evaluates one file): this
module owns only the file's life -- the mtime check, the counted rejections and
``livesignals_rules_current``.
"""

from __future__ import annotations

import logging
import os
import time

from livesignals import metrics
from operators.rules.rulebook import Rulebook
from operators.rules.rules_file import RulebookError

log = logging.getLogger(__name__)

__all__ = ["RulebookSource"]


class RulebookSource:
    """The rules in force, reloaded when the file changes; a bad file keeps the old rules.

    Every rejected file -- at start-up (then :class:`RulebookError` is raised:
    there are no rules to keep) or on reload -- is logged, counted in
    ``livesignals_rules_reload_errors_total`` and sets ``livesignals_rules_current``
    to 0 until a good file is loaded; on reload ``last_error`` holds the message.
    """

    def __init__(self, path: str | None, check_every_s: float = 5.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self.last_error: str | None = None
        try:
            self._mtime = os.stat(path).st_mtime if path else 0.0
            self.rulebook = Rulebook.load(path) if path else Rulebook(())
        except OSError as exc:
            self._rejected(f"{path}:1: unreadable: {exc.strerror or exc}", at_start=True)
            raise RulebookError(self.last_error) from None
        except RulebookError as exc:
            self._rejected(str(exc), at_start=True)
            raise
        metrics.RULES_CURRENT.set(1)
        self._checked = time.monotonic()

    def current(self) -> Rulebook:
        """The rules in force (checking the file at most every ``check_every_s``); never raises."""
        now = time.monotonic()
        if self.path and now - self._checked >= self.check_every_s:
            self._checked = now
            self.reload_if_changed()
        return self.rulebook

    def reload_if_changed(self) -> bool:
        """Reload now if the file changed; True when new rules took effect. Never raises."""
        if not self.path:
            return False
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            self._rejected(f"{self.path}:1: unreadable: {exc.strerror or exc}")
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            book = Rulebook.load(self.path)
        except RulebookError as exc:
            self._rejected(str(exc))
            return False
        except Exception as exc:  # a bug of ours, not of the file: the rules in force still stay
            log.exception("rules file %s could not be loaded", self.path)
            self._rejected(f"{self.path}:1: could not be loaded ({type(exc).__name__}: {str(exc)[:200]})")
            return False
        self.rulebook, self.last_error = book, None
        metrics.RULES_CURRENT.set(1)
        log.info("rules reloaded from %s: %d flags, %d actions", self.path, len(book.flags), len(book.actions))
        return True

    def _rejected(self, message: str, at_start: bool = False) -> None:
        self.last_error = message
        metrics.RULES_RELOAD_ERRORS.inc()
        metrics.RULES_CURRENT.set(0)
        kept = "no rules to keep: the engine cannot start" if at_start else "keeping the rules in force"
        log.error("rules file rejected, %s: %s", kept, message)


def rules_path(setting: str) -> str | None:
    """The rules file in force: the setting, the shipped catalogue, or none."""
    if setting.lower() == "none":
        return None
    if setting:
        return setting
    import importlib.resources

    return str(importlib.resources.files("livesignals").joinpath("rules", "catalogue.toml"))
