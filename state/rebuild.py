"""Redis Cluster: rebuild a partition whose ``{part:<p>}`` keys were lost or rolled back — exactly.

On a Cluster a partition's meta, aggregates (KPIs, voice of the customer) and
write-ahead record share one master, while its customers' profiles are spread
over every master. When that one master loses its data (restarted empty) or
rolls back (a failover to a lagging replica), the profiles on the other masters
survive *ahead* of the partition's aggregates. Replaying the partition then
skipped every event a surviving profile had applied, so the aggregates missed
those events for good (an outside review measured contacts 65 against 82).

Counting those events again "whether or not their profile survived" cannot be
exact: an event's KPI contributions depend on its customer's state *before*
the event (a repeat contact within the window, a first-contact resolution),
and a surviving profile only holds the state after it. So the partition is
rebuilt as a whole instead: one script in the partition's slot (:func:`begin`)
drops the aggregates, the write-ahead record and the resume offsets, and
records in the meta that every profile of the partition written by an owner
epoch below the claim's is **stale** until the replay reaches the offsets Kafka
held at the claim, or the highest offset any owner committed on a master if
further (``stale_before``, ``stale_until:<topic>``; :func:`stale_until`). The replay starts
at offset 0; :meth:`state.store.ProfileStore.load` reads each loaded customer's
writer key (``ls:{<cust>}:writer`` = ``<p>|<epoch>``) while the partition is
stale and serves an empty state in place of a stale profile, so the customer is
rebuilt from its first event and replaces the stale profile at the next commit.

Nothing is deleted ahead of the replay: a profile is replaced only by its
rebuilt copy, and a process that dies during the rebuild resumes it (the marks
are in the meta; a profile rebuilt before the crash carries the rebuild's epoch
or a later one and is kept). The marks are dropped once the committed offsets
pass ``stale_until`` (:func:`finish`).

This needs every event the surviving profiles hold: the partition is rebuilt
this way only when Kafka still holds each topic from offset 0 (else the claim
takes the older path: replay from what Redis holds, or stop with exit code 4
when that is not in Kafka either — see :mod:`flows.claims`). A single Redis needs
none of this: its profiles and aggregates are lost or rolled back together.
"""

from __future__ import annotations

import logging
from typing import Any

from state import watermarks
from state.keys import Keys
from state.ownership import Claim, superseded

log = logging.getLogger(__name__)

STALE_BEFORE = "stale_before"
"""Meta field: profiles of the partition written by an owner epoch below this are rebuilt, not trusted."""
STALE_UNTIL = "stale_until:"
"""Meta field prefix (``stale_until:<topic>``): the offsets the replay must pass before the marks are dropped."""

# KEYS[1] meta, KEYS[2] write-ahead record, KEYS[3..] the partition's aggregates per topic.
# ARGV: epoch, then per topic: topic, the offset Kafka held at the claim.
_BEGIN = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch ~= ARGV[1] then return {'fenced', tostring(epoch)} end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
for i = 2, #ARGV, 2 do
  redis.call('HDEL', KEYS[1], 'offset:' .. ARGV[i])
  redis.call('HSET', KEYS[1], 'stale_until:' .. ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'stale_before', ARGV[1])
