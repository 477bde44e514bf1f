"""``livesignals serve`` and ``livesignals token`` as the demo starts them: the service in its own process,
the page's URL with a token that the service accepts."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from app.demo import start_gateway
from app.embedded import free_port, stop_process

pytestmark = pytest.mark.slow


def test_the_demo_starts_the_service_and_prints_a_working_page_url(settings):
    s = settings.replace(gateway_port=free_port(), gateway_token_secrets=(secrets.token_hex(32),))
    proc, page = start_gateway(s)
    try:
        base, _, fragment = page.partition("/agent#token=")
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{base}/agent", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "the service exited"
            assert time.time() < deadline, "the service did not answer"
            time.sleep(0.5)
        headers = {"Authorization": f"Bearer {fragment}"}
        assert httpx.get(f"{base}/v1/customers/c1", headers=headers).status_code == 404  # analyst: by pseudonym only
        assert httpx.get(f"{base}/v1/customers/c1").status_code == 401
        with httpx.stream("GET", f"{base}/v1/push?customer=device_id:d1", headers=headers, timeout=30) as stream:
            assert stream.status_code == 200
            started = time.monotonic()
            stop_process(proc)  # SIGTERM with a live stream open: the service still stops by itself
            assert proc.returncode != -9 and time.monotonic() - started < 9.5
    finally:
        stop_process(proc)


def test_livesignals_token_is_forwarded_to_the_service_cli():
    import os
    import subprocess
    import sys

    from gateway.auth import verify_token

    secret = secrets.token_hex(32)
    env = {**os.environ, "LIVESIGNALS_GATEWAY_TOKEN_SECRETS": secret}
    code = (
        "from app.cli import main; main(['token', 'a7', '--role', 'supervisor', '--queue', 'billing', '--ttl', '60'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    principal = verify_token(out.stdout.strip(), [secret])
    assert (principal.subject, principal.role, principal.queues) == ("a7", "supervisor", ("billing",))
    short = subprocess.run([sys.executable, "-c", code], env={**env, "LIVESIGNALS_GATEWAY_TOKEN_SECRETS": "short"},
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert short.returncode == 2 and "at least 32 bytes" in short.stderr and "Traceback" not in short.stderr
