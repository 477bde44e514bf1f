"""Errors as ``application/problem+json`` (RFC 9457): one shape for every failure the service returns."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from livesignals import serde

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    """An error answered as problem+json: status, a short title, a detail safe to show."""

    def __init__(self, status: int, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.extra = status, title, detail, extra

    def response(self, instance: str = "") -> Response:
        """The HTTP response for this problem."""
        body = {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail,
                "instance": instance, **self.extra}  # fmt: skip
        headers = {"WWW-Authenticate": 'Bearer realm="livesignals"'} if self.status == 401 else None
        return Response(serde.dumps(body), status_code=self.status, media_type=PROBLEM_TYPE, headers=headers)
