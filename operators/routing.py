"""Routing by customer, whatever the producer's key: one writer per customer.

A customer's state has one writer: the worker that reads the customer's
*owner partition* (:func:`livesignals.partitioner.owner_partition`, Kafka's
default partitioner on the customer key). An event read from an input
partition that is not its customer's owner (a tracker keying by cookie or
session, a producer with another partitioner) is not applied there: it is
*rerouted*, as Kafka Streams does with a repartition topic --

* re-published unchanged (original bytes) to ``settings.repartition_topic``,
  at the owner partition, keyed by the customer key, with headers recording
  where it was first published (``ls.origin.topic``, ``ls.origin.partition``,
  ``ls.origin.offset``, ``ls.origin.timestamp``, ``ls.origin.key``) and a
  deterministic ``ls.id``;
* counted in ``livesignals_events_rerouted_total{topic}``;
* applied when the owner's worker reads it back from the repartition topic
  (partition p of the repartition topic is read with partition p of every
  input topic). The event is then applied *as from its first position*
  (:class:`RoutedEvent`): its output ids and the replay check use the original
  topic, partition and offset, so a reroute re-published by a replayed batch
  is skipped like any replay, and never applied twice. Its KPIs and model
  updates go to the aggregates of the repartition topic's partition it was
  read from (:func:`read_position`), committed with that partition's offsets.

Events on the repartition topic are at the right partition while the
partition count stays as it was when they were written. **After the topics
grew, a repartition record is checked like an input record**: a verified
record whose customer is now owned by another partition is rerouted again, to
the owner under the current count, with its first position unchanged (same
``ls.id``, signed again), and applied only there (break-test 10h, L1: applied
where it was read, 4 -> 8 partitions lost 74-311 of 8,000 events to two
writers of one customer). Routing needs every input topic and the repartition
topic to have the same partition count (``livesignals topics create`` makes
them so).

**Origin headers are signed.** The ``ls.origin.*`` headers decide an event's
ids and its replay check, so a forged set (say, an offset far ahead) could make
the engine skip a customer's real events as replays. The engine signs what it
re-publishes: ``ls.origin.sig`` is an HMAC-SHA256 over the origin headers and
the value, keyed by :func:`origin_key` (the setting ``repartition_secret``, else
the deployment's random secret in Redis, :mod:`state.secrets`). Origin headers
are honoured only on records read from the repartition topic and only with a
valid signature. Headers named ``ls.origin.*`` on input topics are never read.

**A repartition record that does not verify is never applied.** It is
dead-lettered as ``unverified_reroute`` and counted in
``livesignals_origin_headers_ignored_total``. Such a record is either forged
(whoever wrote it may not decide ids) or the engine's own, signed with a secret
Redis has since lost: then Redis lost the state too, the partition is replayed
from the input topics, and that replay re-routes the same event with the new
signature. Applying the old record as well would count it twice (issue 10,
break-test F1).

**Another deployment's reroutes are skipped.** Every reroute names its
deployment (``ls.origin.deployment``: the ``key_prefix``). A record naming
another deployment (two deployments given one ``repartition_topic``) is skipped
before anything else, counted in
``livesignals_repartition_foreign_skipped_total``: that deployment applies it
(break-test F2). The default repartition topic is per deployment anyway
(``<key_prefix>.repartition``, :attr:`livesignals.settings.Settings.repartition_topic`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from livesignals import metrics
from livesignals.contract import Event, RawMessage
from livesignals.errors import DeadLetter, Origin, Reason
from livesignals.partitioner import owner_partition

MAX_ORIGIN_KEY_BYTES = 1024
"""The original Kafka key kept in a rerouted record's headers, at most (as dead letters keep)."""
ORIGIN_HEADERS = ("ls.origin.topic", "ls.origin.partition", "ls.origin.offset", "ls.origin.timestamp")
"""Headers of a rerouted record that say where it was first published."""
SIGNATURE_HEADER = "ls.origin.sig"
"""HMAC-SHA256 (hex) of the origin headers and the value: only the engine's reroutes carry a valid one."""
MOVED_HEADER = "ls.origin.moved"
"""Set (``1``, signed) on a record rerouted again because the partition count changed."""
REPLAYED_HEADER = "ls.origin.replayed"
"""Set (``1``, signed) on a reroute re-published by a STATE LOSS replay below what Kafka confirmed: its owner
rebuilds state from it and publishes nothing (break-test 10j, Q1)."""
DEPLOYMENT_HEADER = "ls.origin.deployment"
"""The ``key_prefix`` of the deployment that rerouted the record (records of another one are skipped)."""
_NOWHERE = Origin("", -1, -1)


