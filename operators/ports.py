"""The engine's ports: what it publishes to Kafka and what it needs from the state layer.

Kept apart from :mod:`operators.engine` so that adapters (``flows/``, ``state/``, the
in-memory store) read one short module to see what they must provide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from operators.partition import PartitionAggregates
from operators.profile360.profile import CustomerState
from operators.rules.signals import Flag
from operators.scoring.learner import ModelLog


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record for a Kafka topic (``partition`` None: the producer's partitioner decides)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]] | None = None
    partition: int | None = None
    tombstone: bool = False
    """Published with no value at all (``value`` is empty): an erased customer's key, for compacted topics."""


class Publisher(Protocol):
    """Publishes records and returns only once Kafka has confirmed all of them.

    A publisher may also split :meth:`publish` in two, ``send(records)`` (produce, no wait) then ``confirm()``
    (wait, retry, or raise as ``publish`` does): the engine then plans its commit while the broker writes
    (:func:`send`). One without them (in memory, tests) is published at once."""

    def publish(self, records: list[OutRecord]) -> None:
        """Send and confirm, or raise."""


def send(publisher: Publisher, records: list[OutRecord]) -> Callable[[], None]:
    """Send ``records`` now; what waits for their confirmation (raises as ``publish`` would). A publisher without
    ``send``/``confirm`` publishes at once and its confirmation does nothing."""
    sending = getattr(publisher, "send", None)
    if sending is None:
        publisher.publish(records)
        return _confirmed
    sending(records)
    confirm: Callable[[], None] = publisher.confirm  # type: ignore[attr-defined]
    return confirm


def _confirmed() -> None:
    """Nothing to wait for: the records were published."""


class Store(Protocol):
    """What the engine needs from the state layer (see :class:`state.store.ProfileStore`)."""

    @property
    def models_log(self) -> ModelLog:
        """The shared lesson log and model checkpoint (:mod:`operators.scoring.learner`)."""

    def load(self, customer_keys: Iterable[str]) -> dict[str, CustomerState]:
        """States of these customers."""

    def load_partition(self, topic: str, partition: int) -> PartitionAggregates:
        """The partition's shared aggregates (KPIs, voice of the customer)."""

    def model_control(self) -> dict[str, str]:
        """Promotions requested: model kind -> promotion id."""

    def commit(
        self,
        states: Iterable[CustomerState],
        flags: list[Flag],
        offsets: dict[tuple[str, int], int],
        partitions: dict[tuple[str, int], PartitionAggregates] | None = None,
        notify: bool = True,
    ) -> None:
        """Write flags, states, partition aggregates and resume offsets. ``notify=False`` (a replay of what was
        written and pushed before a STATE LOSS): no flag and no update goes to the desks' streams or live push."""


def plan_commit(
    store: Store,
    states: list[CustomerState],
    flags: list[Flag],
    offsets: dict[tuple[str, int], int],
    partitions: dict[tuple[str, int], PartitionAggregates],
    notify: bool = True,
) -> Callable[[], None]:
    """What commits this batch. A store with ``plan`` (:meth:`state.store.ProfileStore.plan`) does its CPU work
    now (encodes the documents; changes the states as the commit does: a failure before the commit must drop the
    caches, :meth:`operators.engine.Engine.forget`) and the returned call writes the plan, passed to ``commit`` as
    ``planned``; another store commits when it is called."""
    planning: Any = getattr(store, "plan", None)
    if planning is None:
        return lambda: store.commit(states, flags, offsets, partitions, notify=notify)
    planned = planning(states, flags, offsets, partitions, notify)
    commit: Any = store.commit  # a keyword of ProfileStore's own, not of the port
    return lambda: commit(states, flags, offsets, partitions, notify=notify, planned=planned)
