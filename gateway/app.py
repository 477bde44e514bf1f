"""The agent desktop application: routes, error handling, the live-push hub's lifetime.

Why Starlette on uvicorn: a small, well-kept ASGI toolkit (the base of
FastAPI) with streaming responses for Server-Sent Events and no framework
magic to audit, served by uvicorn, the common production ASGI server. Reads
run in its thread pool with redis-py's blocking client (the same
:mod:`state.reader` code the CLI uses); live push runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any, Final

import redis
from redis.cluster import RedisCluster
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import api, feedback_api, headers_timeout, limits, metrics_route, stream
from gateway.audit import AuditLog
from gateway.auth import check_secrets
from gateway.feedback import FeedbackProducer, producer_config
from gateway.openapi import document
from gateway.problems import Problem
from gateway.push import FlagHub
from livesignals import metrics
from livesignals.partitioner import PRODUCER_CONFIG
from livesignals.settings import Settings
from state import reader
from state.reader import Keys

ASSETS = {"agent.js": "text/javascript", "agent.css": "text/css", "agent.html": "text/html"}


def redis_client(settings: Settings) -> Any:
    """A blocking Redis client for the service (bytes in and out; Cluster when configured)."""
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url)
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30)


def kafka_producer(settings: Settings) -> Any:
    """An idempotent producer for feedback events, with the contract's partitioner."""
    from confluent_kafka import Producer

    config = producer_config(settings.gateway_feedback_timeout_s)
    return Producer(settings.kafka_client_config(**PRODUCER_CONFIG, **config))


def create_app(settings: Settings, client: Any = None, producer: Any = None, hub_block_ms: int = 1000) -> Starlette:
    """The service for ``settings`` (``client``/``producer``: injected by tests; made from settings otherwise)."""
    check_secrets(settings.gateway_token_secrets)
    client = client if client is not None else redis_client(settings)
    renewable = None if producer is not None else (lambda: kafka_producer(settings))  # injected: kept as is
    producer = producer if producer is not None else kafka_producer(settings)
    keys = Keys(settings.key_prefix)
    sender = FeedbackProducer(producer, settings.input_topics[0], settings.gateway_feedback_timeout_s, renewable)
    service = api.Service(settings, client, keys, AuditLog.from_settings(client, settings), sender)
    hub = FlagHub(client, keys.flags_stream, stream.open_contacts_reader(service), hub_block_ms, keys.updates_stream,
                  claimed=lambda customer_keys: reader.claimed_keys(client, keys, customer_keys))  # fmt: skip

    def route(path: str, name: str, fn: Callable[..., Any], methods: tuple[str, ...] = ("GET",)) -> Route:
        if asyncio.iscoroutinefunction(fn):

            async def endpoint(request: Request) -> Response:
                response: Response = await fn(request)
                metrics.GATEWAY_REQUESTS.labels(name, str(response.status_code)).inc()
                return response

            return Route(path, endpoint, methods=list(methods), name=name)

        def sync_endpoint(request: Request) -> Response:
            response: Response = fn(request)
            metrics.GATEWAY_REQUESTS.labels(name, str(response.status_code)).inc()
            return response

        return Route(path, sync_endpoint, methods=list(methods), name=name)

    async def on_problem(request: Request, exc: Exception) -> Response:
        problem = exc if isinstance(exc, Problem) else Problem(500, "Internal Server Error")
        metrics.GATEWAY_REQUESTS.labels(route_label(request), str(problem.status)).inc()
        return problem.response(request.url.path)

    async def push(request: Request) -> Response:
        return await stream.push(service, hub, request)

    async def feedback(request: Request) -> Response:
        return await feedback_api.post_feedback(service, request)

    routes = [
        route("/v1/customers/{key:path}/timeline", "timeline", lambda r: api.get_timeline(service, r)),
        route("/v1/customers/{key:path}/flags", "flags", lambda r: api.get_flags(service, r)),
        route("/v1/customers/{key:path}/actions", "actions", lambda r: api.get_actions(service, r)),
        route("/v1/customers/{key:path}/feedback", "feedback", feedback, ("POST",)),
        route("/v1/customers/{key:path}", "customer", lambda r: api.get_360(service, r)),
        route("/v1/push", "push", push),
        Route("/openapi.json", lambda r: api.json_response(document()), name="openapi"),
        Route("/healthz", lambda r: _health(hub), name="health"),
        metrics_route.route(hub.health),
        Route("/", lambda r: RedirectResponse("/agent"), name="root"),
        Route("/agent", lambda r: _asset("agent.html"), name="page"),
        Route("/assets/{name}", lambda r: _asset(r.path_params["name"]), name="assets"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        await run_in_threadpool(lambda: service.pseudonym_secret)  # read once, off the event loop (push frames)
        try:
            yield
        finally:
            hub.stop()
            service.audit_writer.close()  # what queue deliveries handed over is written before the process ends

    async def on_http_error(request: Request, exc: Exception) -> Response:  # no route (404), wrong method (405)
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        response = await on_problem(request, Problem(status, HTTPStatus(status).phrase))
        allow = exc.headers.get("Allow") if isinstance(exc, HTTPException) and exc.headers else None
        if allow:  # a 405 says which methods the path takes (RFC 9110; break-test 12f, F5)
            response.headers["Allow"] = allow
        return response

    handlers = {Problem: on_problem, HTTPException: on_http_error, 500: on_problem}
    body_limit = Middleware(limits.BodyLimit, max_bytes=settings.gateway_body_max_bytes)
    # outermost first: the security headers are put on every answer, the body limit's 413 included
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers,
                    middleware=[Middleware(SecurityHeaders), body_limit])  # fmt: skip
    app.state.service = service
    app.state.hub = hub
    return app


def route_label(request: Request) -> str:
    """The ``route`` label of a request: the name of the route it matched, ``other`` for every path that matched
    none (never a piece of the path: a caller must not be able to add time series).

    >>> class R: scope = {}
    >>> route_label(R())
    'other'
    """
    name = getattr(request.scope.get("route"), "name", None)
    return name if name in ROUTE_NAMES else "other"


ROUTE_NAMES: Final = frozenset({"timeline", "flags", "actions", "feedback", "customer", "push", "openapi", "health",
                                "metrics", "root", "page", "assets"})  # fmt: skip
"""Every route's name: the only ``route`` label values besides ``other``."""


class SecurityHeaders:
    """Headers on every response: nothing cached (PII), no MIME sniffing, no referrer, never framed (the card's
    buttons cannot be clickjacked), scripts and styles from the service only (no inline code to inject)."""

    HEADERS: Final = [
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (
            b"content-security-policy",
            b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _health(hub: FlagHub) -> Response:
    """200 while the push reader runs; 503 once it has stopped (a process that can no longer push)."""
    doc = hub.health()
    ok = bool(doc["push_reader"])
    return api.json_response({"ok": ok, **doc}, 200 if ok else 503)


def from_environment() -> Starlette:
    """The service for the settings of the environment (``LIVESIGNALS_*``, ``LIVESIGNALS_CONFIG``): what each
    worker process of ``livesignals serve --workers N`` builds."""
    settings = Settings.load(None)
    headers_timeout.configure(settings.gateway_header_timeout_s)  # this worker's connections
    return create_app(settings)


def _asset(name: str) -> Response:
    if name not in ASSETS:
        raise Problem(404, "Not Found", "no such asset")
    body = importlib.resources.files("gateway").joinpath("page", name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})  # not no-store: no PII
