"""The live dataflow: Kafka interactions in, profiles, flags and triggers out.

Run it with ``python -m bytewax.run "flows.live:build()"`` (add ``-w N`` for
worker threads, ``-i/-a`` for processes); settings come from ``LIVESIGNALS_*``
variables or the ``LIVESIGNALS_CONFIG`` TOML file. Scale out by adding Kafka
partitions and Bytewax processes; each partition is read by one worker.
"""

from __future__ import annotations

import logging

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from flows.engine_sink import EngineSink
from flows.kafka_source import KafkaPartitionSource
from livesignals import metrics
from livesignals.settings import Settings
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore

log = logging.getLogger(__name__)


def build(settings: Settings | None = None, serve_metrics: bool = True) -> Dataflow:
    """The engine dataflow for ``settings`` (default: from the environment)."""
    settings = settings or Settings.load()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("settings: %s", settings.redacted())
    if serve_metrics:
        _serve_metrics(settings.metrics_port)

    offsets = ProfileStore(connect(settings), Keys(settings.key_prefix))
    flow = Dataflow("livesignals")
    source = KafkaPartitionSource(
        settings.kafka_client_config(),
        (*settings.input_topics, settings.repartition_topic),  # rerouted events are read back (operators.routing)
        settings.batch_size,
        resume_from=offsets.resume_offsets,
    )
    raw = op.input("kafka-in", flow, source)
    op.output("engine", raw, EngineSink(settings))
    return flow


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
