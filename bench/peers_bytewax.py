"""The 360-lite workload as a per-item Bytewax ``stateful_map`` flow (a child process of ``bench.peers``).

The textbook Bytewax shape: Kafka input, decode each message (orjson), key it
by the message key, ``op.stateful_map`` with the customer's state (Bytewax
keeps it per key and routes each key to one worker), flatten the flags and
write them with the Kafka output. The per-customer logic is
:func:`bench.peers_lite.apply`, the same as the Quix Streams application's.
(``bench/`` is outside the package layers: only ``flows/`` imports Bytewax in
the engine itself.)

With ``--events N`` the input stops at the end of the topic (``tail=False``),
the flow finishes once every flag is written, and one JSON line gives the
monotonic and CPU times at the first, the tenth-percent and the last message
and at the end. Without it, it tails the topic until stopped (the live phase).

    python -m bench.peers_bytewax --kafka HOST:PORT --topic IN --flags OUT [--events N] [--workers 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from bench.peers_lite import apply, new_state
from bench.peers_quix import Progress, cpu_s


def build(kafka: str, topic: str, flags_topic: str, progress: Progress, tail: bool) -> Any:
    """The dataflow: Kafka in, decode, ``stateful_map`` per customer, flags out to Kafka."""
    import bytewax.connectors.kafka.operators as kop
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
    from bytewax.dataflow import Dataflow

    flow = Dataflow("peers_lite")
    messages = kop.input("in", flow, brokers=[kafka], topics=[topic], tail=tail)

    def decode(m: KafkaSourceMessage) -> tuple[str, tuple[str, dict[str, Any], int]]:
        key = (m.key or b"").decode()
        return key, (key, orjson.loads(m.value or b"null"), m.timestamp[1] if m.timestamp else 0)

    def lite(state: dict[str, Any] | None, item: tuple[str, dict[str, Any], int]) -> tuple[dict[str, Any], Any]:
        state = state or new_state()
        out = apply(state, *item)
        progress.tick()
        return state, out

    keyed = op.map("decode", messages.oks, decode)
    flags = op.flat_map("flags", op.stateful_map("lite", keyed, lite), lambda kv: kv[1])
    out = op.map("encode", flags, lambda f: KafkaSinkMessage(f["customer"].encode(), orjson.dumps(f)))
    kop.output("out", out, brokers=[kafka], topic=flags_topic)
    return flow


def main() -> None:
    from bytewax.run import cli_main

    ap = argparse.ArgumentParser()
    ap.add_argument("--kafka", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--flags", required=True)
    ap.add_argument("--events", type=int, default=0, help="read to the end of the topic, expecting N messages")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    progress = Progress(args.events)
    cli_main(build(args.kafka, args.topic, args.flags, progress, tail=not args.events),
             workers_per_process=args.workers)  # fmt: skip
    progress.marks["end"] = (time.monotonic(), cpu_s())
    print(progress.report(), flush=True)


if __name__ == "__main__":
    main()