return {'ok', ''}
"""


def wanted(held: Claim, behind: bool, lows: dict[str, int], highs: dict[str, int]) -> bool:
    """Whether ``held``'s partition is rebuilt as a whole (see the module).

    Yes when its meta holds no resume offset (never committed, or lost with its
    master) or Redis is behind the Kafka group (lost or rolled back), Kafka
    still holds every topic from offset 0, and there is something to replay.

    >>> c = Claim(0, "5", "s", {"in": None})
    >>> wanted(c, False, {"in": 0}, {"in": 40}), wanted(c, False, {"in": 3}, {"in": 40})
    (True, False)
    >>> wanted(Claim(0, "5", "s", {"in": 12}), False, {"in": 0}, {"in": 40})  # Redis holds offsets: resume
    False
    """
    fresh = all(offset is None for offset in held.offsets.values())
    if not (fresh or behind):
        return False
    return all(lows.get(t, 1) == 0 for t in held.offsets) and any(highs.get(t, 0) > 0 for t in held.offsets)


def stale_until(client: Any, held: Claim, reported: dict[str, int]) -> dict[str, int]:
    """Per topic, the offset the replay must pass before ``held``'s older profiles are trusted again: the
    highest of what Kafka ``reported`` (the log's end, the group's offset), Redis's resume offset and the
    highest offset any owner committed on a master that kept its data (:func:`state.watermarks.highest_applied`).
    A profile an older owner wrote may have applied events past the first two; trusted again below them, its
    events would be skipped in the rebuilt KPIs."""
    applied = watermarks.highest_applied(client, held.nodes or {}, held.partition, reported)
    return {t: max(r, held.offsets.get(t) or 0, applied.get(t, 0)) for t, r in reported.items()}


def begin(client: Any, keys: Keys, held: Claim, highs: dict[str, int]) -> None:
    """Start rebuilding ``held``'s partition: drop its aggregates and offsets, mark older profiles stale.

    Atomic in the partition's slot and checked against the claim's epoch
    (raises :class:`~state.ownership.Fenced`). Updates ``held``: no resume
    offsets, replay from 0, profiles below its epoch stale until ``highs``.
    """
    topics = list(held.offsets)
    names = [keys.partition_meta(held.partition), keys.write_ahead(held.partition)]
    names += [keys.partition(t, held.partition) for t in topics]
    args: list[Any] = [held.epoch]
    for topic in topics:
        args += [topic, highs.get(topic, 0)]
    verdict, detail = (_text(v) for v in client.register_script(_BEGIN)(keys=names, args=args))
    if verdict == "fenced":
        raise superseded(held.partition, detail, held.epoch)
    held.offsets = dict.fromkeys(topics)
    held.replay_from = dict.fromkeys(topics, 0)
    held.stale_before = int(held.epoch)
    held.stale_until = {t: highs.get(t, 0) for t in topics}


def read_marks(held: Claim, fields: dict[str, str]) -> None:
    """Take a rebuild in progress from the meta's fields (a claim after a restart resumes it)."""
    if STALE_BEFORE not in fields:
        return
    held.stale_before = int(fields[STALE_BEFORE])
    held.stale_until = {
        name[len(STALE_UNTIL) :]: int(value) for name, value in fields.items() if name.startswith(STALE_UNTIL)
    }


def passed(held: Claim) -> bool:
    """True once the committed offsets of a rebuilding claim reached ``stale_until`` on every topic."""
    if held.stale_before is None or held.stale_until is None:
        return False
    return all((held.offsets.get(t) or 0) >= until for t, until in held.stale_until.items())


def finish(client: Any, keys: Keys, held: Claim) -> None:
    """Drop the marks of a rebuild the replay completed (a failure leaves them: the next commit tries again)."""
    names = [STALE_BEFORE] + [STALE_UNTIL + t for t in held.stale_until or {}]
    client.hdel(keys.partition_meta(held.partition), *names)
    log.info("partition %d rebuilt: every profile written before epoch %s replaced", held.partition, held.stale_before)
    held.stale_before = None
    held.stale_until = None


def is_stale(writer: bytes | None, applied: dict[str, int], stale: dict[int, int]) -> bool:
    """Whether a stored profile is stale (``stale``: partition -> epoch of the rebuilds this process runs).

    ``writer`` is its ``<p>|<epoch>`` (missing: the partitions it applied events of decide).

    >>> is_stale(b"3|100", {}, {3: 200}), is_stale(b"3|200", {}, {3: 200}), is_stale(b"2|100", {}, {3: 200})
    (True, False, False)
    >>> is_stale(None, {"in:3": 7}, {3: 200})
    True
    """
    if writer is None:
        return any(int(name.rpartition(":")[2]) in stale for name in applied)
    partition, _, epoch = _text(writer).partition("|")
    since = stale.get(int(partition))
    return since is not None and int(epoch) < since


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
