"""``livesignals demo``: the whole loop on one machine, with nothing but pip.

Starts an embedded Kafka-compatible broker and Redis-compatible server,
creates the topics, starts the engine dataflow (a Bytewax process) and the
simulator, and shows a live terminal view (events/s, flags, the latest
flagged customers) until ``duration_s`` passes or Ctrl-C. Then it stops
everything it started and prints a summary.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from typing import Any

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from app import embedded
from app.engine_process import engine_env, start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from app.simulator.produce import produce
from app.topics import ensure_topics
from livesignals import serde
from livesignals.partitioner import PRODUCER_CONFIG
from livesignals.settings import Settings
from state.connection import connect
from state.erasure import ErasureLedger
from state.keys import Keys
from state.retention import Retention

BAD_INPUTS = (b"not json at all", b'{"schema_version":1,"type":"teleport"}', b"[1,2,3]")


def scrape(port: int) -> dict[str, float]:
    """Sum each ``livesignals_*`` counter from the engine's /metrics (by name and labels)."""
    out: dict[str, float] = defaultdict(float)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.name] += sample.value
                label = sample.labels.get("flag") or sample.labels.get("reason") or sample.labels.get("action")
                if label:
                    out[f"{sample.name}:{label}"] += sample.value
    return dict(out)


def demo_settings(kafka_address: str, redis_address: str) -> Settings:
    """The demo's settings: the embedded broker and Redis at these addresses, free ports, a fresh gateway secret.

    >>> s = demo_settings("127.0.0.1:1", "127.0.0.1:2")
    >>> s.kafka_fetch_wait_ms == embedded.FETCH_WAIT_MS, s.quiet_hours, s.redis_url
    (True, '0-0', 'redis://127.0.0.1:2/0')
    """
    return Settings.load(env={}).replace(
        kafka_bootstrap=kafka_address,
        redis_url=f"redis://{redis_address}/0",
        kafka_fetch_wait_ms=embedded.FETCH_WAIT_MS,  # the embedded broker answers a fetch when its wait ends
        metrics_port=embedded.free_port(),
        batch_size=2000,
        quiet_hours="0-0",  # a demo at night should still show next-best actions going out
        gateway_port=embedded.free_port(),
        gateway_token_secrets=(secrets.token_hex(32),),
    )


def run_demo(duration_s: float = 60.0, rate: float = 1500.0, customers: int = 5000, seed: int = 42) -> int:
    """Run the demo; returns a process exit code."""
    stop = threading.Event()
    services: list[embedded.Service] = []
    engine: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        print("starting embedded Kafka (Tansu) and Redis (valkey)...", flush=True)
        kafka, red = embedded.start_kafka(), embedded.start_redis()
        services += [kafka, red]
        settings = demo_settings(kafka.address, red.address)
        ensure_topics(settings)
        engine = start_engine(settings)
        gateway, page = start_gateway(settings)
        sim = Simulator(
            SimulatorConfig(
                customers=customers,
                seed=seed,
                start_ms=int(time.time() * 1000),
                step_ms=1000.0 / rate,
                churn_horizon_ms=int(duration_s * 1000),
            )
        )
        producer_thread = threading.Thread(
            target=produce,
            daemon=True,
            args=(sim, settings.kafka_client_config(), settings.input_topics[0], None, rate),
            kwargs={"stop": stop},
        )
        producer_thread.start()
        _view(settings, duration_s, engine, page)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        stop.set()
        if engine is not None:
            stop_process(engine)
        if gateway is not None:
            stop_process(gateway)
        for service in services:
            service.stop()
        signal.signal(signal.SIGTERM, previous)
        print("stopped: engine, broker and Redis are down; nothing left running.", flush=True)


