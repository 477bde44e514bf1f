"""Every ``livesignals_...`` metric name the README (or the Prometheus rules and the Grafana
dashboard) mentions is one the engine exports: a name that does not exist makes a query
that silently returns nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

import livesignals.metrics  # noqa: F401 - registers every metric

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\blivesignals_[a-z0-9_]*[a-z0-9]")


def exported_metric_names() -> set[str]:
    """Every sample name the metrics registry can export (histograms: ``_bucket``, ``_count``, ``_sum``)."""
    names: set[str] = set()
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("# TYPE livesignals_"):
            _, _, name, kind = line.split()
            if name.endswith("_created"):
                continue  # prometheus_client's creation timestamps, not metrics of ours
            suffixes = {"histogram": ("", "_bucket", "_count", "_sum")}.get(kind, ("",))
            names |= {name + s for s in suffixes}
    return names


def names_in(text: str) -> set[str]:
    """``livesignals_...`` names in ``text`` (recording rules, ``livesignals:...``, are not metrics)."""
    return set(NAME.findall(text))


def test_every_metric_the_readme_names_exists():
    named = names_in((ROOT / "README.md").read_text())
    assert len(named) >= 30
    missing = named - exported_metric_names()
    assert not missing, f"README names metrics that do not exist: {sorted(missing)}"


def test_every_metric_the_rules_and_the_dashboard_use_exists():
    rules = names_in((ROOT / "deploy" / "prometheus" / "livesignals-rules.yml").read_text())
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "livesignals-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = rules | names_in(exprs)
    assert "livesignals_consumer_lag_messages" in used
    missing = used - exported_metric_names()
    assert not missing, f"rules or dashboard use metrics that do not exist: {sorted(missing)}"


def test_the_readme_metrics_table_lists_every_metric():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Metrics (Prometheus") :]
    table = table[: table.index("\n## ", 5)]
    listed = names_in(table)
    families = {n for n in exported_metric_names() if not n.endswith(("_bucket", "_count", "_sum"))}
    # the shared learner's own metrics are documented with the models, not in this table
    families = {n for n in families if not n.startswith(("livesignals_model_lessons", "livesignals_model_checkpoint"))}
    shorthand = {n for n in families if f"`_{n.split('_', 2)[-1]}`" in table}  # `_commands_total` after its sibling
    unlisted = families - listed - shorthand
    assert not unlisted, f"metrics missing from the README's table: {sorted(unlisted)}"
