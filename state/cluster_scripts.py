"""The Lua scripts of the commit: on Redis Cluster, in the slots of the keys they guard (:mod:`state.cluster_commit`).

A Cluster batch cannot be one transaction (its keys span hash slots), so the
ownership checks that :func:`state.ownership.check` makes on one Redis inside
MULTI/EXEC are made here by a script in each slot, atomically with the writes
they guard: the partition's resume offsets and aggregates (``commit_script``)
and each customer's profile (``profile_script``). On one Redis, ``read_metas``
reads a commit's partition metas under WATCH in one round trip.
"""

from __future__ import annotations

from typing import Any

# Cluster: check ownership, then write the aggregates (unless they already include the batch) and
# the resume offsets, in the partition's slot, and drop the batch's write-ahead record. ARGV: epoch,
# store, n topics, then per topic: topic, expected offset ('' = none), new offset, n fields, field,
# value, ...; KEYS[1] meta, KEYS[1+i] agg, KEYS[2+n] (optional) the write-ahead record.
_COMMIT = """
local m = redis.call('HMGET', KEYS[1], 'epoch', 'store')
if not m[2] then return {'lost', 'the partition meta is missing'} end
if m[2] ~= ARGV[2] then return {'lost', 'the store id changed'} end
if m[1] ~= ARGV[1] then return {'fenced', m[1]} end
local n = tonumber(ARGV[3])
local i = 4
local plan = {}
for t = 1, n do
  local topic, expected, new, nf = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local cur = redis.call('HGET', KEYS[1], 'offset:' .. topic)
  if expected ~= '' and (not cur or tonumber(cur) < tonumber(expected)) then
    return {'lost', topic .. ' offset ' .. tostring(cur) .. ' behind ' .. expected}
  end
  plan[t] = {topic, cur, new, i + 4, nf}
  i = i + 4 + 2 * nf
end
for t = 1, n do
  local topic, cur, new, first, nf = unpack(plan[t])
  if not cur or tonumber(cur) < new then
    local applied = redis.call('HGET', KEYS[1 + t], 'applied')
    if not applied or tonumber(applied) < new then
      for f = 0, nf - 1 do
        redis.call('HSET', KEYS[1 + t], ARGV[first + 2 * f], ARGV[first + 2 * f + 1])
      end
      redis.call('HSET', KEYS[1 + t], 'applied', new)
    end
    redis.call('HSET', KEYS[1], 'offset:' .. topic, new)
  end
end
if KEYS[2 + n] then redis.call('DEL', KEYS[2 + n]) end
return {'ok', ''}
"""

# Cluster: write a profile unless a newer owner of the same partition number wrote it last.
_PROFILE = """
local w = redis.call('GET', KEYS[2])
if w then
  local sep = string.find(w, '|', 1, true)
  if string.sub(w, 1, sep - 1) == ARGV[1] and tonumber(string.sub(w, sep + 1)) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""


def commit_script(client: Any) -> Any:
    """The Cluster partition commit (see ``_COMMIT``)."""
    return client.register_script(_COMMIT)


def profile_script(client: Any) -> Any:
    """The Cluster conditional profile write (see ``_PROFILE``)."""
    return client.register_script(_PROFILE)


# Every hash of KEYS, in one reply (HGETALL each): a commit's partition metas read under WATCH in one round trip.
_READ_METAS = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""


def read_metas(client: Any, keys: list[str]) -> list[dict[bytes, bytes]]:
    """The hashes at ``keys`` (one Redis, or keys of one slot), in one round trip: a combined round's commit
    reads its partitions' meta hashes under WATCH with this, not one HGETALL round trip each
    (:mod:`flows.one_batch`). A single key is one HGETALL, as before."""
    if len(keys) == 1:
        return [client.hgetall(keys[0])]
    rows = client.eval(_READ_METAS, len(keys), *keys)
    return [dict(zip(row[::2], row[1::2], strict=True)) for row in rows]
