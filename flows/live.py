"""The live dataflow: Kafka interactions in, profiles, flags and triggers out.

Run it with ``python -m bytewax.run "flows.live:build()"`` (add ``-w N`` for
worker threads, ``-i/-a`` for processes); settings come from ``LIVESIGNALS_*``
variables or the ``LIVESIGNALS_CONFIG`` TOML file. Scale out by adding Kafka
partitions and Bytewax processes; partition number ``p`` of every input topic
and of the repartition topic is read by one worker, which claims it first
(:mod:`state.ownership`): a second engine started on the same topics takes
partitions over, it never writes beside the first.

The engine process also serves ``/metrics``, ``/healthz`` and ``/readyz``
(:mod:`flows.health`), reports lag, freshness and a JSON status line
(:mod:`flows.monitor`) and stops gracefully on SIGTERM (:mod:`flows.shutdown`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from flows import health, monitor, shutdown
from flows.abandoned_reroutes import check_message, remember, waiting_reroutes
from flows.claims import EXIT_BAD_CONFIG, KafkaClaimer, exit_now
from flows.engine_sink import EngineSink, default_engine
from flows.heap import settle_heap
from flows.input_options import input_config
from flows.kafka_source import KafkaPartitionSource
from flows.startup import STARTUP
from livesignals.contract import decode
from livesignals.errors import InvalidEvent, Origin
from livesignals.settings import Settings
from operators.engine import Engine
from state.ownership import Ownership

log = logging.getLogger(__name__)


def build(settings: Settings | None = None, serve_metrics: bool = True) -> Dataflow:
    """The engine dataflow for ``settings`` (default: from the environment)."""
    STARTUP.mark("imports")
    settings = settings or Settings.load()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("settings: %s", settings.redacted())
    topics = _read_topics(settings)
    warm = warm_up(settings)  # CPU-only start-up work, overlapping the waits on Redis and Kafka below
    ownership = Ownership()
    watch = monitor.Monitor(settings, ownership, topics)
    claimers: list[KafkaClaimer] = []
    if serve_metrics:  # the engine process (not a test building the flow in-process)
        _serve_health(settings, watch)  # before anything waits for Redis or Kafka: /readyz says why it waits
        monitor.setup_status_log()
        shutdown.install(settings.shutdown_grace_s, lambda done, waited: _on_sigterm(watch, claimers, done, waited))
        watch.start()
    claimer = KafkaClaimer(settings, topics)  # waits for Redis (its start-up checks) while health is served
    claimers.append(claimer)
    _refuse_abandoned_reroutes(settings, claimer)
    STARTUP.mark("redis_checks")
    ownership.claimer = claimer

    def engine_factory(s: Settings) -> Engine:
        return build_engine(s, warm, ownership, watch.checks)

    flow = Dataflow("livesignals")
    source = KafkaPartitionSource(
        input_config(settings),
        topics,
        settings.batch_size,
        ownership=ownership,
        kafka_retry=claimer.kafka_retry,
        log_check_s=settings.kafka_log_check_s,
        on_counts=watch.started_with,
        batch_max_s=settings.batch_max_s,
        one_batch_per_round=settings.one_batch_per_round,
    )
    raw = op.input("kafka-in", flow, source)
    op.output("engine", raw, EngineSink(settings, engine_factory, ownership, claimer))
    return flow


def build_engine(
    settings: Settings, warm: threading.Thread, ownership: Ownership, checks: dict[str, bool | None]
) -> Engine:
    """A worker's engine, once the warm-up is done; then the heap is settled (:func:`flows.heap.settle_heap`:
    the start-up heap frozen, the young generation's threshold raised), before the first batch."""
    warm.join()  # never compiled twice: the first batch finds the validators (and River) ready
    engine = default_engine(settings, ownership=ownership)
    checks["rules_loaded"] = True  # the engine loaded its rules (or refused to start)
    frozen = settle_heap()
    log.info("heap settled: %d objects frozen, gc thresholds %s", frozen, gc.get_threshold())
    STARTUP.mark("engine")
    return engine


def warm_up(settings: Settings) -> threading.Thread:
    """Start, in a background thread, the start-up work that needs no I/O: compiling the event schema's
    validators (the first decode's ~1 s of CPU) and, with models on, importing River (which pulls in
    scipy: seconds). A restarted engine (kill -9, a deploy) commits sooner when this runs while the
    main thread waits on Redis and Kafka; the engine factory joins it before the first batch."""

    def run() -> None:
        with contextlib.suppress(InvalidEvent):  # expected: the point is compiling the validators
            decode(b"{}", Origin("warm-up", 0, 0), now_ms=0)
        if settings.models_enabled:
            import river.anomaly
            import river.compose
            import river.linear_model
            import river.metrics
            import river.preprocessing  # noqa: F401 - imported for the side effect
        STARTUP.mark("warm_up")

    thread = threading.Thread(target=run, name="warm-up", daemon=True)
    thread.start()
    return thread


def _refuse_abandoned_reroutes(settings: Settings, claimer: KafkaClaimer) -> None:
    """Exit with code 2 while reroutes wait in a repartition topic no longer configured
    (:mod:`flows.abandoned_reroutes`); else record the configured one."""

    def check() -> dict[str, int]:
        return claimer.redis_retry.run(lambda: waiting_reroutes(settings, claimer.client))

    waiting = claimer.kafka_retry.run(check)  # a broker or Redis still starting is waited out
    for topic, count in waiting.items():
        exit_now(EXIT_BAD_CONFIG, check_message(topic, count, settings.repartition_topic))
    claimer.redis_retry.run(lambda: remember(settings, claimer.client))


def _read_topics(settings: Settings) -> tuple[str, ...]:
    """The input topics and the repartition topic (read like one), without repeats."""
    return tuple(dict.fromkeys((*settings.input_topics, settings.repartition_topic)))


def _serve_health(settings: Settings, watch: monitor.Monitor) -> None:
    """Serve /metrics, /healthz and /readyz on the fixed port, or stop the process: a port that moved
    would lose Prometheus' target (:mod:`flows.health`)."""
    port = health.process_port(settings.metrics_port, sys.argv, os.environ)
    if not port:
        return
    try:
        server = health.HealthServer(settings.metrics_host, port, lambda: health.engine_readiness(watch.checks))
    except OSError as exc:
        where = f"{settings.metrics_host}:{port}"
        exit_now(health.EXIT_PORT_TAKEN, f"cannot serve metrics on {where}: {exc.strerror or exc} "
                 "(another process holds it? set LIVESIGNALS_METRICS_PORT, or 0 for none)")  # fmt: skip
    server.start()
    log.info("metrics, health and readiness on http://%s:%d/metrics /healthz /readyz", settings.metrics_host, port)


def _on_sigterm(watch: monitor.Monitor, claimers: list[KafkaClaimer], finished: bool, waited_s: float) -> None:
    """Last steps on SIGTERM: commit the final offsets to the consumer group synchronously (once a claimer
    exists: SIGTERM may come while start-up still waits for Redis), log the shutdown line."""
    offsets = {}
    for p in watch.ownership.owned():
        held = watch.ownership.get(p)
        for topic, offset in (held.offsets if held is not None else {}).items():
            if offset is not None:
                offsets[(topic, p)] = offset
    for claimer in claimers:
        claimer.commit_offsets(offsets, asynchronous=False)
        claimer.leave()
    watch.log_status("shutdown", signal="SIGTERM", batch_finished=finished, waited_s=round(waited_s, 3))
