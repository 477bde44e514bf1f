"""One learner per model kind, whatever the partition count: a shared, ordered log of lessons.

Every label any partition produces (a churn snapshot, a survey, an offer
response, an order for the anomaly model) becomes a *lesson*: plain data,
``[source, offset, seq, kind, args, said]``. Each batch's lessons are appended
to one shared log (a Redis stream, :mod:`state.models_store`) **before** the
batch's state is committed; every worker's :class:`SharedLearner` reads the
log in its one order and learns each lesson once. So every worker holds the
same models, trained on the labels of every partition, and the trust
threshold (``warm``) counts all of them.

Exactly once:

* a lesson carries its origin: ``source`` (``topic:partition``), the event's
  ``offset`` and its ``seq`` within the event. A batch replayed after a failed
  commit appends the same lessons again; the learner keeps, per source, the
  highest ``(offset, seq)`` learned and skips anything not above it.
* checkpoints (the models, the log position, the per-source marks) are
  written every ``checkpoint_every`` lessons or ``checkpoint_every_s`` seconds,
  never per batch. A restarted worker loads the checkpoint and replays the
  lessons after it: it neither forgets nor learns twice.
* the log keeps the lessons since the previous checkpoint; a worker that fell
  behind the trimmed part loads the newer checkpoint instead (the models are a
  function of the lesson sequence, so that is the same as catching up).

A worker scores with the models as of its last catch-up (before each batch)
and learns its own batch's lessons after its commit, from the read that shared the
append's round trip (:meth:`SharedLearner.publish_and_read`, :meth:`SharedLearner.learn_read`):
scores lag the newest labels by about one batch.

>>> from models.registry import ModelSet
>>> log = MemoryModelLog()
>>> a, b = SharedLearner(log), SharedLearner(log)
>>> view = a.view()
>>> view.at("in:0", 7)
>>> view.teach("sentiment", ["great service", "positive"])
>>> a.publish(view.take())
>>> a.catch_up(), b.catch_up() >= 0
(1, True)
>>> a.models.model("sentiment").labels, b.models.model("sentiment").labels
(1, 1)
>>> a.publish([["in:0", 7, 0, "sentiment", ["great service", "positive"], None]])
>>> a.catch_up()
0
>>> a.models.model("sentiment").labels   # the same lesson again: skipped
1
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from livesignals import metrics, serde
from models.registry import KINDS, ModelSet, Slot

log = logging.getLogger(__name__)
_LESSONS_LEARNED = metrics.MODEL_LESSONS.labels("learned")
_LESSONS_SKIPPED = metrics.MODEL_LESSONS.labels("skipped")
"""Children of ``livesignals_model_lessons_total`` counted per lesson (``labels()`` looks them up: once)."""

Lesson = list[Any]
"""``[source, offset, seq, kind, args, said]`` (JSON-serialisable)."""


@dataclass(frozen=True, slots=True)
class CheckpointMeta:
    """Where the newest checkpoint stands: lessons learned, log position, and what the log still holds."""

    applied: int = -1
    """Lessons learned by the checkpointed models (-1: no checkpoint yet)."""
    position: str = "0-0"
    trimmed_before: str = "0-0"


LogRead = tuple[list[tuple[str, bytes]], CheckpointMeta]
"""What :meth:`ModelLog.read` answers: ``(position, encoded lesson)`` entries and the checkpoint's meta."""


class ModelLog(Protocol):
    """The shared lesson log and the checkpoint next to it (Redis: :class:`state.models_store.RedisModelLog`)."""

    def append(self, lessons: list[bytes]) -> None:
        """Append encoded lessons, in order (one round trip)."""

    def read(self, after: str, count: int) -> tuple[list[tuple[str, bytes]], CheckpointMeta]:
        """Up to ``count`` lessons after position ``after``, with the newest checkpoint's meta."""

    def append_and_read(
        self, lessons: list[bytes], after: str, count: int
    ) -> tuple[list[tuple[str, bytes]], CheckpointMeta]:
        """:meth:`append`, then :meth:`read` (which sees what was appended), in one round trip."""

    def load_checkpoint(self) -> tuple[bytes, CheckpointMeta] | None:
        """The newest checkpoint, if any."""

    def save_checkpoint(self, blob: bytes, meta: CheckpointMeta, summary: bytes) -> bool:
        """Store a checkpoint unless a newer one is there; trim the log before the previous one."""

    def save_summary(self, summary: bytes) -> None:
        """Replace the models' published summary (versions and validation, JSON) between checkpoints."""


