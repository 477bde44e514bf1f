"""``livesignals models``: status of the live models, promotion, offline evaluation."""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path
from typing import Any

from app.progress import Progress
from livesignals import serde
from livesignals.settings import Settings


def run_models_command(settings: Settings, args: argparse.Namespace) -> int:
    """Dispatch ``livesignals models <status|promote|evaluate|evaluate-policy>``."""
    if args.models_command == "evaluate":
        return _evaluate(settings, args)
    if args.models_command == "evaluate-policy":
        return _evaluate_policy(settings, args)
    from state.connection import connect
    from state.keys import Keys

    client, keys = connect(settings), Keys(settings.key_prefix)
    if args.models_command == "promote":
        promotion_id = f"{args.kind}-{int(time.time() * 1000)}"
        client.hset(keys.model_control, args.kind, promotion_id)
        print(f"promotion {promotion_id} recorded: every worker swaps champion and challenger of "
              f"{args.kind} within {settings.model_control_poll_s:g} s")  # fmt: skip
        return 0
    from app.evaluate import table
    from state.reader import read_models

    print(table(read_models(client, keys)))
    return 0


def _evaluate_policy(settings: Settings, args: argparse.Namespace) -> int:
    from app.evaluate import read_jsonl, read_kafka
    from app.policy_eval import evaluate_policies, table

    lines = (
        read_jsonl(args.input)
        if args.input
        else read_kafka(settings.kafka_client_config(), args.topic, args.start, args.end)
    )
    lines = Progress("read", unit="records").over(lines)  # a topic replay can take minutes: say so on stderr
    rows = evaluate_policies((serde.loads(line) for line in lines), args.policies or ["logged", "greedy", "random"])
    print(table(rows))
    if args.json:
        Path(args.json).write_bytes(serde.dumps(rows, indent=True))
    return 0


def _load_configs(specs: list[str]) -> dict[str, dict[str, Any]]:
    if not specs:
        return {"defaults": {}}
    configs = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        with open(path, "rb") as fh:
            configs[name or Path(path).stem] = tomllib.load(fh).get("models", {})
    return configs


def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    import sys

    from app.evaluate import evaluate, read_jsonl, read_kafka, rejection_note, table, to_csv
    from app.evaluate_truth import TruthError, read_truth

    try:
        read_truth(args.truth)  # before a replay that may take minutes: a bad file is one line now
    except (TruthError, OSError) as exc:
        print(f"livesignals models evaluate: {exc}", file=sys.stderr)
        return 2

    events = (
        read_jsonl(args.input)
        if args.input
        else read_kafka(settings.kafka_client_config(), args.topic, args.start, args.end)
    )
    if args.churn_horizon_days is not None:
        settings = settings.replace(churn_horizon_days=args.churn_horizon_days)
    rows = evaluate(
        events, _load_configs(args.model_configs), settings, truth_paths=args.truth, partitions=args.partitions,
        scores_path=args.scores, progress=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    note = rejection_note(rows)
    if note:
        print(note, file=sys.stderr)
    print(table(rows))
    for row in rows:
        for lang, figures in (row.get("truth_by_language") or {}).items():
            (acc3, f3), (acc2, f2) = figures["three_class"], figures["binary"]
            print(f"  {row['config']} {row['role']} sentiment vs truth, {lang} ({figures['n']} texts): "
                  f"three-class acc {acc3} f1 {f3}; binary acc {acc2} f1 {f2}")  # fmt: skip
    if args.csv:
        Path(args.csv).write_text(to_csv(rows))
    if args.json:
        Path(args.json).write_bytes(serde.dumps(rows, indent=True))
    return 0
