"""The Helm chart: ``helm lint``, ``helm template``, and the rendered manifests checked field by field.

Needs the ``helm`` binary (``.ci/run`` builds it from the Go module proxy); skipped without it
unless ``LIVESIGNALS_TEST_HELM=required``. Nothing is installed on a cluster here: the checks
are on what Kubernetes would be given (images, probes at /healthz and /readyz, ports, env,
the Bytewax processes' addresses).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, parse, unknown_settings

CHART = DEPLOY / "helm" / "livesignals"
REQUIRED = ["--set", "kafka.bootstrap=kafka-0.kafka:9092", "--set", "redis.url=redis://:s3cret@redis:6379/0"]
TOKEN_SECRET = "t" * 40
SAMPLE_RULES = "groups:\n  - name: sample\n    rules:\n      - alert: Up\n        expr: up == 0\n"


def _helm() -> str:
    found = shutil.which("helm") or next((str(p) for p in (Path.home() / "go" / "bin" / "helm",) if p.exists()), None)
    if found is None:
        if os.environ.get("LIVESIGNALS_TEST_HELM") == "required":
            pytest.fail("helm is required (LIVESIGNALS_TEST_HELM=required) but not found")
        pytest.skip("helm not installed (GOFLAGS=-mod=mod go install helm.sh/helm/v3/cmd/helm@v3.22.0)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_helm(), *args], capture_output=True, text=True, timeout=120)


def _rules_file(tmp_path: Path) -> Path:
    """deploy/prometheus's rules file when it exists (ops, #13), else a sample."""
    found = sorted(p for p in (DEPLOY / "prometheus").glob("*rules.yml") if ".test." not in p.name)
    if found:
        return found[0]
    sample = tmp_path / "rules.yml"
    sample.write_text(SAMPLE_RULES)
    return sample


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[tuple[str, str], dict]:
    tmp = tmp_path_factory.mktemp("helm")
    rules = _rules_file(tmp)
    done = _run(
        "template", "ls", str(CHART), "--namespace", "signals", *REQUIRED,
        "--set", "engine.processes=3", "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.prometheusRule.enabled=true", "--set-file", f"metrics.prometheusRule.rules={rules}",
        "--set", "agent.enabled=true", "--set", f"agent.tokenSecrets={TOKEN_SECRET}", "--set", "settingsFile.content=[kafka_config]\n\"sasl.password\" = \"x\"\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    by_kind[("rules", "file")] = yaml.safe_load(rules.read_text())
    return by_kind


def _one(rendered, kind: str) -> dict:
    (doc,) = [d for (k, _), d in rendered.items() if k == kind]
    return doc


def test_helm_lint_passes():
    done = _run("lint", str(CHART), "--strict", *REQUIRED)
    assert done.returncode == 0, done.stdout + done.stderr


KUBERNETES_VERSIONS = ("1.30", "1.37")
"""Oldest and newest Kubernetes the manifests are validated against (kubernetes-validate's bundled schemas)."""


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_by_kubernetes_own_schema(rendered, version):
    """Strict: an unknown or misplaced field (a typo in a template) fails, as ``kubectl --validate=strict`` would."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = []
    for (kind, name), doc in rendered.items():
        if kind in ("rules", "ServiceMonitor", "PrometheusRule"):  # CRDs of the Prometheus Operator: no schema here
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(kind)
    assert {"StatefulSet", "Service", "Secret", "Job", "Deployment", "ServiceAccount"} <= set(checked)
    broken = {**_one(rendered, "StatefulSet")}
    broken["spec"] = {**broken["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kafka_and_redis_are_required_values():
    done = _run("template", "ls", str(CHART))
    assert done.returncode != 0 and "kafka.bootstrap is required" in done.stderr


def test_the_engine_is_a_statefulset_of_bytewax_processes(rendered):
    sts = _one(rendered, "StatefulSet")
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    assert spec["replicas"] == 3 and spec["podManagementPolicy"] == "Parallel"
    svc = rendered[("Service", spec["serviceName"])]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (engine,) = pod["containers"]
    assert engine["image"] == "livesignals:0.1.0"
    args = parse(engine["args"])
    assert args.command == "run" and args.wait == 120
    ports = {p["name"]: p["containerPort"] for p in engine["ports"]}
    assert ports == {"process": 9999, "metrics": 9464}
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == ports
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        assert engine[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    env = {e["name"]: e for e in engine["env"]}
    assert env["BYTEWAX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["BYTEWAX_STATEFULSET_NAME"]["value"] == sts["metadata"]["name"]
    assert env["BYTEWAX_WORKERS_PER_PROCESS"]["value"] == "2"
    assert env["LIVESIGNALS_KAFKA_BOOTSTRAP"]["value"] == "kafka-0.kafka:9092"
    assert env["LIVESIGNALS_METRICS_PORT"]["value"] == "9464"
    assert env["LIVESIGNALS_CONFIG"]["value"] == "/etc/livesignals/livesignals.toml"
    assert "secretKeyRef" in env["LIVESIGNALS_REDIS_URL"]["valueFrom"], "the Redis URL may hold a password"
    assert not unknown_settings(list(env))
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9464"


def test_the_hostfile_gives_each_process_every_address_in_order(rendered, tmp_path):
    """Run the init container's script here, then derive each pod's -i as bytewax.run does."""
    sts = _one(rendered, "StatefulSet")
    (init,) = sts["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e.get("value", "") for e in init["env"]}
    env["NAMESPACE"] = "signals"
    script = init["args"][0].replace("/etc/bytewax/hostfile.txt", str(tmp_path / "hostfile.txt"))
    subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, check=True, timeout=30)
    lines = (tmp_path / "hostfile.txt").read_text().split()
    name, service = sts["metadata"]["name"], sts["spec"]["serviceName"]
    assert lines == [f"{name}-{i}.{service}.signals.svc.cluster.local:9999" for i in range(3)]
    engine_env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert engine_env["BYTEWAX_HOSTFILE_PATH"] == "/etc/bytewax/hostfile.txt"
    for i in range(3):  # bytewax.run: process id = pod name minus "<statefulset>-"
        assert int(f"{name}-{i}".replace(engine_env["BYTEWAX_STATEFULSET_NAME"] + "-", "")) == i


def test_redis_url_and_settings_file_live_in_a_secret(rendered):
    secret = _one(rendered, "Secret")
    assert secret["stringData"]["redis-url"] == "redis://:s3cret@redis:6379/0"
    assert "sasl.password" in secret["stringData"]["livesignals.toml"]
    for (kind, _), doc in rendered.items():
        if kind not in ("Secret", "rules"):
            assert "s3cret" not in yaml.safe_dump(doc), f"{kind} holds the Redis password"
            assert TOKEN_SECRET not in yaml.safe_dump(doc), f"{kind} holds the token secret"


def test_prometheus_wiring(rendered):
    sts = _one(rendered, "StatefulSet")
    monitor = rendered[("ServiceMonitor", sts["metadata"]["name"].removesuffix("-engine"))]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert _one(rendered, "PrometheusRule")["spec"]["groups"] == rendered[("rules", "file")]["groups"]


def test_topics_job_and_agent_run_livesignals_commands(rendered):
    job = _one(rendered, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = parse(container["args"])
    assert (args.command, args.partitions, args.replication_factor) == ("topics", 12, 3)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    agent = _one(rendered, "Deployment")
    (container,) = agent["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve"] and container["image"] == "livesignals:0.1.0"
    assert not unknown_settings([e["name"] for e in container["env"]])
    env = {e["name"]: e for e in container["env"]}
    assert env["LIVESIGNALS_GATEWAY_HOST"]["value"] == "0.0.0.0"
    assert env["LIVESIGNALS_GATEWAY_PORT"]["value"] == str(container["ports"][0]["containerPort"]) == "8780"
    assert "secretKeyRef" in env["LIVESIGNALS_GATEWAY_TOKEN_SECRETS"]["valueFrom"]
    assert _one(rendered, "Secret")["stringData"]["gateway-token-secrets"] == TOKEN_SECRET


def test_a_file_that_is_no_rules_file_is_refused(tmp_path):
    wrong = tmp_path / "wrong.yml"
    wrong.write_text("scrape_configs: []\n")
    done = _run("template", "ls", str(CHART), *REQUIRED, "--set", "metrics.prometheusRule.enabled=true",
                "--set-file", f"metrics.prometheusRule.rules={wrong}")  # fmt: skip
    assert done.returncode != 0 and "not a Prometheus rules file" in done.stderr


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("engine.processes=0", "minimum"),
        ("engine.metricsPort=70000", "maximum"),
        ("topics.partitions=0", "minimum"),
        ("settings.batch_size=5", "does not match pattern"),
    ],
)
def test_odd_values_fail_at_render_time_not_as_a_crash_loop(value, why):
    """Outside review of #13: processes=0 rendered replicas: 0 without a word (values.schema.json)."""
    base = ("--set", "kafka.bootstrap=k:9092", "--set", "redis.url=redis://r:6379/0")
    assert _run("template", "ls", str(CHART), *base).returncode == 0
    done = _run("template", "ls", str(CHART), *base, "--set", value)
    assert done.returncode != 0 and why in done.stderr


def test_the_agent_service_is_scraped_probed_at_healthz_and_alerted_on(rendered):
    """Break-test 12b, B14: the agent desktop service's /metrics is scraped (a ServiceMonitor of its own whose
    job the rules' LiveSignalsAgent* alerts select, and the pods' scrape annotations), and its pods are probed
    at /healthz (503 once the push reader has stopped), not by a TCP connect that a dead reader passes."""
    agent = _one(rendered, "Deployment")
    pod = agent["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    port = container["ports"][0]
    assert port["name"] == "http"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    monitor = rendered[("ServiceMonitor", agent["metadata"]["name"])]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    service = rendered[("Service", agent["metadata"]["name"])]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    (relabel,) = endpoint["relabelings"]
    job = relabel["replacement"]
    assert relabel["targetLabel"] == "job" and job == "livesignals-agent"
    rules = [r for g in _one(rendered, "PrometheusRule")["spec"]["groups"] for r in g["rules"] if "alert" in r]
    agent_alerts = {r["alert"]: r["expr"] for r in rules if r["alert"].startswith("LiveSignalsAgent")}
    assert f'up{{job="{job}"}}' in agent_alerts["LiveSignalsAgentDown"]
    assert {"LiveSignalsAgentPushReaderDown", "LiveSignalsAgentDenialBurst"} <= set(agent_alerts)
