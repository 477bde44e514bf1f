"""The shared models in Redis: the lesson log (a stream) and its checkpoint (a hash).

===============================  ======  ==============================================  ======================
key                              type    holds                                           bound
===============================  ======  ==============================================  ======================
``ls:{models}:lessons``          stream  every lesson of every partition, in the order   the lessons since the
                                         all workers learn them                          previous checkpoint
                                         (:mod:`operators.scoring.learner`)              (trimmed at each one)
``ls:{models}:checkpoint``       hash    ``blob`` (pickled models and log position),     one checkpoint; the
                                         ``applied``, ``position``, ``trimmed``,         models' own bounds
                                         ``summary`` (JSON: versions and validation)
===============================  ======  ==============================================  ======================

Both keys share the ``{models}`` hash tag, so on Redis Cluster they live in one
slot and the checkpoint script can trim the stream. Reading KPIs never touches
them; ``livesignals models status`` reads only ``summary``.
"""

from __future__ import annotations

from typing import Any

from livesignals import metrics, serde
from operators.scoring.learner import CheckpointMeta

# Store a checkpoint unless a newer one is there; trim the stream before the previous checkpoint.
_SAVE = """
local applied = tonumber(redis.call('HGET', KEYS[1], 'applied') or '-1')
if applied >= tonumber(ARGV[2]) then return 0 end
local previous = redis.call('HGET', KEYS[1], 'position') or '0-0'
redis.call('HSET', KEYS[1], 'blob', ARGV[1], 'applied', ARGV[2], 'position', ARGV[3],
           'trimmed', previous, 'summary', ARGV[4])
redis.call('XTRIM', KEYS[2], 'MINID', previous)
return 1
"""


def lessons_key(prefix: str) -> str:
    """The lesson stream of a deployment."""
    return f"{prefix}:{{models}}:lessons"


def checkpoint_key(prefix: str) -> str:
    """The models' checkpoint hash of a deployment."""
    return f"{prefix}:{{models}}:checkpoint"


class RedisModelLog:
    """:class:`operators.scoring.learner.ModelLog` on a Redis (or Redis Cluster) client."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.lessons = lessons_key(prefix)
        self.checkpoint = checkpoint_key(prefix)
        self._save = client.register_script(_SAVE)

    def append(self, lessons: list[bytes]) -> None:
        """XADD each lesson, in order, in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for raw in lessons:
            pipe.xadd(self.lessons, {"l": raw})
        pipe.execute()
        metrics.REDIS_ROUNDTRIPS.labels("lessons").inc()
        metrics.REDIS_COMMANDS.labels("lessons").inc(len(lessons))

    def read(self, after: str, count: int) -> tuple[list[tuple[str, bytes]], CheckpointMeta]:
        """XRANGE after ``after`` and the checkpoint's meta, in one round trip."""
        return self.append_and_read([], after, count)

    def append_and_read(
        self, lessons: list[bytes], after: str, count: int
    ) -> tuple[list[tuple[str, bytes]], CheckpointMeta]:
        """XADD each lesson, in order, then XRANGE after ``after`` and the checkpoint's meta: one pipelined
        round trip (the server runs a connection's commands in order, so the read sees the lessons)."""
        pipe = self.client.pipeline(transaction=False)
        for raw in lessons:
            pipe.xadd(self.lessons, {"l": raw})
        pipe.xrange(self.lessons, min=f"({after}", max="+", count=count)
        pipe.hmget(self.checkpoint, "applied", "position", "trimmed")
        *_, entries, (applied, position, trimmed) = pipe.execute()
        metrics.REDIS_ROUNDTRIPS.labels("lessons").inc()
        if lessons:
            metrics.REDIS_COMMANDS.labels("lessons").inc(len(lessons))
        meta = CheckpointMeta(
            -1 if applied is None else int(applied), (position or b"0-0").decode(), (trimmed or b"0-0").decode()
        )
        return [(i.decode(), fields[b"l"]) for i, fields in entries], meta

    def load_checkpoint(self) -> tuple[bytes, CheckpointMeta] | None:
        """The checkpoint hash, if any."""
        blob, applied, position, trimmed = self.client.hmget(self.checkpoint, "blob", "applied", "position", "trimmed")
        if blob is None:
            return None
        return blob, CheckpointMeta(int(applied), position.decode(), (trimmed or b"0-0").decode())

    def save_checkpoint(self, blob: bytes, meta: CheckpointMeta, summary: bytes) -> bool:
        """Atomically: keep it unless a newer one is there, and trim the stream (script, one slot)."""
        done = self._save(keys=[self.checkpoint, self.lessons], args=[blob, meta.applied, meta.position, summary])
        metrics.REDIS_ROUNDTRIPS.labels("checkpoint").inc()
        return bool(done)

    def save_summary(self, summary: bytes) -> None:
        """HSET the summary alone (after a promotion)."""
        self.client.hset(self.checkpoint, "summary", summary)

    def summary(self) -> list[dict[str, Any]]:
        """Versions and validation figures of the newest checkpoint (no unpickling)."""
        raw = self.client.hget(self.checkpoint, "summary")
        rows: list[dict[str, Any]] = serde.loads(raw) if raw else []
        return rows
