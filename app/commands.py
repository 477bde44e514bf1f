"""What each ``livesignals`` command does, once :mod:`app.cli` has parsed it.

Each command checks what it needs before it starts -- the settings, Kafka and
Redis answering within seconds (:mod:`app.reach`), the topic it reads -- and
raises :class:`app.reach.CliError` with one line when something is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from app.progress import Progress
from app.reach import CliError, kafka_topics, redis_client, require_topic, wait_for
from livesignals import serde
from livesignals.settings import Settings

DEFAULT_REPLICATION = 3
"""Replicas per partition of ``topics create`` when the cluster has that many brokers."""


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; returns its exit code."""
    if args.command == "demo":
        from app.demo import run_demo

        return run_demo(args.duration, args.rate, args.customers, args.seed)
    settings = Settings.load(args.config)
    if args.command == "settings":
        from livesignals.settings import quiet_hours_note

        for key, value in settings.redacted().items():
            note = f"  # {quiet_hours_note(value)}" if key == "quiet_hours" else ""
            print(f"{key} = {value!r}{note}")
        return 0
    if args.command in ("profile", "kpis", "voc"):
        return _read(settings, args)
    if args.command in ("erase", "export"):
        return _privacy(settings, args)
    if args.command == "models":
        return _models(settings, args)
    if args.command == "topics":
        return _topics(settings, args)
    if args.command == "simulate":
        return _simulate(settings, args)
    if args.command == "run":
        return _run(settings, args)
    raise CliError(f"unknown command {args.command!r}", 2)


def _read(settings: Settings, args: argparse.Namespace) -> int:
    client = redis_client(settings)  # before the readers' imports (seconds): an outage is said at once
    from state.keys import Keys
    from state.reader import TIMELINE_SHOWN, load, read_kpis, read_voc, view_360

    keys = Keys(settings.key_prefix)
    if args.command == "profile":
        customer = args.customer if ":" in args.customer else f"customer_id:{args.customer}"
        loaded = load(client, keys, customer, TIMELINE_SHOWN)
        if loaded.state.unreadable is not None:  # stored but damaged: neither a missing customer nor an empty 360
            raise CliError(f"customer {customer!r}: its stored profile cannot be read ({loaded.state.unreadable}); "
                           "repair it, delete the key to start the customer afresh, or erase the customer")  # fmt: skip
        doc = view_360(loaded, channel=args.channel)
        if not doc["known"] and not args.allow_missing:
            raise CliError(f"customer {customer!r}: no profile in Redis (--allow-missing prints the empty 360)")
    elif args.command == "kpis":
        doc = read_kpis(client, keys)
    else:
        doc = read_voc(client, keys, top=args.top)
    sys.stdout.write(serde.dumps(doc, indent=True).decode() + "\n")
    return 0


