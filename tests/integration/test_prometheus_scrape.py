"""A real Prometheus scrapes a real engine, loads deploy/prometheus/'s rules, and answers every
alert and dashboard expression without an error.

Prometheus is Debian's ``prometheus`` binary; without it the test skips, unless
``LIVESIGNALS_TEST_PROMTOOL=required`` (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from app import embedded
from app.engine_process import start_engine, stop_process
from livesignals import serde
from livesignals.contract import primary_key
from tests.helpers import T0, event, produce, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if os.environ.get("LIVESIGNALS_TEST_PROMTOOL") == "required":
        pytest.fail("prometheus is required (LIVESIGNALS_TEST_PROMTOOL=required): apt-get install prometheus")
    pytest.skip("no prometheus binary (apt-get install prometheus)")


def api(port: int, path: str, **params: str) -> Any:
    """GET Prometheus' HTTP API; the decoded JSON (errors included)."""
    url = f"http://127.0.0.1:{port}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:  # 400 / 422: the body says why
        return json.loads(err.read())


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def dashboard_expressions() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "livesignals-dashboard.json").read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


@pytest.fixture
def engine(kafka_settings, tmp_path):
    s = kafka_settings.replace(metrics_host="127.0.0.1", status_interval_s=1.0, quiet_hours="0-0")
    events = [event("web_event", f"c{i % 30}", T0 + i * 1000, action="page_view") for i in range(300)]
    values: list[tuple[bytes | None, bytes]] = [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e in events]
    values += [(b"customer_id:c1", b"{not json")] * 5  # dead letters too
    produce(s.kafka_bootstrap, s.input_topics[0], values)
    with open(tmp_path / "engine.log", "wb") as log:
        proc = start_engine(s, log=log)
    try:
        wait_committed(s, len(values), proc)
        yield s
    finally:
        stop_process(proc)


def test_prometheus_scrapes_the_engine_and_answers_every_alert_and_dashboard_expression(engine, tmp_path):
    binary = prometheus_binary()
    port = embedded.free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(DEPLOY / 'prometheus' / 'livesignals-rules.yml'))}]\n"
        "scrape_configs:\n"
        "  - job_name: livesignals\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{engine.metrics_port}']}}]\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    prom = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        embedded.wait_for_port(port, timeout_s=60, proc=prom)
        wait_for(lambda: ready(port), 60, "Prometheus ready")

        def scraped() -> bool:
            targets = api(port, "/api/v1/targets")["data"]["activeTargets"]
            up = api(port, "/api/v1/query", query='up{job="livesignals"}')["data"]["result"]
            return bool(targets) and targets[0]["health"] == "up" and bool(up) and up[0]["value"][1] == "1"

        wait_for(scraped, 60, "the engine scraped")
        time.sleep(4)  # a few scrapes: rate() over [5m] needs two samples

        def rules_evaluated() -> list[dict[str, Any]] | None:
            groups = api(port, "/api/v1/rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            done = rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules)
            return rules if done else None

        rules = wait_for(rules_evaluated, 60, "every rule evaluated")
        assert len(rules) >= 19
        bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not bad, bad

        expressions = [r["query"] for r in rules] + dashboard_expressions()
        failures = {}
        for expr in expressions:
            answer = api(port, "/api/v1/query", query=expr)
            if answer.get("status") != "success":
                failures[expr] = answer.get("error")
        assert not failures, failures

        def values(expr: str) -> list[float]:
            return [float(r["value"][1]) for r in api(port, "/api/v1/query", query=expr)["data"]["result"]]

        # the data behind the dashboard is there, not only the syntax
        assert values("livesignals:consumer_lag_messages:sum") == [0.0]
        assert values("sum(livesignals_event_freshness_seconds_count)")[0] >= 305 - 5
        assert values("sum(livesignals_dead_letters_total)") == [5.0]
        assert values('livesignals_dependency_up{dependency="redis"}') == [1.0]
        assert values("livesignals_ready") == [1.0]
        assert values('count(livesignals_event_freshness_seconds_bucket{le="60.0"})') == [1.0]  # the SLO's bucket
    finally:
        stop_process(prom)
        log.close()
