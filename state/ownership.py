"""Who may write a partition's state: owner epochs, claims and the checks every commit makes.

An engine *claims* partition number ``p`` (of every input topic) before it
reads it: one Lua script on ``ls:{part:<p>}:meta`` raises the owner ``epoch``
(to at least the claimer's clock in ms and, on a Cluster, above every epoch
recorded on any master, so it grows even across a lost meta and a host clock behind),
sets the ``store`` id once (a random id: the marker that this Redis holds the
data it held before) and returns the resume offsets, all atomically. Every
commit then checks, atomically with its writes, that

* the meta hash still exists and carries the same ``store`` id — otherwise
  Redis lost its data (restarted empty, flushed, another server):
  :class:`StateLost`;
* the ``epoch`` is still the one claimed — a higher one: another engine
  claimed the partition since, :class:`Fenced`; a *lower* one: Redis rolled
  back to before this claim (a backup restored, a lagging replica promoted),
  :class:`StateLost` (outside review of #10, 10d H4: this was reported as
  fenced, exit 3, and a supervisor told not to restart on 3 left it stopped);
* each resume offset is not behind the one this engine last committed (or
  found at its claim) — otherwise Redis rolled back (a lagging replica took
  over, AOF lost its last second): :class:`StateLost`.

A commit whose offsets Redis already holds (a retry after a reply was lost)
writes nothing. :class:`Ownership` is the per-process registry of claims that
the Kafka source (which claims) and the engine sink (which commits, releases
fenced partitions and rewinds lost ones) share.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from livesignals import metrics
from state.keys import Keys

# The epoch is at least ARGV[3]: the claimer's clock in milliseconds and, on a Cluster, one above every epoch of
# the partition recorded on any master (state.watermarks), so it keeps growing even after Redis lost the meta
# hash (a Cluster node restarted empty) while ``ls:{<cust>}:writer`` keys elsewhere kept older epochs, whatever
# the claiming host's clock says.
_CLAIM = """
local current = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local epoch = string.format('%d', math.max(current + 1, tonumber(ARGV[3])))
redis.call('HSET', KEYS[1], 'epoch', epoch)
redis.call('HSETNX', KEYS[1], 'store', ARGV[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""


class Fenced(Exception):
    """Another engine claimed the partition: this one must not write it again."""

    def __init__(self, partition: int, detail: str) -> None:
        super().__init__(f"partition {partition}: fenced ({detail}); another engine owns it now")
        self.partition = partition


class StateLost(Exception):
    """Redis no longer holds what this engine committed (lost or rolled back)."""

    def __init__(self, partition: int, detail: str, from_start: bool = False) -> None:
        super().__init__(f"partition {partition}: Redis lost committed state ({detail})")
        self.partition = partition
        self.from_start = from_start
        """A master holding customers' profiles lost them: only a replay from the earliest offset rebuilds them."""


@dataclass
class Claim:
    """This process's claim on partition number ``partition`` of every input topic."""

    partition: int
    epoch: str
    store: str
    offsets: dict[str, int | None]
    """Per topic: the offset Redis held at the claim, then the last one this engine committed."""
    released: bool = False
    """Set when fenced: the source stops reading the partition, the sink drops its messages."""
    replay_from: dict[str, int] | None = None
    """Set when the claim found Redis behind Kafka and chose to rebuild: where to read again."""
    nodes: dict[str, str] | None = None
    """Redis Cluster: marker key -> store id of every master, as recorded in the meta at the claim."""
    lost_nodes: list[str] | None = None
    """Redis Cluster: markers recorded before that are gone or changed (a master lost its data)."""
    rebuild_until: dict[str, int] | None = None
    """After a lost master: the resume offsets at the claim; the replay below them still writes profiles."""
    stale_before: int | None = None
    """Rebuilding the partition as a whole (:mod:`state.rebuild`): its profiles written by an owner epoch
    below this are stale, replaced by the replay rather than trusted to skip it."""
    stale_until: dict[str, int] | None = None
    """Per topic: the offset the replay must pass before the stale marks are dropped."""
    applied_floor: dict[str, int] | None = None
    """Redis Cluster: per topic, the offset every master's applied watermark must hold (the resume offset, or
    the replay's start, then each commit's): one below it rolled back (:mod:`state.watermarks`)."""
    rolled_back: list[str] | None = None
    log_marks: dict[str, str] | None = None
    """Per topic, which record of Kafka's log the engine applied, as recorded in the meta (``log:<topic>``:
    :func:`flows.log_reset.fingerprint`): a claim reads it again to tell a log reset."""
    """Redis Cluster: markers of the masters whose applied watermark was behind at the claim (rolled back)."""
    published: dict[str, int] | None = None
    """Per topic: offsets below which every event's outputs were already confirmed by Kafka (this process
    committed them before a STATE LOSS): a replay below them rebuilds state and publishes nothing
    (:meth:`mark_published`; ``republish_replays``). At a claim only the consumer group's offsets that this
    deployment committed and Kafka's log confirms are taken (:mod:`flows.confirmed`): after a log reset and a
    fresh ``key_prefix`` the group's offsets belong to the old log, and the new log's outputs below them would
    never be published."""
    reroute_again: bool = False
    """The replay below :attr:`published` still publishes its reroutes and dead letters (never flags, triggers or
    decisions): the origin secret that signed the reroutes waiting in the repartition topic was lost with Redis
    (a loss found at start-up, ``repartition_secret`` unset), so those are dead-lettered as unverified and the
    replay's own reroutes are what brings the events to their owner (break-test 10h L3's fix lost them on
    Apache Kafka: ``test_repartition_durability``)."""

    def mark_published(self, offsets: Mapping[str, int | None]) -> None:
        """Raise :attr:`published` to ``offsets`` (committed offsets: what a replay need not publish again).

        >>> c = Claim(0, "5", "s", {"in": None})
        >>> c.mark_published({"in": 40, "rep": None}); c.mark_published({"in": 12, "rep": -1001}); c.published
        {'in': 40}
        """
        for topic, offset in offsets.items():
            if offset is not None and offset > 0:
                self.published = self.published or {}
                self.published[topic] = max(self.published.get(topic, 0), offset)

    def unpublished(self, topic: str, offset: int) -> bool:
        """Whether the outputs of the event at ``offset`` of ``topic`` may not have been published yet.

        >>> c = Claim(0, "5", "s", {"in": 3}, published={"in": 40})
        >>> c.unpublished("in", 39), c.unpublished("in", 40), c.unpublished("rep", 0)
        (False, True, True)
        """
        return self.published is None or offset >= self.published.get(topic, 0)

    def lower_floor(self) -> None:
        """A replay starts below the resume offsets: the watermarks need only hold where it starts.

        >>> c = Claim(0, "5", "s", {"in": 40, "rep": None}, replay_from={"in": 12}, applied_floor={"in": 40})
        >>> c.lower_floor(); c.applied_floor
        {'in': 12}
        """
        if self.applied_floor is None:
            return
        for topic, start in (self.replay_from or {}).items():
            if topic in self.applied_floor:
                self.applied_floor[topic] = min(self.applied_floor[topic], start)
        for topic, offset in self.offsets.items():
            if offset is None:
                self.applied_floor.pop(topic, None)


def claim(
    client: Any,
    keys: Keys,
    partition: int,
    topics: Iterable[str],
    cluster: bool = False,
    clock: Callable[[], float] = time.time,
) -> Claim:
    """Become the owner of ``partition``: bump its epoch and read its resume offsets, atomically.

    ``cluster``: also take an epoch above every one recorded on any master, whatever ``clock`` says, and
    announce it there (:mod:`state.watermarks`); write a batch's aggregates that a crash left in the write-ahead
    record (:mod:`state.write_ahead`); check the masters' store markers (:mod:`state.node_markers`) and applied
    watermarks (a master that rolled back: replay from its watermark).
    """
    topics = list(topics)
    script = client.register_script(_CLAIM)
    owner = owner_id()
    at_least = int(clock() * 1000)
    markers: list[str] = []
    if cluster:
        from state import node_markers, watermarks

        markers = node_markers.marker_keys(client, keys)
        recorded = watermarks.epoch_floor(client, markers, partition)
        if recorded >= at_least:
            metrics.CLAIM_EPOCH_ABOVE_CLOCK.inc()
        at_least = max(at_least, recorded + 1)
    row = script(keys=[keys.partition_meta(partition)], args=[uuid.uuid4().hex, owner, at_least])
    fields = {_text(row[i]): _text(row[i + 1]) for i in range(0, len(row), 2)}
    offsets: dict[str, int | None] = {}
    for topic in topics:
        value = fields.get(f"offset:{topic}")
        offsets[topic] = int(value) if value is not None else None
    held = Claim(partition, fields["epoch"], fields["store"], offsets)
    held.log_marks = {name[len("log:") :]: v for name, v in fields.items() if name.startswith("log:")}
    if cluster:
        from state import rebuild, write_ahead

        watermarks.announce(client, markers, partition, held.epoch)
        rebuild.read_marks(held, fields)

        write_ahead.apply_pending(client, keys, partition, topics)
        held.nodes, held.lost_nodes = node_markers.settle(client, keys, partition, fields, markers)
        held.applied_floor = {t: o for t, o in offsets.items() if o is not None}
        held.rolled_back = watermarks.settle(client, keys, held, fields)
        if held.rolled_back:
            metrics.CLUSTER_ROLLBACKS.labels("claim").inc()
        if held.lost_nodes:
            held.rebuild_until = {t: o for t, o in offsets.items() if o is not None}
        held.lower_floor()
    return held


def owner_id() -> str:
    """This process's name in a partition meta's ``owner`` field: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def check(claim: Claim, row: dict[bytes, bytes], new_offsets: dict[str, int]) -> bool:
    """Raise :class:`StateLost` or :class:`Fenced` unless ``claim`` may commit ``new_offsets``.

    ``row`` is the meta hash as read inside the commit's ``WATCH``. Returns False when
    Redis already holds every one of ``new_offsets`` (a retried commit: write nothing), unless the
    claim is rebuilding profiles a Cluster master lost (``rebuild_until``).
    """
    fields = {_text(k): _text(v) for k, v in row.items()}
    p = claim.partition
    if "store" not in fields:
        raise StateLost(p, "the partition meta is missing")
    if fields["store"] != claim.store:
        raise StateLost(p, "the store id changed")
    if fields.get("epoch") != claim.epoch:
        raise superseded(p, fields.get("epoch"), claim.epoch, f", owner {fields.get('owner')}")
    pending = False
    for topic, new in new_offsets.items():
        current = fields.get(f"offset:{topic}")
        expected = claim.offsets.get(topic)
        if expected is not None and (current is None or int(current) < expected):
            raise StateLost(p, f"{topic} offset {current} behind {expected}")
        pending |= current is None or int(current) < new
        pending |= claim.rebuild_until is not None and new <= claim.rebuild_until.get(topic, -1)
    return pending


def superseded(partition: int, found: str | None, ours: str, detail: str = "") -> Fenced | StateLost:
    """What a meta whose epoch is ``found`` instead of ``ours`` means: a higher epoch, another engine claimed the
    partition since (:class:`Fenced`); a lower one, Redis went back to before this claim (:class:`StateLost`).

    >>> type(superseded(3, "200", "100")).__name__, type(superseded(3, "99", "100")).__name__
    ('Fenced', 'StateLost')
    """
    try:
        older = found is not None and int(found) < int(ours)
    except ValueError:
        older = False
    if older:
        return StateLost(partition, f"the owner epoch went back ({found} < ours {ours}{detail}): Redis rolled back to "
                                    "before this claim")  # fmt: skip
    return Fenced(partition, f"epoch {found} > ours {ours}{detail}")


Claimer = Callable[[int], Claim]
"""``partition -> Claim``: claims in Redis (and checks Kafka's view, see :mod:`flows.kafka_source`)."""


class Ownership:
    """The claims of one process, shared by its source partitions and engine sinks (thread-safe)."""

    def __init__(self, claimer: Claimer | None = None) -> None:
        self.claimer = claimer
        self._claims: dict[int, Claim] = {}
        self._seeks: dict[int, dict[str, int]] = {}
        self._probes: set[int] = set()
        self._log_ends: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    def claim(self, partition: int) -> Claim:
        """Claim ``partition`` (again): the previous claim of this process, if any, is replaced."""
        if self.claimer is None:
            raise RuntimeError("no claimer configured")
        new = self.claimer(partition)
        new.lower_floor()
        with self._lock:
            self._claims[partition] = new
        return new

    def request_seek(self, partition: int, offsets: dict[str, int]) -> None:
        """Ask the source reading ``partition`` to read again from ``offsets`` (topic -> offset)."""
        with self._lock:
            self._seeks[partition] = offsets

    def take_seek(self, partition: int) -> dict[str, int] | None:
        """The pending rewind of ``partition``, if any (the source calls this before each read)."""
        with self._lock:
            return self._seeks.pop(partition, None)

    def request_probe(self, partition: int, held: Claim) -> bool:
        """Ask the source reading ``partition`` to send the sink a probe (:mod:`flows.state_probe`): the
        monitor found Redis lost ``held``'s state while no batch came to notice. False (nothing asked)
        when ``held`` is no longer the partition's claim: a batch re-claimed it since."""
        with self._lock:
            if self._claims.get(partition) is not held or held.released:
                return False
            self._probes.add(partition)
            return True

    def take_probe(self, partition: int) -> bool:
        """True once after :meth:`request_probe` for ``partition`` (the source calls this before each read)."""
        with self._lock:
            if partition not in self._probes:
                return False
            self._probes.discard(partition)
            return True

    def note_log_end(self, partition: int, topic: str, high: int) -> None:
        """Record ``topic``'s log end for ``partition`` as the reading source last saw it in a fetch response.

        The lag monitor asks Kafka with ListOffsets, which the embedded broker (Tansu) answers with 1 for
        every partition: a lag of 0 that hid any backlog on the demo. Fetch responses carry the right end,
        so the source passes it on and the monitor takes the higher of the two (:mod:`flows.monitor`).
        """
        with self._lock:
            self._log_ends[(partition, topic)] = high

    def log_end(self, partition: int, topic: str) -> int | None:
        """The log end :meth:`note_log_end` last recorded for ``(partition, topic)`` (None: never seen)."""
        with self._lock:
            return self._log_ends.get((partition, topic))

    def get(self, partition: int) -> Claim | None:
        """The current claim on ``partition``, if this process holds one."""
        with self._lock:
            return self._claims.get(partition)

    def release(self, partition: int) -> None:
        """Stop owning ``partition`` (fenced)."""
        with self._lock:
            held = self._claims.get(partition)
            if held is not None:
                held.released = True

    def owned(self) -> list[int]:
        """Partitions this process claimed and still owns."""
        with self._lock:
            return sorted(p for p, c in self._claims.items() if not c.released)

    def any_claimed(self) -> bool:
        """True once this process has claimed at least one partition."""
        with self._lock:
            return bool(self._claims)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
