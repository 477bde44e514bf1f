"""``GET /metrics``: the service's Prometheus metrics, scraped on the service's own port.

The counters of :mod:`livesignals.metrics` that the service moves (requests by
route and status, access decisions allowed/denied, push connections and flags
pushed, feedback produced) live in this process; without this route nobody could
alert on a burst of denials or on feedback failing. No metric is labelled by
customer or caller, so the page needs no token (like the engine's ``/metrics``).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def metrics_page(_request: Request) -> Response:
    """The process's metrics in Prometheus' text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


ROUTE = Route("/metrics", metrics_page, name="metrics")
"""The route, added to the service's routes by :func:`gateway.app.create_app`."""
