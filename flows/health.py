"""The engine's HTTP endpoints: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` as JSON.

* ``/healthz`` answers 200 while the process runs (a liveness probe).
* ``/readyz`` answers 200 when the engine can make progress and 503 otherwise, with
  every check named in the body: Redis and Kafka reachable (checked every
  ``status_interval_s`` by :mod:`flows.monitor`, and not failing batches),
  partitions owned, none lost to another engine (fenced), rules loaded.
* ``/metrics`` is the Prometheus text format; any other path is a 404.

The port is fixed (``metrics_port``): when it is taken the engine stops at once
with one log line and exit code :data:`EXIT_PORT_TAKEN` — a port that moved
would silently lose Prometheus' target. Several processes of one engine on one
host (``-a`` addresses with the same host) use ``metrics_port + process id``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

EXIT_PORT_TAKEN = 2
"""Exit code when the metrics port is taken (a configuration error)."""

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
"""``() -> (ready, checks)``: what ``/readyz`` reports."""


def metric_value(name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The current value of one sample of this process's registry (None: never set)."""
    return REGISTRY.get_sample_value(name, dict(labels or {}))


def engine_readiness(checks: Mapping[str, bool | None] | None = None) -> tuple[bool, dict[str, Any]]:
    """Ready when Redis and Kafka answer, partitions are owned, none was fenced and rules are loaded.

    ``checks`` are the monitor's latest probes (``redis``, ``kafka``: None = not probed yet; a
    dependency the engine's batches found down, ``livesignals_dependency_up`` 0, counts as down too)
    and ``rules_loaded`` (True once a worker's engine loaded its rules).

    >>> engine_readiness({"redis": True, "kafka": True, "rules_loaded": True})[0]  # nothing claimed yet
    False
    """
    probes = dict(checks or {})
    out: dict[str, Any] = {}
    for dep in ("redis", "kafka"):
        batches_ok = metric_value("livesignals_dependency_up", {"dependency": dep}) != 0.0
        out[dep] = batches_ok and probes.get(dep) is not False
    owned = metric_value("livesignals_partitions_owned") or 0.0
    out["partitions_owned"] = owned > 0
    out["not_fenced"] = not (metric_value("livesignals_fenced_total") or 0.0)
    out["rules_loaded"] = probes.get("rules_loaded") is True
    out["not_backing_off"] = metric_value("livesignals_ready") != 0.0
    return all(out.values()), {"partitions": int(owned), **out}


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port``, served by a daemon thread."""

    def __init__(self, host: str, port: int, readiness: Readiness = engine_readiness) -> None:
        self.readiness = readiness
        self.started = time.monotonic()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))  # OSError when the port is taken
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="health-http", daemon=True)

    def start(self) -> HealthServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                uptime = round(time.monotonic() - server.started, 3)
                self._json(200, {"status": "alive", "pid": os.getpid(), "uptime_s": uptime})
            elif path == "/readyz":
                ready, checks = server.readiness()
                self._json(200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": checks})
            else:
                self._json(404, {"error": f"no such path: {path}", "paths": ["/metrics", "/healthz", "/readyz"]})

        def _json(self, code: int, body: dict[str, Any]) -> None:
            self._send(code, orjson.dumps(body) + b"\n", "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per probe would drown the engine's log

    return Handler


def process_port(port: int, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """The metrics port of this process: ``port``, plus the process id when ``-a`` (or
    ``BYTEWAX_ADDRESSES``) puts another process of the engine on this process's host.

    >>> process_port(9464, ["-w", "2"], {})
    9464
    >>> process_port(9464, ["-i", "1", "-a", "localhost:2101;localhost:2102"], {})
    9465
    >>> process_port(9464, [], {"BYTEWAX_PROCESS_ID": "1", "BYTEWAX_ADDRESSES": "a:2101;b:2101"})
    9464
    """
    pid = _option(argv, "-i", "--process-id") or env.get("BYTEWAX_PROCESS_ID")
    addresses = _option(argv, "-a", "--addresses") or env.get("BYTEWAX_ADDRESSES")
    if not port or pid is None or not addresses:
        return port
    hosts = [a.strip().rsplit(":", 1)[0] for a in addresses.split(";") if a.strip()]
    index = int(pid)
    if index < len(hosts) and hosts.count(hosts[index]) > 1:
        return port + index
    return port


def _option(argv: Sequence[str], short: str, long: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg in (short, long) and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
        if arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            return arg[len(short) :]
    return None
