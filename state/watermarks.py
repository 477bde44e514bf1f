"""Redis Cluster: notice a master that rolled back, and keep owner epochs growing without the host clock.

A master can *roll back* without losing its store marker (:mod:`state.node_markers`):
a backup restored, a failover to a lagging replica. Only the partition whose
meta lives there notices (its resume offsets fall behind the consumer group);
the other partitions' customers stored on that master silently lost their
latest events. So next to each master's marker, in the same hash slot, the
engine keeps an **applied watermark** hash ``ls:{node:<i>}:applied``:

* ``<p>:<topic>`` — the offset up to which every write of partition ``p`` to
  that master is committed. Each Cluster commit writes it on **every** master
  (one script per master per batch, pipelined after that master's profiles
  and their TTLs, before the resume offsets move: :mod:`state.cluster_commit`).
  Replication and snapshots keep a master's writes in order, so a master that
  holds watermark ``X`` holds every profile written before it;
* ``top:<p>:<topic>`` — the highest ``<p>:<topic>`` ever written there (a rebuild's
  replay lowers ``<p>:<topic>``, never this): every profile of partition ``p``
  on that master applied events below it, whichever owner wrote it. A
  partition rebuilt as a whole keeps profiles stale until its replay passes
  the highest of them (:func:`highest_applied`);
* ``epoch:<p>`` — the highest owner epoch of partition ``p`` that claimed
  (:func:`announce`) or wrote there. A write by an older epoch is refused
  (the writer is fenced), and a claim takes an epoch above every recorded one
  (:func:`epoch_floor`): epochs grow even when the partition's meta was lost
  and the claiming host's clock is behind the previous owner's.

At a claim (:func:`settle`) and before each batch (:func:`behind`, in the
read :func:`state.node_markers.check` already makes per master), a master
whose watermark for the partition is below what the partition committed
rolled back: the partition is replayed from that watermark (from the start if
the watermark is missing on a master that had it), below the resume offsets
too (``rebuild_until``); profiles carry their applied offsets, so the replay
applies each event once. The meta records, per master, that its watermark was
established (``applied:<marker>``): a deployment upgraded to this, or a master
new to the partition, starts trusted at the resume offsets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ESTABLISHED = "applied:"
"""Meta field prefix (``applied:<marker key>``): that master's watermark for the partition is kept."""

# KEYS[1] a master's watermark hash. ARGV: n partitions, then per partition: p, epoch, n topics, topic, offset, ...
# Refuses everything (returns the partition) if a newer epoch of one of them announced itself there.
_WRITE = """
local n, i = tonumber(ARGV[1]), 2
local plan = {}
for k = 1, n do
  local p, epoch, nt = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local held = redis.call('HGET', KEYS[1], 'epoch:' .. p)
  if held and tonumber(held) > tonumber(epoch) then return p end
  plan[k] = {p, epoch, i + 3, nt}
  i = i + 3 + 2 * nt
end
for k = 1, n do
  local p, epoch, first, nt = unpack(plan[k])
  redis.call('HSET', KEYS[1], 'epoch:' .. p, epoch)
  for t = 0, nt - 1 do
    local name, offset = p .. ':' .. ARGV[first + 2 * t], ARGV[first + 2 * t + 1]
    redis.call('HSET', KEYS[1], name, offset)
    local top = redis.call('HGET', KEYS[1], 'top:' .. name)
    if not top or tonumber(top) < tonumber(offset) then redis.call('HSET', KEYS[1], 'top:' .. name, offset) end
  end
end
return ''
"""

# KEYS[1] a master's watermark hash; ARGV: the epoch field, the claim's epoch. Only ever raised.
_ANNOUNCE = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held or tonumber(held) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


def applied_key(marker: str) -> str:
    """The watermark hash of the master holding store marker ``marker`` (same hash slot).

    >>> applied_key("ls:{node:7}:store")
    'ls:{node:7}:applied'
    """
    return marker[: -len(":store")] + ":applied"


def field(partition: int, topic: str) -> str:
    """The watermark field of ``topic``'s partition ``partition``."""
    return f"{partition}:{topic}"


def write_script(client: Any) -> Any:
    """The per-master watermark write of a commit (see ``_WRITE``)."""
    return client.register_script(_WRITE)


def write_args(claims: dict[int, Any], offsets: dict[int, dict[str, int]]) -> list[Any]:
    """``_WRITE``'s arguments for a commit of ``offsets`` (partition -> topic -> next offset) under ``claims``.

    >>> from state.ownership import Claim
    >>> write_args({3: Claim(3, "9", "s", {})}, {3: {"in": 40}})
    [1, 3, '9', 1, 'in', 40]
    """
    args: list[Any] = [0]
    for partition, news in offsets.items():
        held = claims.get(partition)
        if held is None:
            continue
        args[0] += 1
        args += [partition, held.epoch, len(news)]
        for topic, new in news.items():
            args += [topic, new]
    return args


