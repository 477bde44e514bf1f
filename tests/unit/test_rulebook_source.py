"""The rules in force across reloads (operators.rules.rulebook_source): a bad file at start-up is a rules error
naming its line; a rejected reload keeps the rules in force, says so and is counted; a good file takes over.

Moved from ``test_rules_limits.py`` (which keeps the language's resource limits)."""

from __future__ import annotations

import os
import time

import pytest
from prometheus_client import REGISTRY

from livesignals.settings import Settings
from operators.engine import Engine
from operators.rules.rulebook import RulebookError
from operators.rules.rulebook_source import RulebookSource
from state.memory import InMemoryStore

GOOD = """[[flag]]
name = "stuck"
raise_when = "w1h.errors >= 2"
reason = "stuck on {w1h.errors} errors"
"""


class Publisher:
    def publish(self, records) -> None:
        pass


def metric(name, labels=None):
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


BAD_FILES = {
    "invalid UTF-8": GOOD.encode().replace(b"stuck on", b"\xc3\x28"),
    "deep nesting": b"a = " + b"[" * 5000 + b"]" * 5000,
    "inf": GOOD.encode() + b"ttl_hours = inf\n",
    "nan in an expression": GOOD.encode().replace(b">= 2", b">= 1e999"),
    "TOML syntax": GOOD.encode() + b"[[flag\n",
    "wrong type": GOOD.encode().replace(b'"w1h.errors >= 2"', b"[1]"),
}


def touch_later(path, seconds):
    os.utime(path, (time.time() + seconds, time.time() + seconds))


@pytest.mark.parametrize("bad", sorted(BAD_FILES))
def test_a_rejected_reload_keeps_the_rules_in_force_and_says_so(tmp_path, bad, caplog):
    path = tmp_path / "rules.toml"
    path.write_text(GOOD)
    source = RulebookSource(str(path), check_every_s=0)
    in_force = source.current()
    assert metric("livesignals_rules_current") == 1
    errors_before = metric("livesignals_rules_reload_errors_total")

    path.write_bytes(BAD_FILES[bad])
    touch_later(path, 5)
    assert source.current() is in_force, "the rules in force stay"
    assert source.last_error is not None and source.last_error.startswith(f"{path}:"), source.last_error
    assert source.last_error.split(":")[1].isdigit(), "the message names the line"
    assert metric("livesignals_rules_reload_errors_total") == errors_before + 1
    assert metric("livesignals_rules_current") == 0
    assert any("rules file rejected" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    assert source.current() is in_force and metric("livesignals_rules_reload_errors_total") == errors_before + 1, (
        "an unchanged bad file is not counted again"
    )

    path.write_text(GOOD.replace('"stuck"', '"blocked"'))
    touch_later(path, 10)
    assert [f.name for f in source.current().flags] == ["blocked"]
    assert source.last_error is None and metric("livesignals_rules_current") == 1


def test_a_bad_file_at_start_up_is_a_rules_error_with_the_line_not_a_traceback(tmp_path):
    path = tmp_path / "rules.toml"
    errors_before = metric("livesignals_rules_reload_errors_total")
    for content in BAD_FILES.values():
        path.write_bytes(content)
        with pytest.raises(RulebookError, match=rf"^{path}:\d+: "):
            RulebookSource(str(path))
    assert metric("livesignals_rules_reload_errors_total") == errors_before + len(BAD_FILES)
    with pytest.raises(RulebookError, match=r"missing\.toml:1: unreadable"):
        RulebookSource(str(tmp_path / "missing.toml"))
    path.write_bytes(BAD_FILES["deep nesting"])
    with pytest.raises(RulebookError, match=rf"^{path}:1: arrays or tables nested too deeply"):
        Engine(Settings(metrics_port=0, rules_path=str(path)), InMemoryStore(), Publisher())
