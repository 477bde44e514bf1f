"""Start and stop the engine dataflow as a separate Bytewax process.

Used by the demo, the integration tests and the benchmark: they hand their
settings to the process through ``LIVESIGNALS_*`` variables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from typing import Any

from app.embedded import stop_process
from livesignals.settings import Settings

__all__ = ["engine_env", "start_engine", "stop_process"]


def engine_env(settings: Settings) -> dict[str, str]:
    """Environment that hands ``settings`` to an engine subprocess."""
    env = dict(os.environ)
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, dict):
            continue  # kafka_config travels in the TOML file (LIVESIGNALS_CONFIG), if any
        env[f"LIVESIGNALS_{f.name.upper()}"] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env


def engine_argv(*bytewax_args: str) -> list[str]:
    """The command line of an engine process: ``-P`` so that a ``models/`` or ``flows/`` folder in
    the current directory never shadows the installed packages.

    >>> engine_argv("-w", "2")[1:]
    ['-P', '-m', 'bytewax.run', 'flows.live:build()', '-w', '2']
    """
    return [sys.executable, "-P", "-m", "bytewax.run", "flows.live:build()", *bytewax_args]


def start_engine(
    settings: Settings,
    workers: int = 1,
    log: Any = subprocess.DEVNULL,
    code_dir: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start the engine dataflow as a Bytewax process in its own process group.

    ``code_dir`` runs the engine from another checkout (benchmarks compare versions).
    """
    argv = engine_argv("-w", str(workers))
    env = engine_env(settings)
    if code_dir:
        env["PYTHONPATH"] = code_dir + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=code_dir)
