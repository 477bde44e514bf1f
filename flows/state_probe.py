"""Notice a Redis that lost its data under an idle engine, within one monitor pass.

A batch checks, before it computes anything, that Redis still holds what the
engine committed (``ProfileStore.verify``); a STATE LOSS found there rebuilds
the partition from Kafka (:mod:`flows.engine_sink`). A partition with no new
input has no batch: a Redis restarted empty would go unnoticed, the 360 and
KPI readers serving empty state, ``/readyz`` ready, until the next message.

So the monitor (:mod:`flows.monitor`) asks every ``status_interval_s``
(:class:`IdleLossWatch`) the questions a batch asks (:mod:`state.loss_check`:
store id, resume offsets, Cluster markers and watermarks) for each partition
this process owns. On a loss it logs one ERROR, counts
``livesignals_state_loss_noticed_idle_total``, marks the engine not ready and
asks the partition's source for a *probe*: a message of no topic
(:func:`probe_message`) that the source hands the sink before its next read.
The sink answers a probe with the batch's own check (``verify``) and, on a
loss, the batch's own STATE LOSS path (re-claim, replay from Kafka,
``livesignals_state_loss_total``); a probe is never applied, and one that finds
nothing (a batch re-claimed meanwhile) is dropped. The work thus stays on the
worker that owns the partition's engine; the monitor thread only reads Redis.

The same pass notices a **takeover**: the partition's meta names a higher owner
epoch and another owner (``host:pid``) than this process's claim. A batch
would be fenced at its commit; an idle engine has no batch, and it went on
reporting ready and owning every partition beside the engine that took over
(break-test 10h, L7). So the pass does what a fenced batch does
(:meth:`flows.engine_sink._EnginePartition._fenced`): logs ``FENCED``, counts
``livesignals_fenced_total``, releases the partition, and exits with code 3
once this process owns none. A higher epoch under this process's own name is
its own re-claim (a rebuild) and is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from flows.claims import EXIT_FENCED, exit_now
from livesignals import metrics
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from state.keys import Keys
from state.loss_check import lost_since_claim
from state.ownership import Claim, Fenced, Ownership, owner_id, superseded

log = logging.getLogger(__name__)

PROBE_TOPIC = "\x00livesignals-state-probe"
"""The topic name a probe carries: no Kafka topic can have it (NUL is not a legal topic character)."""


def probe_message(partition: int) -> RawMessage:
    """A probe for ``partition``: it asks the sink to check the partition's state now (never applied).

    >>> is_probe(probe_message(3)), probe_message(3).origin.partition
    (True, 3)
    """
    return RawMessage(None, None, Origin(PROBE_TOPIC, partition, -1, 0))


def is_probe(message: RawMessage) -> bool:
    """True for a :func:`probe_message`."""
    return message.origin.topic == PROBE_TOPIC


class IdleLossWatch:
    """The monitor's per-pass check of every owned partition's state (see the module docstring)."""

    def __init__(self, settings: Settings, ownership: Ownership) -> None:
        self.settings = settings
        self.ownership = ownership
        self.keys = Keys(settings.key_prefix)
        self._asked: dict[int, Claim] = {}
        """Per partition, the claim a probe was asked for: asked once per claim (the rebuild re-claims)."""

    def tick(self, client: Any) -> list[int]:
        """Check each owned partition against Redis (through ``client``); returns those a probe was asked for.
        Redis errors propagate (the monitor's ping reports the outage)."""
        asked = []
        for partition in self.ownership.owned():
            held = self.ownership.get(partition)
            if held is None:
                continue
            if self._taken_over(client, held):
                continue
            if self._asked.get(partition) is held:
                continue
            lost = lost_since_claim(client, self.keys, held, self.settings.redis_cluster)
            if lost is None or not self.ownership.request_probe(partition, held):
                continue
            self._asked[partition] = held
            asked.append(partition)
            metrics.STATE_LOSS_NOTICED_IDLE.inc()
            metrics.READY.set(0)  # the rebuild's first commit raises it again
            log.error("STATE LOSS noticed between batches: %s; the partition's worker rebuilds it now", lost)
        return asked

    def _taken_over(self, client: Any, held: Claim) -> bool:
        """True (and handled as a fence) when another engine claimed ``held``'s partition since."""
        row = client.hmget(self.keys.partition_meta(held.partition), "epoch", "owner")
        epoch, owner = (v.decode() if isinstance(v, bytes) else v for v in row)
        if epoch is None or owner is None or owner == owner_id():
            return False  # no meta (a loss: the check below), or this process's own re-claim
        fence = superseded(held.partition, epoch, held.epoch, f", owner {owner}")
        if epoch == held.epoch or not isinstance(fence, Fenced) or self.ownership.get(held.partition) is not held:
            return False  # ours, a rollback (the loss check reports it), or re-claimed meanwhile
        log.error("FENCED between batches: partition %d: %s; this process stops writing it", held.partition, fence)
        metrics.FENCED.inc()
        self.ownership.release(held.partition)
        metrics.PARTITIONS_OWNED.set(len(self.ownership.owned()))
        if not self.ownership.owned():
            metrics.READY.set(0)
            exit_now(EXIT_FENCED, "FENCED on every partition of this process: another engine owns them; exiting")
        return True
