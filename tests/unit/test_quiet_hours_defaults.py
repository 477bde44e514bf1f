"""Quiet hours do not surprise: ``livesignals settings`` explains them, and the monitor says so
(one WARNING, a gauge) when the contact policy has held back every trigger for a while."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from app.cli import main
from flows.monitor import SuppressionWatch
from livesignals import metrics


def test_settings_output_explains_the_default_quiet_hours(capsys, monkeypatch):
    monkeypatch.delenv("LIVESIGNALS_QUIET_HOURS", raising=False)
    monkeypatch.delenv("LIVESIGNALS_CONFIG", raising=False)
    assert main(["settings"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("quiet_hours"))
    assert line.startswith("quiet_hours = '21-8'  # no trigger from 21:00 to 08:00 customer-local time")
    assert "UTC when the zone is unknown" in line and "0-0 = none" in line


def test_settings_output_says_when_there_are_no_quiet_hours(capsys, monkeypatch):
    monkeypatch.setenv("LIVESIGNALS_QUIET_HOURS", "0-0")
    assert main(["settings"]) == 0
    assert "quiet_hours = '0-0'  # no quiet hours" in capsys.readouterr().out


def test_every_trigger_held_back_for_the_alert_time_logs_once_and_sets_the_gauge(caplog):
    watch = SuppressionWatch(alert_after_s=300)
    metrics.TRIGGERS_SUPPRESSED.labels("test_offer", "quiet_hours").inc(3)
    with caplog.at_level(logging.WARNING, logger="flows.monitor"):
        assert watch.tick(1000.0) == 0.0  # the streak starts now
        metrics.TRIGGERS_SUPPRESSED.labels("test_offer", "quiet_hours").inc(5)
        assert watch.tick(1200.0) == 200.0
        assert not caplog.records
        metrics.TRIGGERS_SUPPRESSED.labels("test_offer", "daily_cap").inc(1)
        assert watch.tick(1300.0) == 300.0
        assert watch.tick(1400.0) == 400.0  # logged once, not every pass
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "held back every trigger for 300 s" in warnings[0]
    assert "quiet_hours: " in warnings[0] and "daily_cap: 1" in warnings[0]
    assert REGISTRY.get_sample_value("livesignals_triggers_all_suppressed_seconds") == 400.0
    metrics.TRIGGERS.labels("test_offer").inc()  # one goes out: the streak ends
    assert watch.tick(1500.0) == 0.0
    assert REGISTRY.get_sample_value("livesignals_triggers_all_suppressed_seconds") == 0.0


def test_no_decisions_at_all_is_not_everything_suppressed():
    watch = SuppressionWatch(alert_after_s=1)
    assert watch.tick(0.0) == 0.0
    assert watch.tick(10_000.0) == 0.0
