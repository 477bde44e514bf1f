"""Redis Cluster: a write-ahead record of a batch's partition aggregates, so a crash between steps loses nothing.

On a cluster a batch's profiles and its partition aggregates live on different
nodes and are written in order (:mod:`state.cluster_commit`): profiles first,
then one script writes the aggregates and the resume offsets. A process that
died between the two used to leave the batch's KPI and voice-of-the-customer
contributions out for good: the replay skips the events whose profiles say
they were applied.

So before the profiles, the batch's aggregates (the whole hash fields as they
will be written, they are not deltas) and the offsets they include go to
``ls:{part:<p>}:wal`` — the partition's own slot — by a script that checks the
claim first. The commit's last step deletes it, in the same script that writes
the aggregates. If it is still there when the partition is claimed next, the
batch may have reached some profiles: :func:`apply_pending` writes the recorded
aggregates (unless they already include those offsets: exactly once) and their
``applied`` offset, but leaves the resume offsets where they were. The replay
then re-applies the events whose profiles were not written, and the engine
counts an event in the aggregates only at or after their ``applied`` offset
(:attr:`operators.partition.PartitionAggregates.applied`): every event of the
batch is counted once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from state.keys import Keys

# KEYS[1] meta, KEYS[2] wal. ARGV: epoch, store, then per field: name, value. Same verdicts as the commit.
_WRITE = """
local m = redis.call('HMGET', KEYS[1], 'epoch', 'store')
if not m[2] then return {'lost', 'the partition meta is missing'} end
if m[2] ~= ARGV[2] then return {'lost', 'the store id changed'} end
if m[1] ~= ARGV[1] then return {'fenced', m[1]} end
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return {'ok', ''}
"""

# KEYS[1] wal, KEYS[1 + i] the aggregates of ARGV[i]. Returns the topics whose aggregates were written.
_APPLY = """
local done = {}
for t = 1, #ARGV do
  local topic = ARGV[t]
  local recorded = redis.call('HGET', KEYS[1], 'offset|' .. topic)
  if recorded then
    local applied = redis.call('HGET', KEYS[1 + t], 'applied')
    if not applied or tonumber(applied) < tonumber(recorded) then
      local prefix = 'f|' .. topic .. '|'
      local row = redis.call('HGETALL', KEYS[1])
      for i = 1, #row, 2 do
        if string.sub(row[i], 1, #prefix) == prefix then
          redis.call('HSET', KEYS[1 + t], string.sub(row[i], #prefix + 1), row[i + 1])
        end
      end
      redis.call('HSET', KEYS[1 + t], 'applied', recorded)
      done[#done + 1] = topic
    end
  end
end
redis.call('DEL', KEYS[1])
return done
"""


def record(aggregates: dict[tuple[str, int], dict[str, bytes]], partition: int, offsets: dict[str, int]) -> list[Any]:
    """The write-ahead fields of ``partition``'s batch: per topic read, its new offset and aggregates.

    >>> record({("in", 0): {"kpi": b"{}"}}, 0, {"in": 7})
    ['offset|in', 7, 'f|in|kpi', b'{}']
    """
    out: list[Any] = []
    for topic, new in offsets.items():
        fields = aggregates.get((topic, partition))
        if fields is None:
            continue
        out += [f"offset|{topic}", new]
        for name, value in fields.items():
            out += [f"f|{topic}|{name}", value]
    return out


def write_script(client: Any) -> Any:
    """The checked write-ahead write (see ``_WRITE``)."""
    return client.register_script(_WRITE)


def apply_pending(client: Any, keys: Keys, partition: int, topics: Iterable[str]) -> list[str]:
    """Write a batch's recorded aggregates if the commit did not get to them (at a claim); the topics written."""
    topics = list(topics)
    script = client.register_script(_APPLY)
    names = [keys.write_ahead(partition)] + [keys.partition(t, partition) for t in topics]
    return [t.decode() if isinstance(t, bytes) else str(t) for t in script(keys=names, args=topics)]
