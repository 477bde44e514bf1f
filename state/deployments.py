"""Deployments that share a Redis: notice a second one reading the same topics under another ``key_prefix``.

Ownership (:mod:`state.ownership`) fences engines *of one deployment*: they
share a ``key_prefix``, so they claim the same ``ls:{part:<p>}:meta``. Two
engines with different prefixes on the same input topics are two deployments
and never see each other's claims: both apply every event and publish the same
outputs. With one consumer group between them it is worse: each commits its
offsets to the group, and each reads the other's as "Redis is behind the
consumer group" — a state loss — and rebuilds from Kafka, again and again.

So every engine registers in one hash outside any prefix, ``livesignals:deployments``
(field: its key prefix; value: its input topics, consumer group and when it was
last seen), at start-up and then every :data:`REFRESH_S`, and reads the others:
another prefix seen within :data:`LIVE_S` on an input topic of ours is
reported — :class:`SharedGroup` when it uses our consumer group (an engine
starting then waits, unregistered, until the other is gone: it never runs
beside it), else a warning per other deployment. A SIGTERM removes the
engine's own field; a killed engine's goes stale after :data:`LIVE_S`.
Deployments on different Redis servers are not seen.

Each entry also names the deployment's repartition topic: another live prefix
with the same one is reported too (whatever the input topics). Each deployment
then skips the other's reroutes (:mod:`operators.routing`,
``ls.origin.deployment``), but both still write to one topic; the default,
``<key_prefix>.repartition``, is one per deployment.

>>> clash = Deployment("a", ("in",), "g", 0).clash(Deployment("b", ("in", "x"), "g", 0))
>>> clash
('in',)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

KEY = "livesignals:deployments"
"""The hash every deployment registers in (no prefix: deployments with different prefixes must meet)."""
REFRESH_S = 10.0
"""How often a running engine refreshes its entry."""
LIVE_S = 30.0
"""A deployment not seen for this long is taken as stopped (a killed engine's entry stays behind)."""


class SharedGroup(Exception):
    """Another deployment (another ``key_prefix``) reads our input topics through our consumer group."""


@dataclass(frozen=True)
class Deployment:
    """One deployment as registered: its key prefix, input topics, consumer group and when last seen."""

    prefix: str
    topics: tuple[str, ...]
    group: str
    seen_s: float
    repartition: str = ""
    """Its repartition topic (empty: an engine that did not say)."""

    def clash(self, other: Deployment) -> tuple[str, ...]:
        """The input topics ``other`` reads too (none when it is this deployment)."""
        if other.prefix == self.prefix:
            return ()
        return tuple(t for t in self.topics if t in other.topics)

    def shares_repartition(self, other: Deployment) -> bool:
        """True when ``other`` is another deployment writing to our repartition topic.

        >>> Deployment("a", ("x",), "g", 0, "rep").shares_repartition(Deployment("b", ("y",), "h", 0, "rep"))
        True
        """
        return other.prefix != self.prefix and bool(self.repartition) and self.repartition == other.repartition

    def encode(self) -> str:
        """The hash value."""
        doc = {"topics": list(self.topics), "group": self.group, "seen_s": self.seen_s}
        return json.dumps({**doc, "repartition": self.repartition} if self.repartition else doc)


def register(
    client: Any,
    prefix: str,
    topics: tuple[str, ...],
    group: str,
    now_s: float | None = None,
    force: bool = False,
    repartition: str = "",
) -> list[str]:
    """Register (or refresh) this deployment; warnings about the others on our topics (input topics,
    or the ``repartition`` topic).

    Raises :class:`SharedGroup` if one of them uses our consumer group — without
    registering, unless ``force`` (a running engine keeps its entry fresh).
    """
    now_s = time.time() if now_s is None else now_s
    me = Deployment(prefix, topics, group, now_s, repartition)
    try:
        warnings = _others(client, me)
    except SharedGroup:
        if force:
            client.hset(KEY, prefix, me.encode())
        raise
    client.hset(KEY, prefix, me.encode())
    return warnings


def _others(client: Any, me: Deployment) -> list[str]:
    group, now_s = me.group, me.seen_s
    warnings = []
    for name, raw in client.hgetall(KEY).items():
        try:
            doc = json.loads(raw)
            other = Deployment(_text(name), tuple(doc["topics"]), str(doc["group"]), float(doc["seen_s"]),
                               str(doc.get("repartition", "")))  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # not ours to judge
        if now_s - other.seen_s > LIVE_S:
            continue
        if me.shares_repartition(other):
            warnings.append(
                f"another deployment (key_prefix {other.prefix!r}) uses our repartition topic "
                f"{me.repartition!r}: each skips the other's reroutes (livesignals_repartition_foreign_skipped_total) "
                f"but both write there; give each deployment its own repartition_topic (the default, "
                f"<key_prefix>.repartition, is)"
            )
        shared = me.clash(other)
        if not shared:
            continue
        if other.group == group:
            raise SharedGroup(
                f"the deployment with key_prefix {other.prefix!r} reads {list(shared)} through the same consumer "
                f"group {group!r}: each would take the other's offsets for lost state. Give each deployment its own "
                f"consumer_group, or use one key_prefix for both (then they fence each other)"
            )
        warnings.append(
            f"another deployment (key_prefix {other.prefix!r}, consumer group {other.group!r}) reads {list(shared)}: "
            f"it applies the same events to its own state and publishes the same outputs; engines of different "
            f"key prefixes do not fence each other"
        )
    return warnings


def leave(client: Any, prefix: str) -> None:
    """Remove this deployment's entry (a clean shutdown)."""
    client.hdel(KEY, prefix)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
