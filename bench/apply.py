"""In-process engine throughput: the apply path alone (no Kafka, no Redis).

Feeds the simulator's reference mix through :class:`operators.engine.Engine`
on the in-memory store with a publisher that drops records, in batches, and
prints events/s. Run it on two commits, close in time, to see what a change
of the apply path costs (this 2-core machine drifts by tens of percent over
minutes: compare ratios of runs made back to back, never absolute figures).

    python -m bench.apply [--events 30000] [--customers 3000] [--batch 1000] [--models on|off]
"""

from __future__ import annotations

import argparse
import time
import zlib

from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from operators.ports import OutRecord
from state.memory import InMemoryStore

PARTITIONS = 4


class _Drop:
    """A publisher that confirms everything at once (the broker is not what is measured)."""

    def publish(self, records: list[OutRecord]) -> None:
        """Drop the records."""


def messages(events: int, customers: int, seed: int = 7) -> list[RawMessage]:
    """The reference mix as raw messages, spread over :data:`PARTITIONS` partitions by customer."""
    now = int(time.time() * 1000)
    sim = Simulator(SimulatorConfig(customers=customers, seed=seed, start_ms=now - 6 * 3_600_000, step_ms=20))
    offsets = [0] * PARTITIONS
    out = []
    for doc, _ in sim.stream(events):
        p = zlib.crc32(primary_key(doc["customer"]).encode()) % PARTITIONS
        out.append(RawMessage(serde.dumps(doc), None, Origin("in", p, offsets[p], now)))
        offsets[p] += 1
    return out


def run(msgs: list[RawMessage], batch: int, models: bool) -> tuple[float, float]:
    """Events per wall second and per CPU second of one engine over ``msgs`` in batches of ``batch``.

    The CPU-time figure is the one to compare on a shared machine: other
    processes slow the wall clock, much less this process's own CPU time.
    """
    settings = Settings.load(env={}).replace(models_enabled=models, metrics_port=0)
    engine = Engine(settings, InMemoryStore(), _Drop())
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(msgs), batch):
        engine.process(msgs[i : i + batch])
    return len(msgs) / (time.perf_counter() - started), len(msgs) / (time.process_time() - cpu)


def main() -> None:
    """Parse arguments, run once, print events/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--customers", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--models", choices=("on", "off"), default="on")
    args = parser.parse_args()
    msgs = messages(args.events, args.customers)
    wall, cpu = run(msgs, args.batch, args.models == "on")
    print(f"events={args.events} models={args.models} events_per_s={wall:,.0f} events_per_cpu_s={cpu:,.0f}")


if __name__ == "__main__":
    main()
