"""``livesignals serve`` and ``livesignals token`` re-execute Python for the service's own command line
(``python -m gateway``); modules in the operator's working directory must not stand in for ours there
(break-test 12b, B12): ``-P`` keeps the working directory off ``sys.path``, as ``livesignals demo`` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt

LIVESIGNALS = Path(sys.executable).with_name("livesignals")
SECRET = "s" * 40
HIJACK = 'print("HIJACKED"); raise SystemExit(3)\n'


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIVESIGNALS_GATEWAY_TOKEN_SECRETS": SECRET}
    env.pop("PYTHONSAFEPATH", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(LIVESIGNALS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_token_ignores_modules_in_the_working_directory(tmp_path):
    for name in ("jwt", "argparse", "gateway", "livesignals"):
        (tmp_path / f"{name}.py").write_text(HIJACK)
    done = _run(tmp_path, "token", "a7", "--role", "agent", "--queue", "billing")
    assert "HIJACKED" not in done.stdout and done.returncode == 0, (done.stdout, done.stderr)
    claims = jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert claims["sub"] == "a7" and claims["queues"] == ["billing"]


def test_serve_ignores_modules_in_the_working_directory(tmp_path):
    for name in ("argparse", "gateway", "livesignals"):
        (tmp_path / f"{name}.py").write_text(HIJACK)
    done = _run(tmp_path, "serve", "--port", "not-a-port")  # refused by the service's own parser: nothing starts
    assert "HIJACKED" not in done.stdout and done.returncode == 2, (done.stdout, done.stderr)
    assert "--port" in done.stderr
