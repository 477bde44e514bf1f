"""deploy/local/apache-kafka.sh, the script that runs Apache Kafka for the tests' second leg."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "apache-kafka.sh"


def test_a_port_held_by_another_process_is_refused_not_reported_as_kafka(tmp_path: Path) -> None:
    """Review note: with the port already taken, the script printed "Apache Kafka is up" (its readiness
    probe only opens a TCP connection) and the tests then talked to whatever held the port."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            ["bash", str(SCRIPT), "start"],
            env={"PATH": "/usr/bin:/bin", "KAFKA_PORT": str(port), "KAFKA_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {port} is already in use" in done.stderr
    assert done.stdout == "", "no bootstrap address is printed"
    assert not (tmp_path / "kafka.pid").exists(), "no broker was started"
