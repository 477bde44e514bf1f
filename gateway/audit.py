"""The audit trail: every read, push subscription and feedback, allowed or denied, in a bounded Redis stream.

One entry per decision in ``<prefix>:audit`` (XADD with ``MAXLEN ~
gateway_audit_maxlen``: the newest entries are kept), fields ``at`` (epoch
ms), ``who`` (token subject, or ``-`` when no valid token), ``role``,
``action`` (``read_360``, ``read_timeline``, ``read_flags``, ``read_actions``,
``subscribe``, ``feedback``), ``customer`` (the key as asked, and as
resolved, ``asked -> resolved`` when they differ), ``allowed`` (``1``/``0``)
and ``reason``. Read it with ``XRANGE <prefix>:audit - +`` or ship it on
with a stream consumer. The stream lives beside the engine's keys but the
engine never reads it.
"""

from __future__ import annotations

import time
from typing import Any

from livesignals import metrics


def audit_key(prefix: str) -> str:
    """The audit stream's key for a deployment prefix.

    >>> audit_key("ls")
    'ls:audit'
    """
    return f"{prefix}:audit"


class AuditLog:
    """Appends audit entries (one XADD each) to the bounded stream."""

    def __init__(self, client: Any, prefix: str, maxlen: int) -> None:
        self.client = client
        self.key = audit_key(prefix)
        self.maxlen = maxlen

    def record(
        self, who: str, role: str, action: str, asked: str, resolved: str | None, allowed: bool, reason: str
    ) -> None:
        """Record one decision (a Redis failure propagates: an unaudited read is not served)."""
        customer = asked if resolved in (None, asked) else f"{asked} -> {resolved}"
        fields = {"at": int(time.time() * 1000), "who": who, "role": role, "action": action,
                  "customer": customer[:300], "allowed": int(allowed), "reason": reason[:200]}  # fmt: skip
        self.client.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
        metrics.GATEWAY_DECISIONS.labels(action, "allowed" if allowed else "denied").inc()

    def entries(self, count: int = 100) -> list[dict[str, str]]:
        """The newest ``count`` entries, newest first (tests, tooling)."""
        rows = self.client.xrevrange(self.key, count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} | {"id": i.decode()} for i, fields in rows]