def highest_applied(client: Any, markers: Iterable[str], partition: int, topics: Iterable[str]) -> dict[str, int]:
    """Per topic, the highest offset any owner of ``partition`` committed on any of the masters (by marker):
    no profile an older owner wrote applied an event at or above it (topics never written there are left out).

    Why: the masters that kept their data hold profiles an older owner wrote up to the offsets it applied,
    which can be past the consumer group's offsets and, on a broker that misreports the log's end (the
    embedded Tansu reports 1), past every figure Kafka gives; a rebuild that trusted those profiles again
    below it would skip their events in the partition's KPIs (break-test of #10's live Cluster rebuild)."""
    names, topics = [applied_key(m) for m in markers], sorted(topics)
    if not names or not topics:
        return {}
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, [f"top:{field(partition, t)}" for t in topics] + [field(partition, t) for t in topics])
    out: dict[str, int] = {}
    for row in pipe.execute():
        for i, topic in enumerate(topics):
            for value in (row[i], row[len(topics) + i]):  # the plain field: masters written before ``top``
                if value is not None:
                    out[topic] = max(out.get(topic, 0), int(value))
    return out


def epoch_floor(client: Any, markers: Iterable[str], partition: int) -> int:
    """The highest owner epoch of ``partition`` recorded on any master (0 if none)."""
    names = [applied_key(m) for m in markers]
    if not names:
        return 0
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hget(name, f"epoch:{partition}")
    return max((int(v) for v in pipe.execute() if v is not None), default=0)


def announce(client: Any, markers: Iterable[str], partition: int, epoch: str) -> None:
    """Record ``epoch`` as ``partition``'s on every master: an older owner's later writes there are refused,
    and a claim after a lost meta still takes a higher epoch (:func:`epoch_floor`)."""
    script = client.register_script(_ANNOUNCE)
    for marker in markers:
        script(keys=[applied_key(marker)], args=[f"epoch:{partition}", epoch])


def settle(client: Any, keys: Any, held: Any, meta: dict[str, str]) -> list[str]:
    """At a claim: compare each master's watermark with ``held``'s resume offsets; returns the markers of the
    masters that rolled back and sets ``held.replay_from`` (per topic, the lowest watermark; 0 if missing) and
    ``held.rebuild_until``. Masters not yet established for the partition start at the resume offsets."""
    p, nodes = held.partition, sorted(held.nodes or {})
    committed = {t: o for t, o in held.offsets.items() if o is not None}
    topics = sorted(committed)
    fresh = [k for k in nodes if ESTABLISHED + k not in meta]
    if fresh:
        pipe = client.pipeline(transaction=False)
        for k in fresh:
            for topic in topics:
                pipe.hsetnx(applied_key(k), field(p, topic), committed[topic])
        pipe.execute()
        client.hset(keys.partition_meta(p), mapping={ESTABLISHED + k: 1 for k in fresh})
    gone = [name for name in meta if name.startswith(ESTABLISHED) and name[len(ESTABLISHED) :] not in nodes]
    if gone:
        client.hdel(keys.partition_meta(p), *gone)
    starts = behind(client, p, [k for k in nodes if k not in fresh], committed)
    if not starts:
        return []
    rolled = sorted({k for k, _ in starts})
    held.replay_from = {t: min([o] + [s.get(t, o) for _, s in starts]) for t, o in committed.items()}
    held.rebuild_until = dict(committed)
    return rolled


def behind(client: Any, partition: int, markers: list[str], floor: dict[str, int]) -> list[tuple[str, dict[str, int]]]:
    """Masters (by marker) whose watermark for ``partition`` is below ``floor`` (topic -> offset every master must
    hold), each with where to replay each such topic from (0: the watermark is missing)."""
    topics = sorted(floor)
    if not topics or not markers:
        return []
    pipe = client.pipeline(transaction=False)
    for k in markers:
        pipe.hmget(applied_key(k), [field(partition, t) for t in topics])
    return compare(markers, topics, pipe.execute(), floor)


def compare(markers: list[str], topics: list[str], rows: list[list[Any]], floor: dict[str, int]) -> list[Any]:
    """The pure half of :func:`behind`: ``rows`` are the masters' watermarks in ``topics`` order.

    >>> compare(["a", "b"], ["in"], [[b"40"], [b"25"]], {"in": 40})
    [('b', {'in': 25})]
    >>> compare(["a"], ["in"], [[None]], {"in": 40})
    [('a', {'in': 0})]
    """
    out = []
    for marker, row in zip(markers, rows, strict=True):
        starts = {}
        for topic, value in zip(topics, row, strict=True):
            if value is None or int(value) < floor[topic]:
                starts[topic] = 0 if value is None else int(value)
        if starts:
            out.append((marker, starts))
    return out
