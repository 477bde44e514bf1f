"""The demo's terminal view lists each flagged customer with the pseudonym analysts see (break-test 12k, K2): the
demo's page uses an analyst's token, and analysts name customers by pseudonym only."""

from __future__ import annotations

from app.demo import _draw


def test_the_demo_lists_each_flagged_customer_with_its_analyst_pseudonym(capsys):
    latest = [{"customer": "customer_id:c0000042", "pseudonym": "customer_id:p_0123456789abcdef",
               "flag": "frustrated", "reason": "three complaints"}]  # fmt: skip
    _draw(1.0, 10.0, 5.0, {}, latest, page="http://127.0.0.1:8780/agent#token=t")
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "c0000042" in line)
    assert "customer_id:p_0123456789abcdef" in row and "frustrated" in row
    assert "pseudonym" in out
