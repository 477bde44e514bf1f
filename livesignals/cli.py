"""The ``livesignals`` command: demo, run, simulate, topics, settings."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from livesignals.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``livesignals`` console script."""
    parser = argparse.ArgumentParser(prog="livesignals", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (else LIVESIGNALS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole loop on embedded services")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    demo.add_argument("--rate", type=float, default=1500.0, help="simulated events/s")
    demo.add_argument("--customers", type=int, default=5000)
    demo.add_argument("--seed", type=int, default=42)

    run = sub.add_parser("run", help="run the engine dataflow against the configured Kafka and Redis")
    run.add_argument("-w", "--workers", type=int, default=1, help="worker threads in this process")

    sim = sub.add_parser("simulate", help="produce a synthetic interaction stream into Kafka")
    sim.add_argument("--customers", type=int, default=10_000)
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--rate", type=float, default=1000.0, help="events/s (0 = as fast as possible)")
    sim.add_argument("--count", type=int, default=None, help="events to send (default: forever)")
    sim.add_argument("--truth", help="write the ground truth as JSONL to this file")

    topics = sub.add_parser("topics", help="create the engine's Kafka topics")
    topics.add_argument("action", choices=["create"])

    sub.add_parser("settings", help="print the effective settings (secrets redacted)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from livesignals.demo import run_demo

        return run_demo(args.duration, args.rate, args.customers, args.seed)

    settings = Settings.load(args.config)
    if args.command == "settings":
        for key, value in settings.redacted().items():
            print(f"{key} = {value!r}")
        return 0
    if args.command == "topics":
        from livesignals.topics import ensure_topics

        print("created:", ", ".join(ensure_topics(settings)) or "nothing (all exist)")
        return 0
    if args.command == "simulate":
        from livesignals.simulator import Simulator, SimulatorConfig
        from livesignals.simulator.produce import produce

        step_ms = 1000.0 / args.rate if args.rate > 0 else 50.0
        sim_ = Simulator(
            SimulatorConfig(
                customers=args.customers,
                seed=args.seed,
                start_ms=int(time.time() * 1000),
                step_ms=step_ms,
            )
        )
        sent = produce(
            sim_,
            settings.kafka_client_config(),
            settings.input_topics[0],
            args.count,
            args.rate,
            args.truth,
        )
        print(f"produced {sent} events to {settings.input_topics[0]}")
        return 0
    if args.command == "run":
        if args.config:
            os.environ["LIVESIGNALS_CONFIG"] = args.config
        argv_ = [sys.executable, "-m", "bytewax.run", "flows.live:build()", "-w", str(args.workers)]
        os.execv(sys.executable, argv_)
    return 2


if __name__ == "__main__":
    sys.exit(main())
