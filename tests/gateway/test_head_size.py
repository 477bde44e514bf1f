"""Second break-test, B6: a request head has a size bound (httptools has none: 100 MB headers grew the
process by hundreds of MB and stalled every desk). On a real port with `livesignals serve`'s options."""

from __future__ import annotations

import contextlib
import socket

import httpx
import pytest

from gateway.headers_timeout import MAX_HEAD_BYTES
from tests.gateway.conftest import LiveServer, NullProducer


@pytest.fixture
def server(world):
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        yield s


def send_head(port: int, head: bytes) -> bytes:
    """Send ``head`` (stopping if the server closes) and return all the server answered."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)  # a bound for the test only
        with contextlib.suppress(OSError):  # closed while sending: what was answered is still readable
            sock.sendall(head)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"connection: close" in answer.lower() or len(answer) > 65536:
                    break
        return answer


def test_a_head_over_the_bound_is_answered_431_and_the_service_keeps_serving(server):
    huge = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * (4 * MAX_HEAD_BYTES) + b"\r\n\r\n"
    answer = send_head(server.port, huge)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200


def test_a_head_under_the_bound_is_served(server):
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * (MAX_HEAD_BYTES // 2) + b"\r\n\r\n"
    answer = send_head(server.port, big + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