@dataclass(slots=True)
class RoutedEvent(Event):
    """An event read back from the repartition topic.

    ``origin`` is where it was first published (ids and replay checks use it);
    ``read_at`` is where this worker read it (its partition aggregates and
    resume offsets use that).
    """

    read_at: Origin = field(default=_NOWHERE)
    moved: bool = False
    """Rerouted again because the partition count changed (header ``ls.origin.moved``, signed): later
    events of its first partition may have reached the owner first, so the per-customer replay check
    (a high-water offset) cannot judge it; the engine skips it only as a duplicate (:func:`is_replay`)."""
    replayed: bool = False
    """Re-published by a STATE LOSS replay below what Kafka confirmed (header ``ls.origin.replayed``, signed)."""


def read_position(event: Event) -> Origin:
    """Where the engine read ``event`` (differs from ``event.origin`` for rerouted events)."""
    return event.read_at if isinstance(event, RoutedEvent) else event.origin


@dataclass(frozen=True, slots=True)
class Reroute:
    """An event to re-publish to the repartition topic, at its customer's owner partition."""

    value: bytes
    customer_key: str
    partition: int
    origin: Origin
    original_key: bytes | None = None
    signing_key: bytes = field(default=b"", repr=False)
    """The key of ``ls.origin.sig`` (:func:`origin_key`)."""
    deployment: str = ""
    """The rerouting deployment's ``key_prefix`` (header ``ls.origin.deployment``; empty: none)."""
    moved: bool = False
    """Rerouted again from the repartition topic after the partition count changed (``ls.origin.moved``)."""
    replayed: bool = False
    """Re-published by a replay whose outputs Kafka confirmed before (``ls.origin.replayed``): the owner
    rebuilds state from it, publishing nothing (:attr:`state.ownership.Claim.reroute_again`)."""

    @property
    def reroute_id(self) -> str:
        """Deterministic id: a replayed batch re-publishes the same id. The origin's Kafka timestamp keeps it
        distinct across a log reset (a new log numbers its records from 0 again: break-test 10f, K2).

        >>> Reroute(b"{}", "customer_id:c1", 3, Origin("in", 1, 7, 1700000000000)).reroute_id
        'reroute:in:1:7:1700000000000'
        """
        o = self.origin
        return f"reroute:{o.topic}:{o.partition}:{o.offset}:{o.timestamp_ms}"

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        """Kafka headers: the id and where the event was first published."""
        o = self.origin
        out: list[tuple[str, str | bytes | None]] = [
            ("ls.id", self.reroute_id.encode()),
            ("ls.origin.topic", o.topic.encode()),
            ("ls.origin.partition", str(o.partition).encode()),
            ("ls.origin.offset", str(o.offset).encode()),
            ("ls.origin.timestamp", str(o.timestamp_ms).encode()),
        ]
        if self.original_key is not None:  # bounded: a huge key must not make a valid event unpublishable
            out.append(("ls.origin.key", self.original_key[:MAX_ORIGIN_KEY_BYTES]))
        if self.deployment:
            out.append((DEPLOYMENT_HEADER, self.deployment.encode()))
        if self.moved:
            out.append((MOVED_HEADER, b"1"))
        if self.replayed:
            out.append((REPLAYED_HEADER, b"1"))
        signature = origin_signature(self.signing_key, o, self.value, self.moved, self.replayed)
        out.append((SIGNATURE_HEADER, signature.encode()))
        return out


