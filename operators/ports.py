"""The engine's ports: what it publishes to Kafka and what it needs from the state layer.

Kept apart from :mod:`operators.engine` so that adapters (``flows/``, ``state/``, the
in-memory store) read one short module to see what they must provide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

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
    """Publishes records and returns only once Kafka has confirmed all of them."""

    def publish(self, records: list[OutRecord]) -> None:
        """Send and confirm, or raise."""


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
