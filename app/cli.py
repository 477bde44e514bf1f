"""The ``livesignals`` command: demo, run, simulate, topics, settings, models, profile, kpis, voc, erase, export,
serve, token."""

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
    sim.add_argument("--out", help="write the events as JSONL to this file instead of Kafka")
    sim.add_argument("--skew", type=float, default=1.1, help="Zipf exponent of customer activity")

    models_ = sub.add_parser("models", help="online models: status, promote a challenger, evaluate configurations")
    msub = models_.add_subparsers(dest="models_command", required=True)
    msub.add_parser("status", help="every model's version and live validation figures")
    promote = msub.add_parser("promote", help="make the challenger of a model kind the champion")
    promote.add_argument("kind", choices=["sentiment", "churn", "fraud", "offers", "flag_relevance"])
    ev = msub.add_parser("evaluate", help="replay a recorded stream through model configurations and compare")
    _add_source(ev, "JSONL file of events (livesignals simulate --out)", "Kafka topic to replay")
    ev.add_argument(
        "--truth", action="append", default=[],
        help="ground truth (repeat): the simulator's truth JSONL (texts' sentiment, churn dates), "
             "cancellations JSONL, or a customers CSV (customer_id,cancelled_at)",
    )  # fmt: skip
    ev.add_argument("--partitions", type=int, default=1, help="replay with this many input partitions")
    ev.add_argument("--scores", help="write every score here (JSONL: model, customer, event_id, t, score)")
    ev.add_argument(
        "--models", dest="model_configs", action="append", default=[], metavar="[NAME=]FILE",
        help="TOML with a [models] table (repeat to compare); none = the defaults",
    )  # fmt: skip
    ev.add_argument("--churn-horizon-days", type=float, default=None)
    ev.add_argument("--csv", help="also write the comparison as CSV here")
    ev.add_argument("--json", help="also write the comparison as JSON here")
    ope = msub.add_parser("evaluate-policy", help="score next-best-action policies offline on the decision log")
    _add_source(ope, "JSONL file of decision-log records", "the decisions Kafka topic")
    ope.add_argument(
        "--policy", dest="policies", action="append", default=[],
        help="logged | greedy | fixed | propensity | random | weights:a=2,b=0.5 | model:CHECKPOINT (repeat)",
    )  # fmt: skip
    ope.add_argument("--json", help="also write the estimates as JSON here")

    topics = sub.add_parser("topics", help="create the engine's Kafka topics")
    topics.add_argument("action", choices=["create"])

    sub.add_parser("settings", help="print the effective settings (secrets redacted)")

    profile = sub.add_parser("profile", help="print a customer's live 360 as JSON")
    profile.add_argument("customer", help="customer key, e.g. customer_id:c0000042 (a bare id means customer_id)")
    profile.add_argument("--channel", help="where the customer is contacting us now (phone, chat, ...)")
    sub.add_parser("kpis", help="print the contact-centre KPIs for the last hour and day")
    voc_ = sub.add_parser("voc", help="print the terms and topics rising in complaints")
    voc_.add_argument("--top", type=int, default=10)

    erase = sub.add_parser("erase", help="erase a customer everywhere the engine keeps them (an erase event)")
    erase.add_argument("identifier", help="kind:value, e.g. email:a@b.c (a bare id means customer_id)")
    erase.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the engine's confirmation")
    export_ = sub.add_parser("export", help="print everything held about a customer as JSON")
    export_.add_argument("identifier", help="kind:value (a bare id means customer_id)")
    export_.add_argument("--kafka", action="store_true", help="also the customer's flags, triggers, decisions")

    # the agent desktop service runs as its own process (python -m gateway): nothing here imports it
    for name, text in (("serve", "run the agent desktop service"), ("token", "print a signed bearer token")):
        sub.add_parser(name, help=text, add_help=False).add_argument("rest", nargs=argparse.REMAINDER)

    args, extra = parser.parse_known_args(argv)
    if args.command in ("serve", "token"):
        given = sys.argv[1:] if argv is None else argv
        config = ["--config", args.config] if args.config else []
        rest = given[given.index(args.command) + 1 :]
        os.execv(sys.executable, [sys.executable, "-m", "gateway", *config, args.command, *rest])
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        from app.privacy import export_customer, request_erase
        from livesignals import serde

        if args.command == "erase":
            doc = request_erase(settings, args.identifier, args.wait)
        else:
            doc = export_customer(settings, args.identifier, args.kafka)
        sys.stdout.write(serde.dumps(doc, indent=True).decode() + "\n")
        return 0 if doc.get("confirmed", True) else 1
    if args.command == "models":
        from app.models_cli import run_models_command

        return run_models_command(settings, args)
    if args.command == "topics":
        from app.topics import ensure_topics

        print("created:", ", ".join(ensure_topics(settings)) or "nothing (all exist)")
        return 0
    if args.command == "simulate":
        from app.simulator import Simulator, SimulatorConfig
        from app.simulator.produce import produce

        step_ms = 1000.0 / args.rate if args.rate > 0 else 50.0
        sim_ = Simulator(
            SimulatorConfig(
                customers=args.customers,
                seed=args.seed,
                start_ms=int(time.time() * 1000),
                step_ms=step_ms,
                activity_skew=args.skew,
            )
        )
        if args.out:
            from app.simulator.produce import write_jsonl

            count = args.count or 10_000
            n = write_jsonl(sim_, args.out, count, args.truth)
            print(f"wrote {n} events to {args.out}" + (f", truth to {args.truth}" if args.truth else ""))
            return 0
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
        from app.engine_process import engine_argv

        os.execv(sys.executable, engine_argv("-w", str(args.workers)))
    return 2


def _add_source(parser: argparse.ArgumentParser, file_help: str, topic_help: str) -> None:
    """``--input FILE`` or ``--topic T`` with ``--start``/``--end`` offsets."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help=file_help)
    src.add_argument("--topic", help=f"{topic_help} (with --start/--end offsets)")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--end", type=int, default=None)


def _read(settings: Settings, args: argparse.Namespace) -> int:
    from livesignals import serde
    from state.connection import connect
    from state.keys import Keys
    from state.reader import read_360, read_kpis, read_voc

    client, keys = connect(settings), Keys(settings.key_prefix)
    if args.command == "profile":
        customer = args.customer if ":" in args.customer else f"customer_id:{args.customer}"
        doc = read_360(client, keys, customer, channel=args.channel)
    elif args.command == "kpis":
        doc = read_kpis(client, keys)
    else:
        doc = read_voc(client, keys, top=args.top)
    sys.stdout.write(serde.dumps(doc, indent=True).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
