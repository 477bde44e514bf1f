"""``GET /metrics``: the service's Prometheus metrics, scraped on the service's own port.

The counters of :mod:`livesignals.metrics` that the service moves (requests by
route and status, access decisions allowed/denied, push connections and flags
pushed, feedback produced) live in this process; without this route nobody could
alert on a burst of denials or on feedback failing. Each scrape also sets the
push reader's gauges (``livesignals_gateway_push_reader_up``,
``livesignals_gateway_push_read_age_seconds``) from the reader's health, what
``/healthz`` answers from, so an alert sees a process that can no longer push.
No metric is labelled by customer or caller, so the page needs no token (like
the engine's ``/metrics``). The shipped deployments scrape it and alert on it
(``deploy/``: job ``livesignals-agent``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from livesignals import metrics


def route(health: Callable[[], dict[str, Any]]) -> Route:
    """The route, added to the service's routes by :func:`gateway.app.create_app`; ``health``: the push
    reader's (``FlagHub.health``)."""

    def metrics_page(_request: Request) -> Response:
        """The process's metrics in Prometheus' text format, the push reader's gauges set first."""
        doc = health()
        metrics.GATEWAY_PUSH_READER_UP.set(1 if doc["push_reader"] else 0)
        metrics.GATEWAY_PUSH_READ_AGE.set(doc["push_read_s_ago"])
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics_page, name="metrics")