def start_gateway(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    """The agent desktop service (``livesignals serve``) as its own process, and the agent page's URL with a
    demo token: an analyst's (simulated contacts name no agent, so an agent would be assigned no one)."""
    env = engine_env(settings)
    cmd = [sys.executable, "-P", "-m", "gateway"]
    token = subprocess.run([*cmd, "token", "demo", "--role", "analyst"], env=env, capture_output=True, check=True)
    proc = subprocess.Popen([*cmd, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    return proc, f"http://127.0.0.1:{settings.gateway_port}/agent#token={token.stdout.decode().strip()}"


def _view(settings: Settings, duration_s: float, engine: subprocess.Popen[bytes], page: str = "") -> None:
    r = connect(settings)
    flags_stream = Keys(settings.key_prefix).flags_stream
    ledger = ErasureLedger(r, Keys(settings.key_prefix), Retention.from_settings(settings))
    bad = Producer(settings.kafka_client_config(**PRODUCER_CONFIG))
    started = time.monotonic()
    last_in, last_t, first_flag_s = 0.0, started, None
    latest: list[dict[str, Any]] = []
    stats: dict[str, float] = {}
    while time.monotonic() - started < duration_s:
        time.sleep(1.0)
        elapsed = time.monotonic() - started
        if engine.poll() is not None:
            raise RuntimeError(f"the engine exited with code {engine.returncode}")
        bad.produce(settings.input_topics[0], BAD_INPUTS[int(elapsed) % len(BAD_INPUTS)], b"bad-producer")
        bad.poll(0)
        stats = scrape(settings.metrics_port) or stats
        now = time.monotonic()
        events_in = stats.get("livesignals_events_in_total", 0.0)
        rate = (events_in - last_in) / max(now - last_t, 1e-6)
        last_in, last_t = events_in, now
        latest = [serde.loads(fields[b"doc"]) for _, fields in r.xrevrange(flags_stream, count=6)]
        for flag in latest:  # the analyst's page names a customer by its pseudonym (break-test 12k, K2)
            pseudonym = ledger.pseudonym(str(flag.get("customer")))
            flag["pseudonym"] = f"customer_id:{pseudonym}" if pseudonym else "-"  # a device's or cookie's: as is
        if latest and first_flag_s is None:
            first_flag_s = elapsed
        _draw(elapsed, duration_s, rate, stats, latest, page)
    bad.flush(5)
    print(
        f"\nsummary: {int(stats.get('livesignals_events_in_total', 0))} events, "
        f"{int(stats.get('livesignals_flags_total', 0))} flags, "
        f"{int(stats.get('livesignals_triggers_total', 0))} triggers, "
        f"{int(stats.get('livesignals_dead_letters_total', 0))} dead letters; "
        f"first flag after {first_flag_s if first_flag_s is None else round(first_flag_s, 1)} s"
    )


def _draw(
    elapsed: float,
    duration_s: float,
    rate: float,
    stats: dict[str, float],
    latest: list[dict[str, Any]],
    page: str = "",
) -> None:
    flags = {k.split(":", 1)[1]: int(v) for k, v in stats.items() if k.startswith("livesignals_flags_total:")}
    lines = [
        f"LiveSignals demo   {elapsed:5.0f}/{duration_s:.0f} s   (Ctrl-C to stop)",
        f"agent page    {page}  (open a customer listed below by its analyst pseudonym)" if page else "",
        "",
        f"events/s      {rate:10.0f}      events in    {int(stats.get('livesignals_events_in_total', 0)):>10}",
        f"flags raised  {int(stats.get('livesignals_flags_total', 0)):>10}      triggers     "
        f"{int(stats.get('livesignals_triggers_total', 0)):>10}",
        f"dead letters  {int(stats.get('livesignals_dead_letters_total', 0)):>10}      "
        f"suppressed   {int(stats.get('livesignals_triggers_suppressed_total', 0)):>10}",
        "flags by kind " + ", ".join(f"{k} {v}" for k, v in sorted(flags.items())),
        "",
        "latest flagged customers (and the pseudonym analysts see and look them up by):",
        *[f"  {f['customer']:<22} {f.get('pseudonym', ''):<31} {f['flag']:<18} {f['reason']}" for f in latest],
    ]
    sys.stdout.write("\x1b[2J\x1b[H" + "\n".join(lines) + "\n")
    sys.stdout.flush()
