"""A rule failure's log line: the exception's type, never its message (it may quote a payload value)."""

from __future__ import annotations

from operators.rules.failures import rule_failed


def test_a_rule_failure_is_logged_without_the_exception_message(caplog):
    """The README: log lines carry no message body; an exception's text may quote a payload value."""
    with caplog.at_level("WARNING"):
        rule_failed("flag", "leaky", "raise_when", ValueError("invalid literal: 'zelda@example.com'"))
    logged = [r.getMessage() for r in caplog.records if "'leaky'" in r.getMessage()]
    assert len(logged) == 1 and "ValueError" in logged[0]
    assert "zelda" not in logged[0] and "example.com" not in logged[0]