def _privacy(settings: Settings, args: argparse.Namespace) -> int:
    """``erase`` (exit 1 if the engine did not confirm in time) and ``export`` (:mod:`app.privacy`)."""
    from app.privacy import export_customer, request_erase

    redis_client(settings)  # one line, not a traceback or a hang, when Redis or Kafka is down
    if args.command == "erase":
        require_topic(settings, settings.input_topics[0])
    elif args.kafka:
        kafka_topics(settings)
    try:
        if args.command == "erase":
            doc = request_erase(settings, args.identifier, args.wait)
        else:
            doc = export_customer(settings, args.identifier, args.kafka)
    except ValueError as exc:  # an identifier the engine could never have keyed (app.privacy.customer_key)
        sys.stderr.write(f"livesignals {args.command}: {exc}\n")
        return 2
    sys.stdout.write(serde.dumps(doc, indent=True).decode() + "\n")
    return 0 if doc.get("confirmed", True) else 1


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from app.models_cli import run_models_command

    if args.models_command in ("status", "promote", "export"):
        client = redis_client(settings)
        if args.models_command == "export":
            from app.model_admin import export_model

            version = export_model(client, settings, args.kind, args.role, args.out)
            print(f"wrote the {args.kind} {args.role} ({version}) to {args.out}; score it with: livesignals "
                  f"models evaluate-policy --policy model:{args.out} --topic {settings.decisions_topic}")  # fmt: skip
            return 0
        if args.models_command == "promote":
            from app.model_admin import require_challenger

            require_challenger(client, settings, args.kind)
    elif args.topic is not None:
        require_topic(settings, args.topic)
    elif not os.path.isfile(args.input):
        raise CliError(f"{args.input}: no such file")
    return run_models_command(settings, args)


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from app.topics import engine_topics, ensure_topics

    admin, existing = kafka_topics(settings)
    brokers = len(admin.list_topics(timeout=5).brokers)
    replication = args.replication_factor or min(DEFAULT_REPLICATION, max(brokers, 1))
    if replication > brokers:
        raise CliError(f"--replication-factor {replication}: the cluster has {brokers} broker(s)")
    partitions = args.partitions or settings.topic_partitions
    created = ensure_topics(settings, replication=replication, partitions=partitions)
    for topic in engine_topics(settings):
        if topic in created:
            print(f"created {topic}")
        else:
            note = "" if existing.get(topic) == partitions else f" (it has {existing.get(topic)} partitions)"
            print(f"exists  {topic}{note}")
    print(f"{len(created)} created, replication factor {replication}, {partitions} partitions each"
          if created else "nothing to create: every topic exists")  # fmt: skip
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from app.simulator import Simulator, SimulatorConfig
    from app.simulator.produce import produce, write_jsonl

    step_ms = 1000.0 / args.rate if args.rate > 0 else 50.0
    config = SimulatorConfig(customers=args.customers, seed=args.seed, start_ms=int(time.time() * 1000),
                             step_ms=step_ms, activity_skew=args.skew)  # fmt: skip
    sim = Simulator(config)
    if args.out:
        n = write_jsonl(sim, args.out, args.count or 10_000, args.truth)
        print(f"wrote {n} events to {args.out}" + (f", truth to {args.truth}" if args.truth else ""))
        return 0
    topic = settings.input_topics[0]
    require_topic(settings, topic)
    progress = Progress("produced", total=args.count)
    print(f"producing to {topic}" + (f" at {args.rate:g} events/s" if args.rate else ""), file=sys.stderr)
    sent = produce(sim, settings.kafka_client_config(), topic, args.count, args.rate, args.truth,
                   progress=progress.add)  # fmt: skip
    print(f"produced {sent} events to {topic}")
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from app.engine_process import engine_argv

    if args.wait > 0:
        _wait_for_dependencies(settings, args.wait)
    if args.config:
        os.environ["LIVESIGNALS_CONFIG"] = args.config
    bytewax: list[str] = []
    if args.workers is not None or "BYTEWAX_WORKERS_PER_PROCESS" not in os.environ:
        bytewax += ["-w", str(args.workers or 1)]
    if args.process_id is not None:
        bytewax += ["-i", str(args.process_id)]
    if args.addresses is not None:
        bytewax += ["-a", args.addresses]
    sys.stdout.flush()
    os.execv(sys.executable, engine_argv(*bytewax))
    return 0  # not reached: execv replaces this process


def _wait_for_dependencies(settings: Settings, wait_s: float) -> None:
    """Kafka, the engine's input topics and Redis, each answering within ``wait_s`` seconds."""

    def check() -> Any:
        _, topics = kafka_topics(settings)
        missing = [t for t in (*settings.input_topics, settings.repartition_topic) if t not in topics]
        if missing:
            raise CliError(f"topics {missing} do not exist (create them with: livesignals topics create)")
        return redis_client(settings)

    def waiting(exc: CliError) -> None:
        print(f"waiting up to {wait_s:g} s: {exc}", file=sys.stderr, flush=True)

    wait_for(check, wait_s, waiting=waiting)