def position_key(position: str) -> tuple[int, int]:
    """A log position (``ms-seq``) as a comparable pair.

    >>> position_key("12-3") < position_key("12-10")
    True
    """
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class LearnerState:
    """What a checkpoint holds: the models and how far into the log they have learned."""

    models: ModelSet
    position: str = "0-0"
    applied: int = 0
    marks: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per source (``topic:partition``): the highest ``(offset, seq)`` learned."""


class ModelView:
    """The shared models as scoring sees them: reads go to the models, :meth:`teach` records a lesson."""

    def __init__(self, models: ModelSet) -> None:
        self.models = models
        self.lessons: list[Lesson] = []
        self._source, self._offset, self._seq = "", 0, 0
        self._event_start = 0

    @property
    def champions(self) -> dict[str, Slot]:
        """The champion of every kind."""
        return self.models.champions

    def model(self, kind: str) -> Any:
        """The champion of ``kind``."""
        return self.models.model(kind)

    def all(self, kind: str) -> list[tuple[str, Slot]]:
        """Champion and challenger of ``kind``."""
        return self.models.all(kind)

    def at(self, source: str, offset: int, seq: int = 0) -> None:
        """The lessons that follow come from the event at ``source``/``offset`` (ids start at ``seq``)."""
        self._source, self._offset, self._seq = source, offset, seq
        self._event_start = len(self.lessons)

    def discard_current(self) -> None:
        """Forget the lessons of the current event (it failed and is dead-lettered: all or nothing)."""
        del self.lessons[self._event_start :]

    def teach(self, kind: str, args: list[Any], said: dict[str, float | None] | None = None) -> None:
        """Record one lesson for the shared learner."""
        self.lessons.append([self._source, self._offset, self._seq, kind, args, said])
        self._seq += 1

    def take(self) -> list[Lesson]:
        """The lessons recorded so far (and start afresh)."""
        out, self.lessons = self.lessons, []
        return out


class SharedLearner:
    """Keeps this worker's copy of the shared models in step with the lesson log."""

    def __init__(
        self,
        log: ModelLog,
        models_config: dict[str, Any] | None = None,
        checkpoint_every: int = 20_000,
        checkpoint_every_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        read_count: int = 10_000,
    ) -> None:
        self.log = log
        self.models_config = models_config
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_s = checkpoint_every_s
        self.clock = clock
        self.read_count = read_count
        unknown = set(models_config or {}) - set(KINDS)
        if unknown:  # checked now, built at first use (a models-off engine never imports River: seconds at start)
            raise ValueError(f"unknown model kinds in settings: {sorted(unknown)}")
        self._state: LearnerState | None = None
        self.checkpoints_written = 0
        self.last_checkpoint_bytes = 0
        self.last_checkpoint_s = 0.0
        self._checkpointed_at = clock()
        self._started = False

    @property
    def state(self) -> LearnerState:
        """The models and how far into the log they learned (the models are built at first use)."""
        if self._state is None:
            self._state = LearnerState(ModelSet.from_config(self.models_config))
        return self._state

    @state.setter
    def state(self, value: LearnerState) -> None:
        self._state = value

    @property
    def models(self) -> ModelSet:
        """This worker's copy of the shared models."""
        return self.state.models

    def view(self) -> ModelView:
        """A fresh view for one batch's scoring."""
        return ModelView(self.state.models)

    def publish(self, lessons: list[Lesson]) -> None:
        """Append a batch's lessons to the shared log (before the batch's state commit)."""
        if lessons:
            self.log.append([serde.dumps(lesson) for lesson in lessons])
            metrics.MODEL_LESSONS.labels("published").inc(len(lessons))

    def publish_and_read(self, lessons: list[Lesson]) -> LogRead | None:
        """:meth:`publish`, and in the same round trip the log from this worker's position up to these lessons
        (and any after them): hand it to :meth:`learn_read` once the batch's state is committed, which
        learns what a :meth:`catch_up` then would have learned, without a round trip of its own. No lessons:
        nothing is appended nor read, None (the next :meth:`catch_up` learns what other workers appended)."""
        if not lessons:
            return None
        if not self._started:  # the first catch-up loads the checkpoint before it reads: left to it
            self.publish(lessons)
            return None
        read = self.log.append_and_read([serde.dumps(lesson) for lesson in lessons], self.state.position,
                                        self.read_count)  # fmt: skip
        metrics.MODEL_LESSONS.labels("published").inc(len(lessons))
        return read

    def learn_read(self, read: LogRead | None) -> int:
        """Learn what :meth:`publish_and_read` read (then catch up further if it was a full page); how many were
        learned. After the commit, as a :meth:`catch_up` was: a crash between the append and the commit
        finds these lessons in the log, not yet in a checkpoint."""
        return 0 if read is None else self.catch_up(read)

    def catch_up(self, first: LogRead | None = None) -> int:
        """Learn every lesson in the log after this worker's position; how many were learned
        (``first``: the first read's answer, already read from this worker's position)."""
        if not self._started:
            self._started = True
            self._load_checkpoint()
        learned = 0
        while True:
            entries, meta = first if first is not None else self.log.read(self.state.position, self.read_count)
            first = None
            if position_key(self.state.position) < position_key(meta.trimmed_before):
                self._load_checkpoint()  # fell behind the trimmed log: the newer checkpoint is ahead
                continue
            for position, raw in entries:
                learned += self._learn(serde.loads(raw))
                self.state.position = position
            if len(entries) < self.read_count:
                break
        self._maybe_checkpoint(meta)
        return learned

    def _learn(self, lesson: Lesson) -> int:
        source, offset, seq, kind, args, said = lesson
        mark = (offset, seq)
        state = self.state
        if source and tuple(state.marks.get(source, (-1, -1))) >= mark:
            _LESSONS_SKIPPED.inc()
            return 0  # appended again by a replayed batch
        state.marks[source] = mark
        state.applied += 1
        _LESSONS_LEARNED.inc()
        if kind in state.models.champions:
            try:
                state.models.teach(kind, args, said)
            except Exception:  # a lesson a model cannot learn must not stop every worker's batches
                log.exception("lesson %s:%s:%s for %s could not be learned; skipped", source, offset, seq, kind)
                metrics.MODEL_LESSONS.labels("failed").inc()
        return 1

    def _maybe_checkpoint(self, meta: CheckpointMeta) -> None:
        due = self.state.applied - meta.applied
        if meta.applied < 0:
            self.checkpoint()  # the first: the models' summary is readable from the start
            return
        if due <= 0:
            return
        if due < self.checkpoint_every and self.clock() - self._checkpointed_at < self.checkpoint_every_s:
            return
        self.checkpoint()

    def checkpoint(self) -> None:
        """Write a checkpoint now (the log before the previous checkpoint is trimmed)."""
        started = time.perf_counter()
        blob = pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)
        meta = CheckpointMeta(self.state.applied, self.state.position)
        summary = serde.dumps(self.state.models.summary())
        if self.log.save_checkpoint(blob, meta, summary):
            self.checkpoints_written += 1
            self.last_checkpoint_bytes = len(blob)
            self.last_checkpoint_s = time.perf_counter() - started
            metrics.MODEL_CHECKPOINT_BYTES.set(len(blob))
            metrics.MODEL_CHECKPOINT_SECONDS.observe(self.last_checkpoint_s)
        self._checkpointed_at = self.clock()

    def save_summary(self) -> None:
        """Publish the models' versions and figures now (after a promotion)."""
        self.log.save_summary(serde.dumps(self.state.models.summary()))

    def _load_checkpoint(self) -> None:
        found = self.log.load_checkpoint()
        if found is None:
            return
        restored: LearnerState = pickle.loads(found[0])  # noqa: S301 - our own checkpoint in our own Redis
        self.state = restored
        self._reconcile()

    def _reconcile(self) -> None:
        """Champions are kept (promotion is by command); a kind added since starts fresh, and a
        challenger whose configuration changed in the settings is replaced by a fresh one."""
        configured = ModelSet.from_config(self.models_config)
        models = self.state.models
        for kind, slot in configured.champions.items():
            models.champions.setdefault(kind, slot)
        for kind, slot in configured.challengers.items():
            current = models.challengers.get(kind)
            if current is None or current.version != slot.version:
                models.challengers[kind] = slot


