"""The live dataflow: Kafka interactions in, profiles, flags and triggers out.

Run it with ``python -m bytewax.run "flows.live:build()"`` (add ``-w N`` for
worker threads, ``-i/-a`` for processes); settings come from ``LIVESIGNALS_*``
variables or the ``LIVESIGNALS_CONFIG`` TOML file. Scale out by adding Kafka
partitions and Bytewax processes; partition number ``p`` of every input topic
and of the repartition topic is read by one worker, which claims it first
(:mod:`state.ownership`): a second engine started on the same topics takes
partitions over, it never writes beside the first.
"""

from __future__ import annotations

import functools
import logging

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from flows.claims import KafkaClaimer
from flows.engine_sink import EngineSink, default_engine
from flows.kafka_source import KafkaPartitionSource
from livesignals import metrics
from livesignals.settings import Settings
from state.ownership import Ownership

log = logging.getLogger(__name__)


def build(settings: Settings | None = None, serve_metrics: bool = True) -> Dataflow:
    """The engine dataflow for ``settings`` (default: from the environment)."""
    settings = settings or Settings.load()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("settings: %s", settings.redacted())
    if serve_metrics:
        _serve_metrics(settings.metrics_port)

    topics = _read_topics(settings)
    claimer = KafkaClaimer(settings, topics)
    ownership = Ownership(claimer)
    flow = Dataflow("livesignals")
    source = KafkaPartitionSource(
        settings.kafka_client_config(),
        topics,
        settings.batch_size,
        ownership=ownership,
        kafka_retry=claimer.kafka_retry,
    )
    raw = op.input("kafka-in", flow, source)
    factory = functools.partial(default_engine, ownership=ownership)
    op.output("engine", raw, EngineSink(settings, factory, ownership, claimer))
    return flow


def _read_topics(settings: Settings) -> tuple[str, ...]:
    """The input topics and the repartition topic (read like one), without repeats."""
    return tuple(dict.fromkeys((*settings.input_topics, settings.repartition_topic)))


def _serve_metrics(port: int, tries: int = 16) -> None:
    """Serve /metrics on ``port`` or the next free one (several processes per host)."""
    for candidate in range(port, port + tries) if port else ():
        try:
            metrics.serve(candidate)
            log.info("metrics on :%d/metrics", candidate)
            return
        except OSError:
            continue
    if port:
        log.warning("no free metrics port in %d..%d", port, port + tries - 1)
