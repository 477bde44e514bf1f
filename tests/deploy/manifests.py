"""Helpers of the deploy tests: the settings' variable names and the CLI's view of a container command."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from app.cli import build_parser
from livesignals.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

SETTING_VARIABLES = {f"LIVESIGNALS_{f.name.upper()}" for f in fields(Settings)} | {"LIVESIGNALS_CONFIG"}
"""Every ``LIVESIGNALS_*`` variable the engine reads (``livesignals/settings.py``)."""


def unknown_settings(env_names: list[str]) -> list[str]:
    """The ``LIVESIGNALS_*`` names among ``env_names`` that are no setting."""
    return sorted(n for n in env_names if n.startswith("LIVESIGNALS_") and n not in SETTING_VARIABLES)


def commands() -> set[str]:
    """The top-level ``livesignals`` commands."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def parse(argv: list[str]) -> argparse.Namespace:
    """``livesignals ARGV`` as the CLI parses it (raises SystemExit on a bad command line)."""
    return build_parser().parse_args(argv)
