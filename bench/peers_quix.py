"""The 360-lite workload as a Quix Streams application (a child process of ``bench.peers``).

Idiomatic Quix Streams: a ``StreamingDataFrame`` over the input topic (JSON
values, string keys), one stateful ``apply`` that keeps each customer's state
in Quix's own RocksDB state store (with its changelog topic), the flags
expanded into messages and written with ``to_topic``. The per-customer logic
is :func:`bench.peers_lite.apply`, the same as the Bytewax flow's.

With ``--events N`` the application stops itself after the N-th input message
(``Application.stop``: the last checkpoint is committed and the producer
flushed before ``run`` returns) and prints one JSON line: the monotonic time
and process CPU time at the first, the tenth-percent and the last message and
after the final commit. Without it, it runs until SIGTERM (the live phase).

    python -m bench.peers_quix --kafka HOST:PORT --topic IN --flags OUT --group G --state-dir DIR [--events N]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

from bench.peers_lite import apply, new_state


def cpu_s() -> float:
    """CPU seconds of this process so far (all threads, user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Progress:
    """Marks taken at the first, the tenth-percent and the last of ``total`` messages."""

    def __init__(self, total: int) -> None:
        self.total, self.seen = total, 0
        self.marks: dict[str, tuple[float, float]] = {}

    def tick(self) -> bool:
        """Count one message; True at the last one."""
        self.seen += 1
        n = self.seen
        if n == 1 or n == max(1, self.total // 10) or n == self.total:
            self.marks["first" if n == 1 else "mark" if n < self.total else "last"] = (time.monotonic(), cpu_s())
            self.marks.setdefault("mark", self.marks["first"])
        return n == self.total

    def report(self, **extra: Any) -> str:
        """One JSON line of the marks (``extra`` added)."""
        return json.dumps({"seen": self.seen, "mark_at": self.total // 10 or 1, "marks": self.marks, **extra})


def main() -> None:
    from quixstreams import Application

    ap = argparse.ArgumentParser()
    ap.add_argument("--kafka", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--flags", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--events", type=int, default=0, help="stop after this many input messages (0: run until SIGTERM)")
    args = ap.parse_args()

    app = Application(broker_address=args.kafka, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, loglevel="WARNING")  # fmt: skip
    source = app.topic(args.topic, key_deserializer="str", value_deserializer="json")
    flags = app.topic(args.flags, key_serializer="str", value_serializer="json")
    progress = Progress(args.events)

    def lite(value: dict[str, Any], key: str, timestamp: int, _headers: Any, state: Any) -> list[dict[str, Any]]:
        customer = state.get("customer") or new_state()
        out = apply(customer, key, value, timestamp)
        state.set("customer", customer)
        if progress.tick():
            app.stop()
        return out

    sdf = app.dataframe(source)
    sdf = sdf.apply(lite, stateful=True, metadata=True, expand=True)
    sdf.to_topic(flags)
    app.run()
    progress.marks["end"] = (time.monotonic(), cpu_s())
    print(progress.report(), flush=True)


if __name__ == "__main__":
    main()
