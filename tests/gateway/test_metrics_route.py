"""The service's metrics are scrapeable (break-test of issue 12, finding 16): the counters the README documents,
moved by the requests just made, at ``GET /metrics`` on the service's port."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import bearer, token


def test_the_gateway_metrics_are_served(client):
    a1 = bearer(token("a1", queues=("billing",)))
    assert client.get("/v1/customers/c1", headers=a1).status_code == 200
    assert client.get("/v1/customers/c3", headers=a1).status_code == 403
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(r.text) for s in f.samples}  # fmt: skip
    assert samples[("livesignals_gateway_access_total", (("action", "read_360"), ("result", "denied")))] >= 1
    assert samples[("livesignals_gateway_requests_total", (("route", "customer"), ("status", "200")))] >= 1
    names = {name for name, _ in samples}
    assert "livesignals_gateway_push_connections" in names


def _sample(client, name: str) -> float:
    text = client.get("/metrics").text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def test_the_push_reader_is_seen_by_prometheus_as_healthz_sees_it(client):
    """B14 (break-test 12b): a process whose push reader stopped answers /healthz 503; Prometheus, which the
    deployments point at /metrics, must see the same (deploy/prometheus: LiveSignalsAgentPushReaderDown)."""
    assert client.get("/healthz").status_code == 200
    assert _sample(client, "livesignals_gateway_push_reader_up") == 1
    assert _sample(client, "livesignals_gateway_push_read_age_seconds") < 60
    client.app.state.hub.stop()
    assert client.get("/healthz").status_code == 503
    assert _sample(client, "livesignals_gateway_push_reader_up") == 0
