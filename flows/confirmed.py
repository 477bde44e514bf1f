"""What the consumer group says was published, checked against Kafka's log (outside review of #10, 10h L3).

After each Redis commit the engine commits the same offsets to its consumer
group (:meth:`flows.claims.KafkaClaimer.commit_offsets`), and by then every
output of the events below them was confirmed by Kafka. So after Redis lost
its data, a replay below those offsets need not publish again, and must not:
it judges the contact policy at stream time and rebuilds the sends, caps and
pending offers as they went out (``Engine.process(publish=False)``), where a
replay judged by its own wall clock, hours later, re-published every decision
as ``stale`` and let the caps start from zero.

A process that found the loss while running knows which offsets it committed
itself. At start-up the group's offsets alone cannot be trusted: after a log
reset that kept them (an unclean leader election) and a fresh ``key_prefix``
they belong to the old log, and trusting them would keep the new log's outputs
from ever going out (``test_log_reset_fresh_start.py``). So each group commit
carries metadata (:func:`metadata`): the committing deployment's ``key_prefix``
and the :func:`flows.log_reset.fingerprint` of the record just below the
offset (offset, Kafka timestamp, CRC-32 of key and value). At a loss found by a
claim, :func:`confirmed` reads that record from the log again: the same
deployment and the same record, the offset is confirmed; anything else (no
metadata: a broker that drops it, as the embedded Tansu does; another
``key_prefix``; another record; the record gone below retention) is not, and the
replay publishes again, as before, with one WARNING line saying why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from flows.log_reset import PROBE_TIMEOUT_S, fingerprints_at

VERSION = 1
"""Version of the group commit metadata written by :func:`metadata`."""


def metadata(key_prefix: str, applied: str) -> str:
    """The consumer group commit's metadata: this deployment and the fingerprint of the last record applied.

    >>> metadata("ls", "41|1700000000000|1|2")
    '{"v":1,"prefix":"ls","applied":"41|1700000000000|1|2"}'
    """
    return json.dumps({"v": VERSION, "prefix": key_prefix, "applied": applied}, separators=(",", ":"))


def applied_mark(meta: str | None, key_prefix: str, offset: int) -> tuple[str | None, str]:
    """The fingerprint ``meta`` names for the record below ``offset``, if this deployment wrote it; else why not.

    >>> applied_mark(metadata("ls", "41|7|1|2"), "ls", 42)
    ('41|7|1|2', '')
    >>> applied_mark(None, "ls", 42)[1], applied_mark(metadata("old", "41|7|1|2"), "ls", 42)[1]
    ('no metadata', 'committed by key_prefix old')
    >>> applied_mark(metadata("ls", "40|7|1|2"), "ls", 42)[1]
    'metadata names offset 40, not 41'
    """
    if not meta:
        return None, "no metadata"
    try:
        fields = json.loads(meta)
        applied, prefix = str(fields["applied"]), str(fields["prefix"])
        marked = int(applied.split("|", 1)[0])
    except (ValueError, KeyError, TypeError):
        return None, "metadata not written by this engine"
    if prefix != key_prefix:
        return None, f"committed by key_prefix {prefix}"
    if marked != offset - 1:
        return None, f"metadata names offset {marked}, not {offset - 1}"
    return applied, ""


def confirmed(
    consumer: Any,
    partition: int,
    group: Mapping[str, tuple[int, str | None]],
    key_prefix: str,
    watermarks: Callable[[str, int], tuple[int, int]],
    timeout_s: float = PROBE_TIMEOUT_S,
) -> tuple[dict[str, int], dict[str, str]]:
    """Per topic, the group offsets whose outputs Kafka confirmed (``group``: topic -> (offset, metadata));
    and per other topic why not. Reads the named records from ``consumer`` (assigned only for that)."""
    wanted: dict[str, str] = {}
    why: dict[str, str] = {}
    for topic, (offset, meta) in group.items():
        if offset <= 0:
            continue
        mark, reason = applied_mark(meta, key_prefix, offset)
        if mark is None:
            why[topic] = reason
            continue
        low, _ = watermarks(topic, partition)
        if offset - 1 < low:
            why[topic] = f"record {offset - 1} is below the log's start {low}"
            continue
        wanted[topic] = mark
    found = fingerprints_at(consumer, partition, {t: group[t][0] - 1 for t in wanted}, timeout_s) if wanted else {}
    ok: dict[str, int] = {}
    for topic, mark in wanted.items():
        if found.get(topic) == mark:
            ok[topic] = group[topic][0]
        else:
            why[topic] = f"record {group[topic][0] - 1} is not the one committed" if topic in found else \
                f"record {group[topic][0] - 1} not read"  # fmt: skip
    return ok, why