def seed_checkpoint(log: ModelLog, models: ModelSet) -> bool:
    """Start a deployment (or a replay) from models trained elsewhere: a checkpoint before any lesson."""
    state = LearnerState(models)
    blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return log.save_checkpoint(blob, CheckpointMeta(0, "0-0"), serde.dumps(models.summary()))


class MemoryModelLog:
    """The lesson log and checkpoint in memory (offline replay, notebooks, tests)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, bytes]] = []
        self.checkpoint: tuple[bytes, CheckpointMeta] | None = None
        self.appended = 0
        self.summary: bytes = b"[]"

    def append(self, lessons: list[bytes]) -> None:
        """Append in order; positions are ``0-<n>``."""
        for raw in lessons:
            self.appended += 1
            self.entries.append((f"0-{self.appended}", raw))

    def append_and_read(
        self, lessons: list[bytes], after: str, count: int
    ) -> tuple[list[tuple[str, bytes]], CheckpointMeta]:
        """:meth:`append`, then :meth:`read`."""
        self.append(lessons)
        return self.read(after, count)

    def read(self, after: str, count: int) -> tuple[list[tuple[str, bytes]], CheckpointMeta]:
        """Lessons after ``after``."""
        after_key = position_key(after)
        start = 0 if not self.entries else max(0, after_key[1] - position_key(self.entries[0][0])[1] + 1)
        meta = self.checkpoint[1] if self.checkpoint else CheckpointMeta()
        return self.entries[start : start + count], meta

    def load_checkpoint(self) -> tuple[bytes, CheckpointMeta] | None:
        """The newest checkpoint."""
        return self.checkpoint

    def save_checkpoint(self, blob: bytes, meta: CheckpointMeta, summary: bytes) -> bool:
        """Keep it unless a newer one is there; drop the lessons before the previous checkpoint."""
        previous = self.checkpoint[1] if self.checkpoint else CheckpointMeta()
        if previous.applied >= meta.applied:
            return False
        self.checkpoint = (blob, CheckpointMeta(meta.applied, meta.position, previous.position))
        self.summary = summary
        cut = position_key(previous.position)
        self.entries = [e for e in self.entries if position_key(e[0]) >= cut]
        return True

    def save_summary(self, summary: bytes) -> None:
        """Replace the summary."""
        self.summary = summary
