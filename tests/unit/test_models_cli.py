"""``livesignals simulate --out`` then ``livesignals models evaluate``: the README's example."""

from __future__ import annotations

import json

from app.cli import main


def test_evaluate_compares_configurations_on_a_recorded_stream(tmp_path, capsys):
    stream, truth = tmp_path / "stream.jsonl", tmp_path / "truth.jsonl"
    fast = tmp_path / "fast.toml"
    fast.write_text("[models.churn.champion]\nlearning_rate = 0.2\n[models.sentiment.challenger]\nwarmup = 20\n")
    assert main(["simulate", "--customers", "300", "--count", "4000", "--rate", "0", "--skew", "0.6",
                 "--out", str(stream), "--truth", str(truth)]) == 0  # fmt: skip
    out_json = tmp_path / "cmp.json"
    assert main(["models", "evaluate", "--input", str(stream), "--truth", str(truth), "--models", f"fast={fast}",
                 "--churn-horizon-days", "0.01", "--json", str(out_json), "--csv", str(tmp_path / "cmp.csv")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "\nconfig  kind  " in printed and "churn" in printed
    rows = json.loads(out_json.read_text())
    roles = {(r["kind"], r["role"]) for r in rows}
    assert ("sentiment", "challenger") in roles and ("churn", "champion") in roles
    sentiment = next(r for r in rows if r["kind"] == "sentiment" and r["role"] == "champion")
    assert sentiment["labels"] > 0 and 0 <= sentiment["truth_accuracy"] <= 1
    assert set(sentiment["truth_by_language"]) >= {"en", "fa"}
    assert (tmp_path / "cmp.csv").read_text().startswith("config,kind,role,version")
