"""The alert rules in deploy/prometheus/ pass ``promtool check rules``, their unit tests
(``promtool test rules``) and ``promtool check config`` on the example configuration.

promtool comes with Debian's ``prometheus`` package. Without it these tests skip, unless
``LIVESIGNALS_TEST_PROMTOOL=required`` (CI sets it), where a missing promtool fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool() -> str:
    """Path of promtool, or skip (fail when required)."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("LIVESIGNALS_TEST_PROMTOOL") == "required":
        pytest.fail("promtool is required (LIVESIGNALS_TEST_PROMTOOL=required): apt-get install prometheus")
    pytest.skip("no promtool (apt-get install prometheus)")


def run(*args: str) -> str:
    done = subprocess.run([promtool(), *args], cwd=HERE, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_rules_are_valid():
    out = run("check", "rules", "livesignals-rules.yml")
    assert "SUCCESS" in out


def test_rules_unit_tests_pass():
    out = run("test", "rules", "livesignals-rules.test.yml")
    assert "SUCCESS" in out


def test_every_alert_is_seen_firing_in_a_unit_test():
    rules = (HERE / "livesignals-rules.yml").read_text()
    alerts = set(re.findall(r"^\s+- alert: (\S+)$", rules, re.M))
    tests = (HERE / "livesignals-rules.test.yml").read_text()
    firing = set(re.findall(r"alertname: (\S+)\n\s+exp_alerts:\n", tests))  # a non-empty list follows
    assert len(alerts) >= 12
    assert alerts == firing, f"alerts never seen firing in a test: {sorted(alerts - firing)}"


def test_example_config_is_valid():
    out = run("check", "config", "prometheus.yml")
    assert "SUCCESS" in out
