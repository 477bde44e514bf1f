"""Finding 9 (slow-header senders): a connection that trickles its request head, or sends nothing, is closed.

On a real port, with the options `livesignals serve` runs uvicorn with (gateway.cli.server_options). The
assertions are about what the server did -- closed the socket before the head was complete, answered
nothing -- never about how long it took.
"""

from __future__ import annotations

import select
import socket

import httpx
import pytest

from tests.gateway.conftest import LiveServer, NullProducer, bearer, token

HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nAccept: */*\r\n\r\n"


@pytest.fixture
def server(world):
    with LiveServer(world.settings.replace(gateway_header_timeout_s=1.0), world.client, NullProducer()) as s:
        yield s


def trickle(sock: socket.socket, data: bytes, every_s: float) -> tuple[int, bytes, bool]:
    """Send ``data`` one byte at a time; stop when the server closes. (bytes sent, bytes received, closed)."""
    received = b""
    for sent, byte in enumerate(data):
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return sent, received, True
        readable, _, _ = select.select([sock], [], [], every_s)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return sent + 1, received, True
            if not chunk:
                return sent + 1, received, True
            received += chunk
    return len(data), received, False


def test_a_trickled_request_head_is_cut_before_it_completes(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sent, received, closed = trickle(sock, HEAD, every_s=0.4)
    assert closed, "the server kept a slow-header connection open until its head was complete"
    assert sent < len(HEAD)
    assert received == b""  # closed without an answer


def test_a_connection_that_sends_nothing_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(30)  # a bound for the test only: the server is expected to close far sooner
        assert sock.recv(1) == b""


def test_a_second_request_trickled_on_a_keep_alive_connection_is_cut_too(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(HEAD)  # the first head at once: answered
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:80]
        sent, received, closed = trickle(sock, HEAD, every_s=0.4)
    assert closed and sent < len(HEAD) and received == b""


def test_requests_sent_at_once_and_a_long_push_stream_are_not_affected(server, world):
    a1 = bearer(token("a1", queues=("billing",)))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/v1/customers/c1", headers=a1).status_code == 200
        with http.stream("GET", "/v1/push?customer=c1", headers=a1) as r:
            assert r.status_code == 200
            lines = 0
            for line in r.iter_lines():  # a keep-alive comment every 0.5 s; six outlast the 1 s head deadline
                lines += line.startswith(": keep-alive")
                if lines == 6:
                    break
            assert lines == 6  # the stream was not cut
