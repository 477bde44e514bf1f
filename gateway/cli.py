"""``livesignals serve`` and ``livesignals token`` (run as ``python -m gateway``: the engine's CLI starts
the service as its own process and never imports it)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from livesignals.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gateway``."""
    parser = argparse.ArgumentParser(prog="livesignals", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (else LIVESIGNALS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the agent desktop service (HTTP API, live push, the agent page)")
    serve.add_argument("--host", help="bind address (default: gateway_host)")
    serve.add_argument("--port", type=int, help="port (default: gateway_port)")
    serve.add_argument("--workers", type=int, help="processes serving the port (default: gateway_workers)")
    token = sub.add_parser("token", help="print a signed bearer token (demo and tests)")
    token.add_argument("subject", help="the agent id (as the events' agent_id)")
    token.add_argument("--role", choices=["agent", "supervisor", "analyst"], default="agent")
    token.add_argument("--queue", action="append", default=[], help="a queue of the caller's team (repeat)")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds the token is valid (default 8 h)")
    args = parser.parse_args(argv)
    settings = Settings.load(args.config)
    from gateway.auth import check_secrets, issue_token

    try:
        secret = check_secrets(settings.gateway_token_secrets)[0]
    except ValueError as exc:
        print(f"livesignals {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        print(issue_token(secret, args.subject, args.role, args.queue, ttl_s=args.ttl, now=int(time.time())))
        return 0
    import uvicorn

    from gateway.app import create_app

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = args.host or settings.gateway_host, args.port or settings.gateway_port
    workers = args.workers or settings.gateway_workers
    options = server_options(settings, host, port)
    if workers <= 1:
        uvicorn.run(create_app(settings), **options)
        return 0
    if args.config:  # each worker process loads the settings again, from the same file
        os.environ["LIVESIGNALS_CONFIG"] = args.config
    uvicorn.run("gateway.app:from_environment", factory=True, workers=workers, **options)
    return 0


def server_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """uvicorn's options for ``livesignals serve`` (and the tests' live server): the request head must
    arrive within ``gateway_header_timeout_s`` (:mod:`gateway.headers_timeout`; uvicorn has no such timeout
    of its own); SSE streams never end by themselves, so a stop (SIGTERM) closes them after 5 s and clients
    resume by Last-Event-ID. ``X-Forwarded-For`` is believed only from ``gateway_trusted_proxies``
    (uvicorn would believe it from 127.0.0.1 by default, or from ``FORWARDED_ALLOW_IPS``)."""
    from gateway import headers_timeout

    headers_timeout.configure(settings.gateway_header_timeout_s)
    return {"host": host, "port": port, "log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 5,
            "http": headers_timeout.IMPORT_PATH, "proxy_headers": bool(settings.gateway_trusted_proxies),
            "forwarded_allow_ips": list(settings.gateway_trusted_proxies)}  # fmt: skip