def origin_key(settings: Any) -> bytes:
    """The key that signs origin headers: ``repartition_secret``, else one derived from the
    deployment's connection settings (Redis URL and Kafka options, passwords included), so that
    every engine of one deployment agrees without configuration. Never logged."""
    material = settings.repartition_secret or "\0".join(
        [settings.redis_url, *(f"{k}={v}" for k, v in sorted(settings.kafka_config.items()))]
    )
    return hashlib.sha256(b"livesignals-origin\0" + str(material).encode()).digest()


def origin_signature(key: bytes, origin: Origin, value: bytes, moved: bool = False, replayed: bool = False) -> str:
    """The ``ls.origin.sig`` of a record re-published to the repartition topic (hex); ``moved`` (signed
    too, so that nobody can turn the replay check off) marks a record rerouted again, ``replayed`` (signed,
    so that nobody can keep a real event's outputs from going out) one re-published by a replay."""
    o = origin
    marks = ",".join(name for name, on in (("moved", moved), ("replayed", replayed)) if on)
    head = f"{o.topic}\0{o.partition}\0{o.offset}\0{o.timestamp_ms}\0{marks}".encode()
    return hmac.new(key, head + value, hashlib.sha256).hexdigest()


class Router:
    """Decides, per decoded event, whether this partition owns it (see the module docstring)."""

    def __init__(
        self,
        input_topics: Sequence[str],
        repartition_topic: str,
        partitions: int,
        signing_key: bytes = b"",
        deployment: str = "",
    ) -> None:
        if partitions <= 0:
            raise ValueError(f"partition count must be positive, not {partitions}")
        self.input_topics = frozenset(input_topics)
        self.repartition_topic = repartition_topic
        self.partitions = partitions
        self.signing_key = signing_key
        self.deployment = deployment

    @classmethod
    def from_counts(
        cls,
        input_topics: Sequence[str],
        repartition_topic: str,
        counts: Mapping[str, int] | None,
        signing_key: bytes = b"",
        deployment: str = "",
    ) -> Router | None:
        """A router for these topics' partition counts (None: routing off, e.g. in-memory tests).

        Raises ``ValueError`` when an input topic's count is missing or the counts differ:
        one customer must be owned by the same partition number on every topic.
        """
        if counts is None:
            return None
        missing = [t for t in input_topics if t not in counts]
        if missing:
            raise ValueError(f"routing needs the partition count of input topics {missing}")
        wanted = {t: counts[t] for t in (*input_topics, repartition_topic) if t in counts}
        if len(set(wanted.values())) != 1:
            raise ValueError(f"input topics and the repartition topic need one partition count, not {wanted}")
        return cls(input_topics, repartition_topic, next(iter(wanted.values())), signing_key, deployment)

    @classmethod
    def for_settings(cls, settings: Any, counts: Mapping[str, int] | None) -> Router | None:
        """:meth:`from_counts` for the deployment's topics, signing with :func:`origin_key`, naming the
        deployment by its ``key_prefix``."""
        topics, key = settings.input_topics, origin_key(settings)
        return cls.from_counts(topics, settings.repartition_topic, counts, key, settings.key_prefix)

    def owner(self, customer_key: str) -> int:
        """The partition that owns this customer."""
        return _owner(customer_key, self.partitions)

    def route(self, event: Event, message: RawMessage) -> Event | Reroute | DeadLetter | None:
        """The event to apply here (restored to its first position when rerouted), its reroute, the dead
        letter of a repartition record that does not verify, or None for another deployment's reroute."""
        o = event.origin
        if o.topic == self.repartition_topic:
            if self._foreign(message.headers):
                metrics.REPARTITION_FOREIGN_SKIPPED.inc()
                return None
            restored = restore(event, message.headers, message.value or b"", self.signing_key)
            if restored is not None:
                owner = self.owner(restored.customer_key)
                if owner != o.partition:  # written under another partition count: its owner moved
                    value, key = message.value or b"", _origin_key(message.headers)
                    metrics.REROUTED_AGAIN.inc()
                    replayed = isinstance(restored, RoutedEvent) and restored.replayed
                    return Reroute(value, restored.customer_key, owner, restored.origin, key, self.signing_key,
                                   self.deployment, moved=True, replayed=replayed)  # fmt: skip
                return restored
            metrics.ORIGIN_HEADERS_IGNORED.inc()
            return DeadLetter(message.value or b"", message.key, Reason.UNVERIFIED_REROUTE, UNVERIFIED_DETAIL, o)
        if o.topic not in self.input_topics:
            return event
        owner = self.owner(event.customer_key)
        if owner != o.partition:
            value, key = message.value or b"", message.key
            return Reroute(value, event.customer_key, owner, o, key, self.signing_key, self.deployment)
        return event

    def _foreign(self, headers: Sequence[tuple[str, str | bytes | None]] | None) -> bool:
        """True when the record names a deployment other than this one."""
        if not self.deployment:
            return False
        for name, value in headers or ():
            if name == DEPLOYMENT_HEADER:
                named = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                return named != self.deployment
        return False


