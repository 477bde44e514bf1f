"""The ``livesignals`` command: demo, run, simulate, topics, settings, models, profile, kpis, voc, erase, export,
serve, token.

Every command explains itself: a bad option, a bad setting, an unreachable
Kafka or Redis, a missing topic or customer end it with one line on stderr,
``livesignals: error: ...``, and a non-zero exit (2: the command line or the
settings are wrong; 1: it could not be done). ``--debug`` shows the traceback
instead. Long commands print their progress on stderr; results go to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import metadata
from typing import Any, NoReturn

from app.reach import CliError
from livesignals.settings import SettingsError

KINDS = ("sentiment", "churn", "fraud", "offers", "flag_relevance")
"""Model kinds (``models.registry.KINDS``), listed here so that ``--help`` needs no model imports."""


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("livesignals")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _count(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(text: str) -> float:
    """A finite number of at least 0 (argparse type)."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """Bad options end in one line, ``livesignals: error: …`` (exit 2), not a usage block: ``--help``
    shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"livesignals: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line, every option with its help (``tests/unit/test_cli_help.py`` walks it)."""
    from livesignals.contract import CHANNELS

    parser = _OneLineParser(prog="livesignals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="TOML settings file (else LIVESIGNALS_CONFIG)")
    parser.add_argument("--version", action="version", version=f"livesignals {version()}",
                        help="print the version and exit")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole loop on embedded services")
    demo.add_argument("--duration", type=_not_negative, default=60.0, help="seconds (default 60)")
    demo.add_argument("--rate", type=_not_negative, default=1500.0, help="simulated events/s (default 1500)")
    demo.add_argument("--customers", type=_count, default=5000, help="simulated customers (default 5000)")
    demo.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")

    run = sub.add_parser("run", help="run the engine dataflow against the configured Kafka and Redis")
    run.add_argument("-w", "--workers", type=_count, default=None,
                     help="worker threads in this process (default 1, or BYTEWAX_WORKERS_PER_PROCESS)")  # fmt: skip
    run.add_argument("-i", "--process-id", type=int, default=None,
                     help="this process's index among several (Bytewax -i; with --addresses)")  # fmt: skip
    run.add_argument("-a", "--addresses", default=None,
                     help="every process's host:port, ';'-separated, in process-id order (Bytewax -a)")  # fmt: skip
    run.add_argument("--wait", type=_not_negative, default=60.0,
                     help="seconds to wait at start for Kafka, Redis and the topics before giving up "
                          "(default 60; 0 = start without checking)")  # fmt: skip

    sim = sub.add_parser("simulate", help="produce a synthetic interaction stream into Kafka")
    sim.add_argument("--customers", type=_count, default=10_000, help="simulated customers (default 10000)")
    sim.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")
    sim.add_argument("--rate", type=_not_negative, default=1000.0, help="events/s (0 = as fast as possible)")
    sim.add_argument("--count", type=_count, default=None, help="events to send (default: forever)")
    sim.add_argument("--truth", help="write the ground truth as JSONL to this file")
    sim.add_argument("--out", help="write the events as JSONL to this file instead of Kafka")
    sim.add_argument("--skew", type=_not_negative, default=1.1, help="Zipf exponent of customer activity")

    _models_parser(sub)

    topics = sub.add_parser("topics", help="create the engine's Kafka topics")
    topics.add_argument("action", choices=["create"], help="create: make the topics that are missing")
    topics.add_argument("--partitions", type=_count, default=None,
                        help="partitions per topic (default: the topic_partitions setting)")  # fmt: skip
    topics.add_argument("--replication-factor", type=_count, default=None,
                        help="replicas per partition (default: 3, or the number of brokers if fewer)")  # fmt: skip

    sub.add_parser("settings", help="print the effective settings (secrets redacted)")

    profile = sub.add_parser("profile", help="print a customer's live 360 as JSON")
    profile.add_argument("customer", help="customer key, e.g. customer_id:c0000042 (a bare id means customer_id)")
    profile.add_argument("--channel", choices=sorted(CHANNELS), metavar="CHANNEL",
                         help=f"where the customer is contacting us now: {', '.join(sorted(CHANNELS))}")  # fmt: skip
    profile.add_argument("--allow-missing", action="store_true",
                         help="print the empty 360 of an unknown customer instead of failing (exit 0)")  # fmt: skip
    sub.add_parser("kpis", help="print the contact-centre KPIs for the last hour and day")
    voc_ = sub.add_parser("voc", help="print the terms and topics rising in complaints")
    voc_.add_argument("--top", type=_count, default=10, help="terms and topics shown (default 10)")

    erase = sub.add_parser("erase", help="erase a customer everywhere the engine keeps them (an erase event)")
    erase.add_argument("identifier", help="kind:value, e.g. email:a@b.c (a bare id means customer_id)")
    erase.add_argument("--wait", type=_not_negative, default=30.0,
                       help="seconds to wait for the engine's confirmation")  # fmt: skip
    export_ = sub.add_parser("export", help="print everything held about a customer as JSON")
    export_.add_argument("identifier", help="kind:value (a bare id means customer_id)")
    export_.add_argument("--kafka", action="store_true", help="also the customer's flags, triggers, decisions")

    # the agent desktop service runs as its own process (python -m gateway): nothing here imports it
    for name, text in (("serve", "run the agent desktop service"), ("token", "print a signed bearer token")):
        sub.add_parser(name, help=text, add_help=False).add_argument(
            "rest", nargs=argparse.REMAINDER, help=f"the options of {name} (livesignals {name} --help)"
        )
    return parser


def _models_parser(sub: argparse._SubParsersAction[Any]) -> None:
    models_ = sub.add_parser("models", help="online models: status, promote, export, evaluate configurations")
    msub = models_.add_subparsers(dest="models_command", required=True, metavar="MODELS_COMMAND")
    msub.add_parser("status", help="every model's version and live validation figures")
    promote = msub.add_parser("promote", help="make the challenger of a model kind the champion")
    promote.add_argument("kind", choices=KINDS, help="the model kind whose challenger becomes champion")
    export = msub.add_parser("export", help="write a model from the engine's checkpoint to a file "
                                            "(for evaluate-policy --policy model:FILE)")  # fmt: skip
    export.add_argument("--kind", choices=KINDS, default="offers", help="model kind (default offers)")
    export.add_argument("--role", choices=["challenger", "champion"], default="challenger",
                        help="which of the kind's models (default challenger)")  # fmt: skip
    export.add_argument("--out", required=True, help="file to write (a pickle; load only files you trust)")
    ev = msub.add_parser("evaluate", help="replay a recorded stream through model configurations and compare")
    _add_source(ev, "JSONL file of events (livesignals simulate --out)", "Kafka topic to replay")
    ev.add_argument(
        "--truth", action="append", default=[],
        help="ground truth (repeat): the simulator's truth JSONL (texts' sentiment, churn dates), "
             "cancellations JSONL, or a customers CSV (customer_id,cancelled_at)",
    )  # fmt: skip
    ev.add_argument("--partitions", type=_count, default=1, help="replay with this many input partitions")
    ev.add_argument("--scores", help="write every score here (JSONL: model, customer, event_id, t, score)")
    ev.add_argument(
        "--models", dest="model_configs", action="append", default=[], metavar="[NAME=]FILE",
        help="TOML with a [models] table (repeat to compare); none = the defaults",
    )  # fmt: skip
    ev.add_argument("--churn-horizon-days", type=_not_negative, default=None,
                    help="churn label horizon (default: the churn_horizon_days setting)")  # fmt: skip
    ev.add_argument("--csv", help="also write the comparison as CSV here")
    ev.add_argument("--json", help="also write the comparison as JSON here")
    ope = msub.add_parser("evaluate-policy", help="score next-best-action policies offline on the decision log")
    _add_source(ope, "JSONL file of decision-log records", "the decisions Kafka topic")
    ope.add_argument(
        "--policy", dest="policies", action="append", default=[],
        help="logged | greedy | fixed | propensity | random | weights:a=2,b=0.5 | model:FILE "
             "(from livesignals models export; repeat)",
    )  # fmt: skip
    ope.add_argument("--json", help="also write the estimates as JSON here")


def _add_source(parser: argparse.ArgumentParser, file_help: str, topic_help: str) -> None:
    """``--input FILE`` or ``--topic T`` with ``--start``/``--end`` offsets."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help=file_help)
    src.add_argument("--topic", help=f"{topic_help} (with --start/--end offsets)")
    parser.add_argument("--start", type=int, default=0, help="first offset read on every partition (default 0)")
    parser.add_argument("--end", type=int, default=None, help="offset to stop before (default: the end)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``livesignals`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in ("serve", "token"):
        _forward_to_gateway(args, argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from app.commands import run_command

        return run_command(args)
    except KeyboardInterrupt:
        print("livesignals: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        code, message = explain(exc)
        if code == 0:
            raise
        print(f"livesignals: error: {message}", file=sys.stderr, flush=True)
        return code


def _forward_to_gateway(args: argparse.Namespace, argv: list[str] | None) -> None:
    """``serve`` and ``token`` are the agent desktop service's own command line (``python -m gateway``)."""
    import os

    given = sys.argv[1:] if argv is None else argv
    config = ["--config", args.config] if args.config else []
    rest = given[given.index(args.command) + 1 :]
    # -P: the working directory is not put on sys.path, so a jwt.py or redis.py there cannot stand in for ours
    os.execv(sys.executable, [sys.executable, "-P", "-m", "gateway", *config, args.command, *rest])


def explain(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one line)`` for the errors a command can meet; ``(0, "")`` for a bug (shown in full).

    >>> explain(SettingsError("batch_size: expected an integer, got 'x' (str)"))
    (2, "batch_size: expected an integer, got 'x' (str)")
    """
    from confluent_kafka import KafkaException
    from redis.exceptions import RedisError

    if isinstance(exc, CliError):
        return exc.code, _one_line(str(exc))
    if isinstance(exc, SettingsError):
        return 2, _one_line(str(exc))
    if isinstance(exc, OSError) and exc.filename is not None:
        return 1, f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, KafkaException):
        err: Any = exc.args[0] if exc.args else None
        return 1, "Kafka: " + _one_line(err.str() if hasattr(err, "str") else str(exc))
    if isinstance(exc, RedisError):
        return 1, "Redis: " + _one_line(str(exc))
    if isinstance(exc, ValueError | RuntimeError):
        return 1, _one_line(str(exc))
    return 0, ""


def _one_line(text: str) -> str:
    from livesignals.settings import redact_url

    line = " ".join(text.split())
    return redact_url(line[:500] + ("..." if len(line) > 500 else ""))


if __name__ == "__main__":
    sys.exit(main())
