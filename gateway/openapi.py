"""The service's OpenAPI 3.1 document, served at ``/openapi.json``.

Written by hand next to the routes (:mod:`gateway.api`, :mod:`gateway.stream`);
``tests/gateway/test_api.py`` checks that every route of the application is
described here and every described path answers.
"""

from __future__ import annotations

from typing import Any

_KEY = {
    "name": "key", "in": "path", "required": True, "schema": {"type": "string"},
    "description": "Any identifier, kind:value (customer_id:c42, email:..., phone:..., device_id:..., cookie_id:...);"
                   " a bare value is a customer_id.",
}  # fmt: skip
_PROBLEM = {
    "description": "problem+json",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_ANY = {
    "413": {
        **_PROBLEM,
        "description": "problem+json: a request body over gateway_body_max_bytes (declared "
        "by its Content-Length), whatever the route and method",
    },
    "431": {
        **_PROBLEM,
        "description": "problem+json: a request head (line and headers) over 64 KiB; "
        "answered by `livesignals serve`'s HTTP protocol before any route",
    },
}
"""What every operation may answer, before the route runs (:mod:`gateway.limits`, :mod:`gateway.headers_timeout`;
break-test 12d, D6: undocumented)."""
_ERRORS = {"400": _PROBLEM, "401": _PROBLEM, "403": _PROBLEM, "404": _PROBLEM, "429": _PROBLEM, **_ANY}
"""What every customer route may answer; ``tests/gateway/test_openapi_codes.py`` drives each route to each
documented status, and fails on a status a route answers that its entry does not list."""
_FEEDBACK_ERRORS = {"400": _PROBLEM, "401": _PROBLEM, "403": _PROBLEM, "409": _PROBLEM, "413": _PROBLEM,
                    "422": _PROBLEM, "429": _PROBLEM, "503": _PROBLEM, **_ANY}  # fmt: skip
"""No 404: feedback is for agents and supervisors, who see only customers with an open contact, which exist."""
_PUSH_ERRORS = {"400": _PROBLEM, "401": _PROBLEM, "403": _PROBLEM, "429": _PROBLEM, **_ANY}
_UNHEALTHY = {"description": "JSON, ok false: the push reader has stopped or cannot read (a process that can no "
                             "longer push)", "content": {"application/json": {}}}  # fmt: skip


def _get(summary: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ok = {"200": {"description": "JSON", "content": {"application/json": {}}}}
    return {"get": {"summary": summary, "security": [{"bearer": []}], "parameters": [_KEY, *(extra or [])],
                    "responses": {**ok, **_ERRORS}}}  # fmt: skip


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    q = lambda name, desc: {"name": name, "in": "query", "schema": {"type": "string"}, "description": desc}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {"title": "LiveSignals agent desktop service", "version": "1",
                 "description": "The customer 360 and live flags for agent desktops: every request needs a bearer "
                                "token (JWT, HS256); every read, subscription and feedback is authorised and "
                                "audited. Errors are application/problem+json."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"}}}},
        },
        "paths": {
            "/v1/customers/{key}": _get("The customer 360: identity, activity, history, value, flags, past/present/"
                                        "future, why now, context carried, windows, latest timeline",
                                        [q("channel", "where the customer contacts us now (context carried)"),
                                         q("timeline", "timeline entries included (1-200, default 20)")]),
            "/v1/customers/{key}/timeline": _get("One page of the timeline, newest first",
                                                 [q("cursor", "the previous page's next"), q("limit", "1-200")]),
            "/v1/customers/{key}/flags": _get("Flags currently raised, with evidence and relevance"),
            "/v1/customers/{key}/actions": _get("Ranked next-best actions with their reasons"),
            "/v1/customers/{key}/feedback": {"post": {
                "summary": "An agent's verdict: action accept/reject/not_relevant, flag relevant/not_relevant, "
                           "sentiment negative/neutral/positive; produced as a contract event (idempotent on "
                           "Idempotency-Key)",
                "security": [{"bearer": []}],
                "parameters": [_KEY, {"name": "Idempotency-Key", "in": "header", "required": True,
                                      "schema": {"type": "string", "maxLength": 200}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["target", "verdict"], "properties": {
                        "target": {"enum": ["action", "flag", "sentiment"]}, "target_id": {"type": "string"},
                        "action": {"type": "string"}, "verdict": {"type": "string"}}}}}},
                "responses": {"202": {"description": "the event produced"}, **_FEEDBACK_ERRORS}}},
            "/v1/push": {"get": {
                "summary": "Server-Sent Events: flags of the customers named and of the queues followed; resume "
                           "with Last-Event-ID",
                "security": [{"bearer": []}],
                "parameters": [q("customer", "a customer to follow (repeat)"), q("queue", "a queue to follow"),
                               {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "text/event-stream",
                                      "content": {"text/event-stream": {}}}, **_PUSH_ERRORS}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "JSON"}, **_ANY}}},
            "/healthz": {"get": {"summary": "Liveness: the push reader runs and reads",
                                 "responses": {"200": {"description": "JSON, ok true"}, "503": _UNHEALTHY, **_ANY}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (livesignals_gateway_*)",
                                 "responses": {"200": {"description": "Prometheus text format"}, **_ANY}}},
            "/agent": {"get": {"summary": "The agent card (HTML page; token in the URL fragment)",
                               "responses": {"200": {"description": "HTML"}, **_ANY}}},
        },
    }  # fmt: skip
