"""The engine input's librdkafka options, and the partition counts it can read (:mod:`flows.kafka_source`)."""

from __future__ import annotations

from typing import Any

from livesignals.settings import Settings

FETCH_WAIT_MS = 100
"""The input consumers' ``fetch.wait.max.ms`` unless their config sets it (the default of the
``kafka_fetch_wait_ms`` setting, which says why)."""


def input_config(settings: Settings) -> dict[str, Any]:
    """The input consumers' librdkafka options: every client's (``kafka_config`` included), with
    ``kafka_fetch_wait_ms`` as ``fetch.wait.max.ms`` unless ``kafka_config`` sets that itself.

    >>> input_config(Settings(kafka_fetch_wait_ms=10))["fetch.wait.max.ms"]
    10
    >>> input_config(Settings(kafka_fetch_wait_ms=10, kafka_config={"fetch.wait.max.ms": 50}))["fetch.wait.max.ms"]
    50
    """
    return {"fetch.wait.max.ms": settings.kafka_fetch_wait_ms, **settings.kafka_client_config()}


DURABILITY_OPTIONS: dict[str, Any] = {
    "enable.auto.commit": False,  # progress lives in Redis, committed with the state it describes
    "auto.offset.reset": "error",  # out of range: an error we act on, never a silent jump (break-test F3)
    "isolation.level": "read_committed",  # an aborted transaction's events are never applied
}
"""librdkafka options of the engine's input that ``kafka_config`` cannot change: one habitual
``auto.offset.reset = "earliest"`` would switch off the out-of-range stop (break-test 10f, K3). A
different value in ``kafka_config`` is ignored with a WARNING naming it."""


def count_problem(counts: dict[str, int]) -> str | None:
    """Why these topics' partition counts (topic -> count; 0: missing) cannot be read, or None.

    >>> count_problem({"in": 4, "rep": 4}) is None
    True
    >>> count_problem({"in": 8, "rep": 4})[:62]
    'every input topic and the repartition topic must have the same'
    """
    missing = [t for t, n in counts.items() if not n]
    if missing:
        return f"topics {missing} do not exist (livesignals topics create)"
    if len(set(counts.values())) != 1:
        return (
            f"every input topic and the repartition topic must have the same partition count (partition p of "
            f"each is read by one worker): {counts}; grow the smaller ones (kafka-topics --alter --partitions)"
        )
    return None
