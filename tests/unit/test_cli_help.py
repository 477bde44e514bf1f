"""The command line documents itself: every option of every command has help text; ``--version`` works."""

from __future__ import annotations

import argparse

import pytest

from app.cli import build_parser, main, version


def _walk(parser: argparse.ArgumentParser, path: str = "livesignals"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")


def test_every_option_and_every_command_has_help():
    missing = []
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {choice.dest for choice in action._choices_actions if choice.help}
                missing += [f"{path} {name} (command)" for name in action.choices if name not in helped]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help: {missing}"


def test_the_walk_sees_every_command():
    paths = {path for path, _ in _walk(build_parser())}
    assert {"livesignals run", "livesignals models export", "livesignals models evaluate-policy",
            "livesignals topics"} <= paths  # fmt: skip


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"livesignals {version()}"
    assert version()[0].isdigit()
