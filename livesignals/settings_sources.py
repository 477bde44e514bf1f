"""Where settings come from besides their defaults: the TOML file, and a check of ``LIVESIGNALS_*`` variables.

:meth:`livesignals.settings.Settings.load` reads the file, then the environment; a variable that names no
setting is a warning here (the environment holds other tools' variables too), an unknown key in the file an
error there.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from livesignals.settings_check import SettingsError


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings file as a dict; a missing or malformed file is a :class:`SettingsError`."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"settings file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path}: not valid TOML: {exc}") from None


_NOT_SETTINGS = ("LIVESIGNALS_CONFIG", "LIVESIGNALS_TEST_", "LIVESIGNALS_BENCH_", "LIVESIGNALS_UPDATE_SCREENSHOT")
"""``LIVESIGNALS_*`` variables that are not settings: the config file's path, the test suite's and the
benchmarks' switches."""


def warn_unknown_variables(env: Mapping[str, str], known: set[str]) -> None:
    """Log a warning for a ``LIVESIGNALS_*`` variable that names no setting (``LIVESIGNALS_BATCHSIZE``):
    an unknown TOML key is an error, but the environment also holds other tools' variables."""
    for name in sorted(env):
        if name.startswith("LIVESIGNALS_") and name not in known and not name.startswith(_NOT_SETTINGS):
            logging.getLogger(__name__).warning("%s names no setting: ignored (see livesignals settings)", name)