def _origin_key(headers: Sequence[tuple[str, str | bytes | None]] | None) -> bytes | None:
    """The original Kafka key a reroute recorded (``ls.origin.key``), if any."""
    for name, value in headers or ():
        if name == "ls.origin.key":
            return value.encode() if isinstance(value, str) else value
    return None


UNVERIFIED_DETAIL = (
    "repartition record without a valid ls.origin.sig: signed with a secret this deployment no longer holds "
    "(Redis lost its data; the replay of the input topics re-routes the event) or not written by the engine; "
    "not applied"
)
"""The detail of an ``unverified_reroute`` dead letter."""


def restore(
    event: Event, headers: Sequence[tuple[str, str | bytes | None]] | None, value: bytes, signing_key: bytes
) -> Event | None:
    """``event`` as first published, from its signed ``ls.origin.*`` headers (None: absent or not
    signed by ``signing_key``)."""
    try:
        wanted = (*ORIGIN_HEADERS, SIGNATURE_HEADER, MOVED_HEADER, REPLAYED_HEADER)
        found = {k: v if isinstance(v, str) else v.decode() for k, v in headers or () if k in wanted and v}
        first = Origin(
            found["ls.origin.topic"],
            int(found["ls.origin.partition"]),
            int(found["ls.origin.offset"]),
            int(found["ls.origin.timestamp"]),
        )
        moved, replayed = found.get(MOVED_HEADER) == "1", found.get(REPLAYED_HEADER) == "1"
        expected = origin_signature(signing_key, first, value, moved, replayed)
        if not hmac.compare_digest(found[SIGNATURE_HEADER], expected):
            return None
    except (KeyError, ValueError, UnicodeDecodeError, TypeError):
        return None
    values = {f.name: getattr(event, f.name) for f in fields(Event)}
    values["origin"] = first
    return RoutedEvent(**values, read_at=event.origin, moved=moved, replayed=replayed)


def is_replay(applied: Mapping[str, int], event: Event) -> bool:
    """True when the customer's replay check (``applied``: first ``topic:partition`` -> newest offset applied)
    says ``event`` was applied before. A moved record (:attr:`RoutedEvent.moved`) is a replay only when it
    is that newest offset itself; otherwise the duplicate check (its event id) decides."""
    o = event.origin
    done = applied.get(f"{o.topic}:{o.partition}", -1)
    if isinstance(event, RoutedEvent) and event.moved:
        return done == o.offset
    return done >= o.offset


@lru_cache(maxsize=65_536)
def _owner(customer_key: str, partitions: int) -> int:
    return owner_partition(customer_key, partitions)
