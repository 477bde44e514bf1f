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


def _stream(tmp_path):
    """A tiny recorded stream (two customers, one cancels)."""
    path = tmp_path / "stream.jsonl"
    events = [
        {"schema_version": 1, "event_id": f"e{i}", "type": "order", "channel": "web",
         "customer": {"customer_id": c}, "event_time": 1_772_323_200_000 + i * 60_000,
         "payload": {"order_id": f"o{i}", "amount": 10.0, "status": "paid"}}
        for i, c in enumerate(["a", "b", "a", "b"])
    ]  # fmt: skip
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_truth_csv_takes_iso_dates_datetimes_and_epoch_and_ignores_other_columns(tmp_path):
    from app.evaluate_truth import read_truth
    from livesignals.contract import primary_key

    csv = tmp_path / "customers.csv"
    csv.write_text(
        "plan,customer_id,cancelled_at,country\n"
        "gold,a,2026-03-01,GR\n"
        "gold,b,2026-03-01T01:00:00+01:00,IR\n"
        "basic,c,1772323200,UK\n"
        "basic,d,1772323200000,UK\n"
        "basic,e,,UK\n"
        "basic,f,2026-03-01 00:00:00Z,UK\n"
    )
    _, cancels = read_truth([csv])
    key = lambda c: primary_key({"customer_id": c})  # noqa: E731
    assert {c: cancels[key(c)] for c in "abcdf"} == {c: [1_772_323_200_000] for c in "abcdf"}
    assert key("e") not in cancels


def test_truth_jsonl_takes_iso_times(tmp_path):
    from app.evaluate_truth import read_truth
    from livesignals.contract import primary_key

    path = tmp_path / "cancels.jsonl"
    path.write_text('{"customer_id": "a", "cancelled_at": "2026-03-01T00:00:00Z"}\n'
                    '{"kind": "churn", "customer_id": "b", "at": "2026-03-01"}\n')  # fmt: skip
    _, cancels = read_truth([path])
    assert (
        cancels[primary_key({"customer_id": "a"})] == cancels[primary_key({"customer_id": "b"})] == [1_772_323_200_000]
    )


def test_truth_errors_are_one_line_with_file_and_line(tmp_path, capsys):
    stream = _stream(tmp_path)
    cases = {
        "missing.csv": (
            "customer,cancelled\na,2026-03-01\n",
            ":1: missing column(s) customer_id, cancelled_at; a customers CSV needs the header customer_id,cancelled_at",
        ),
        "bad_row.csv": ("customer_id,cancelled_at\na,2026-03-01\nb,next tuesday\n", ":3: cancelled_at 'next tuesday'"),
        "bad.jsonl": ('{"customer_id": "a", "cancelled_at": 1}\n{"who": "b"}\n', ":2: neither a cancellation"),
        "notjson.jsonl": ('{"customer_id": "a", "cancelled_at": 1}\nhello\n', ":2: not a JSON object"),
        "bad_time.jsonl": ('{"customer_id": "a", "cancelled_at": "soon"}\n', ":1: cancelled_at 'soon'"),
    }
    for name, (text, expected) in cases.items():
        truth = tmp_path / name
        truth.write_text(text)
        code = main(["models", "evaluate", "--input", str(stream), "--truth", str(truth)])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, name
        assert len(lines) == 1 and f"{truth}{expected}" in lines[0], (name, captured.err)
        assert "Traceback" not in captured.err and not captured.out


def test_evaluate_reads_an_iso_dated_customers_csv(tmp_path, capsys):
    stream = _stream(tmp_path)
    truth = tmp_path / "customers.csv"
    truth.write_text("customer_id,cancelled_at,plan\na,2026-03-01T00:05:00Z,gold\nb,,basic\n")
    assert main(["models", "evaluate", "--input", str(stream), "--truth", str(truth)]) == 0
    assert "churn" in capsys.readouterr().out
