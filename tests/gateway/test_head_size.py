"""Second break-test, B6: a request head has a size bound (httptools has none: 100 MB headers grew the
process by hundreds of MB and stalled every desk). On a real port with `livesignals serve`'s options."""

from __future__ import annotations

import contextlib
import socket

import httpx
import orjson
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


def test_the_431_is_problem_json_like_every_other_error(server):
    huge = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * (2 * MAX_HEAD_BYTES) + b"\r\n\r\n"
    head, _, body = send_head(server.port, huge).partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    assert orjson.loads(body)["status"] == 431


def recv_more(sock: socket.socket) -> bytes:
    """The next bytes the server sent; the server closing the connection first is a failure, not a loop."""
    chunk = sock.recv(65536)
    if not chunk:
        pytest.fail("the server closed the connection before its whole answer")
    return chunk


def read_answer(sock: socket.socket, already: bytes = b"") -> tuple[bytes, bytes]:
    """Read one whole answer (its head, after ``already`` received bytes, and its Content-Length body):
    return its head and what was received after it (a next answer may arrive in the same read)."""
    answer = already
    while b"\r\n\r\n" not in answer:
        answer += recv_more(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length"))
    )
    while len(body) < length:
        body += recv_more(sock)
    return head, body[length:]


def still_open_while_trickling(sock: socket.socket, seconds: int) -> bool:
    """Send one body chunk a second (each resets uvicorn's keep-alive timer): is the socket still open after?"""
    sock.settimeout(0.5)
    for _ in range(seconds):
        try:
            sock.sendall(b"\r\n400\r\n" + b"a" * 1024)
            if sock.recv(65536) == b"":
                return False
        except TimeoutError:
            continue  # nothing to read: still open
        except (ConnectionResetError, BrokenPipeError):
            return False
    return True


@pytest.mark.parametrize("request_line", [b"GET /v1/customers/c1", b"POST /v1/customers/c1/feedback"])
def test_a_body_that_never_ends_does_not_hold_the_connection_after_the_answer(server, request_line):
    """Third break-test C8: a chunked body trickling after a refusal (no token) held the socket for ever."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(30)  # a bound for the test only
        sock.sendall(request_line + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + b"a" * 1024)
        head, _ = read_answer(sock)
        assert head.startswith(b"HTTP/1.1 401"), head[:80]
        assert not still_open_while_trickling(sock, 8), "closed after the answer, not kept to drain the body"


def test_a_request_whose_body_ended_keeps_its_connection(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first, rest = read_answer(sock)
        second, _ = read_answer(sock, rest)  # both answers may come in one read (a loaded machine)
        assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200"), (first[:40], second[:40])


@pytest.mark.parametrize("pad", [MAX_HEAD_BYTES + 1024, 2 * MAX_HEAD_BYTES - 4096])
def test_a_head_over_the_bound_arriving_in_one_or_two_reads_is_answered_431(server, pad):
    """Sixth break-test, F5: only the reads that left a head incomplete were counted, so a head that
    completed in its first or second read passed the bound (70 KB in pieces, 120 KB at once were served)."""
    huge = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * pad + b"\r\n\r\n"
    assert send_head(server.port, huge).startswith(b"HTTP/1.1 431")


def test_the_431_carries_the_security_headers(server):
    huge = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * (2 * MAX_HEAD_BYTES) + b"\r\n\r\n"
    head = send_head(server.port, huge).partition(b"\r\n\r\n")[0].lower()
    for header in (b"x-frame-options: deny", b"frame-ancestors 'none'", b"referrer-policy: no-referrer",
                   b"cache-control: no-store", b"x-content-type-options: nosniff"):  # fmt: skip
        assert header in head, header


def test_a_second_request_on_a_connection_is_bounded_on_its_own(server):
    """A keep-alive connection's next head is counted from zero (two heads of 40 KB each are served)."""
    one = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n"
    last = one.replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nConnection: close\r\n")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(30)
        sock.sendall(one)
        first, rest = read_answer(sock)
        sock.sendall(last)
        second, _ = read_answer(sock, rest)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200"), (first[:40], second[:40])
