"""All settings in one typed place, read from a TOML file and the environment.

Precedence: defaults < TOML file (``LIVESIGNALS_CONFIG`` or ``--config``) <
environment variables ``LIVESIGNALS_<FIELD>`` (upper case). Secrets (URL user
info and secret query parameters in any setting, Kafka ``*.password``, ``*.pem``,
``*.key``, ``sasl.*``, ``*secret*``, ``*token*`` options) never appear in
``repr`` or logs: use :meth:`Settings.redacted`.

>>> s = Settings.load(env={"LIVESIGNALS_BATCH_SIZE": "250",
...                        "LIVESIGNALS_REDIS_URL": "redis://:hunter2@db:6379/0"})
>>> s.batch_size
250
>>> "hunter2" in repr(s)
False
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

from livesignals.redaction import REDACTED, redact, redact_url
from livesignals.settings_check import (
    HOUR_RANGE,
    LOG_LEVEL,
    NOT_EMPTY,
    PROXY_ADDRESSES,
    REDIS_URL,
    TOPIC,
    TOPIC_OR_DERIVED,
    TOPICS,
    Range,
    SettingsError,
    check_settings,
    parse_env,
)
from livesignals.settings_sources import read_toml, warn_unknown_variables

__all__ = ["REDACTED", "Range", "Settings", "SettingsError", "redact_url"]

_MOVED_TO_RULES = {
    "churn_flag_threshold": "flag high_churn_risk", "fraud_flag_threshold": "flag fraud_risk",
    "repeat_contact_threshold": "flag repeat_contact", "high_value_spend": "the actions' eligible_when",
}  # fmt: skip
"""Settings of earlier versions that the rules file now holds."""


# gateway (issue 12, session 14): one source of truth for when an open contact is over
CONTACT_IDLE_S = 4 * 3600
"""A contact whose newest event is older than this is over (the engine's
``operators.profile360.update.CONTACT_IDLE_MS`` is this, in ms: a message after it opens a new, unassigned
contact). The agent desktop's ``gateway_contact_open_s`` defaults to it and may not exceed it: the service
may end an agent's access sooner, never grant on a contact the engine no longer holds open."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the engine, with production-sane defaults."""

    # --- Kafka ---------------------------------------------------------------
    kafka_bootstrap: Annotated[str, NOT_EMPTY] = "127.0.0.1:9092"
    """Bootstrap servers, comma-separated."""
    kafka_config: dict[str, str | int | float | bool] = field(default_factory=dict)
    """Extra librdkafka options for every client (security, SASL, ...); TOML only."""
    input_topics: Annotated[tuple[str, ...], TOPICS] = ("ls.interactions",)
    """Topics of interaction events (the event contract)."""
    repartition_topic: Annotated[str, TOPIC_OR_DERIVED] = ""
    """Events re-keyed by the engine to the partition that owns their customer (read like an input topic).
    Empty (the default): ``<key_prefix>.repartition`` (``ls.repartition`` for the default prefix), so that two
    deployments never read each other's reroutes (:func:`derived_repartition_topic`)."""
    dead_letter_topic: Annotated[str, TOPIC] = "ls.deadletter"
    """Rejected input: original bytes as value, reason and origin in headers."""
    triggers_topic: Annotated[str, TOPIC] = "ls.triggers"
    """Next-best-action triggers for marketing systems."""
    flags_topic: Annotated[str, TOPIC] = "ls.flags"
    """Live flags, also on Kafka for systems that do not read Redis."""
    decisions_topic: Annotated[str, TOPIC] = "ls.decisions"
    """Decision log: every next-best-action decision with its candidates and propensities, then its outcome."""
    topic_partitions: Annotated[int, Range(1, 100_000)] = 4
    """Partitions used when ``livesignals topics create`` makes the topics."""
    batch_size: Annotated[int, Range(1, 10_000_000)] = 5000
    """Most messages taken from one partition per engine batch. A worker's round of several partitions is one
    engine batch (``one_batch_per_round``): with ``batch_max_s`` 0 it holds up to partitions x ``batch_size``
    events (20,000 for a worker reading 4), in one commit."""
    batch_max_s: Annotated[float, Range(0, 60)] = 0.25
    """Most wall seconds of work a worker's round takes from its partitions, at the engine's measured cost per
    event: each partition reads what the others left of it, at least its share (never under 100 events a
    partition, so a round holds at least partitions x 100, and 100 until a batch was measured; 0:
    ``batch_size`` alone): a backlog's flags go out round by round instead of waiting for seconds of work
    (:mod:`flows.batch_bound`). ``one_batch_per_round`` off: per partition, as before rounds."""
    one_batch_per_round: bool = True
    """Process what a worker's partitions fetched in one pass as one engine batch (one state check, load, publish,
    commit and consumer-group commit for all of them) when every one is plain (:mod:`flows.one_batch`). Only a
    worker reading several partitions has rounds (more partitions than processes x workers). Off: as before
    rounds, each partition's own batches, one after another, each bounded by the whole ``batch_max_s``."""
    kafka_fetch_wait_ms: Annotated[int, Range(0, 1000)] = 100
    """How long the broker may hold an input fetch that found no records (librdkafka's ``fetch.wait.max.ms``; one
    in ``kafka_config`` wins). Apache Kafka answers as soon as records arrive, so the wait costs no latency there,
    while each quiet partition's consumer fetches once per wait (``bench.fetch_wait``, 24 quiet partitions on
    Apache Kafka: broker 0.22 cores and consumers 0.10 at 10 ms, 0.064 and 0.034 at 100, p50 0.6 and 0.8 ms).
    The embedded broker answers only when the wait ends: the demo and the benchmarks on it use 10. At most 1 s: a
    held fetch delays the consumer's other requests, among them the watermark reads that tell retention from a
    log reset (2-4.7 s each behind a 5 s wait; break-test 19a, A2)."""
    produce_timeout_s: Annotated[float, Range(0.001, None)] = 30.0
    """How long a batch waits for Kafka to confirm its outputs before it fails."""

    # --- Redis ---------------------------------------------------------------
    redis_url: Annotated[str, REDIS_URL] = "redis://127.0.0.1:6379/0"
    """Redis (or Valkey) URL; a password in it is never logged."""
    redis_cluster: bool = False
    """Speak Redis Cluster: every key of one customer shares one hash slot."""
    key_prefix: Annotated[str, NOT_EMPTY] = "ls"
    """Prefix of every key the engine writes."""
    redis_mode: Literal["batched", "per_event"] = "batched"
    """``per_event`` is the benchmark baseline: one round trip per event, no cache."""
    cache_size: Annotated[int, Range(0, None)] = 200_000
    """Customer states kept in each worker's read-through cache."""
    flags_stream_maxlen: Annotated[int, Range(1, None)] = 100_000
    """Approximate length kept in the replayable flags stream."""

    # --- Ingest rules --------------------------------------------------------
    max_event_bytes: Annotated[int, Range(1, None)] = 65_536
    """Larger messages are dead-lettered as ``oversized``."""
    repartition_secret: str = ""
    """Key that signs the ``ls.origin.*`` headers of rerouted events (``ls.origin.sig``); a secret,
    never printed. Empty: derived from ``redis_url`` and ``kafka_config`` (their passwords included),
    which every engine of a deployment shares -- set it when those hold no secret."""
    max_future_skew_s: Annotated[int, Range(0, None)] = 300
    """Events whose ``event_time`` is further ahead of the engine's wall clock than this are
    dead-lettered as ``future_time``: they never become a customer's present, so they cannot make
    real events late nor move the churn sweep's clock (5 minutes covers producers' clock drift)."""

    # --- Flags and actions (thresholds live in the rules file) -----------------
    rules_path: str = ""
    """Rules file (TOML) of flags and actions; empty = the shipped catalogue, ``none`` = none."""
    rules_reload_s: Annotated[float, Range(0, None)] = 5.0
    """How often the rules file is checked for changes while running."""
    repeat_contact_window_s: Annotated[int, Range(0, None)] = 86_400
    """Contacts within this window count in ``derived.same_topic_contacts``."""
    context_window_s: Annotated[int, Range(0, None)] = 86_400
    """A contact this soon after a touch on another channel carries its context."""
    nba_policy: Literal["learned", "fixed", "random"] = "learned"
    """How an action is chosen: ``learned`` (epsilon-greedy on propensity x value x weight),
    ``fixed`` (value x weight, no learning) or ``random`` (baselines)."""
    nba_epsilon: Annotated[float, Range(0, 1)] = 0.1
    """Share of decisions that explore (``learned``): what makes off-policy evaluation possible."""
    nba_top_n: Annotated[int, Range(1, 1000)] = 3
    """Ranked actions shown in the 360 and attached to a trigger."""
    nba_seed: int = 0
    """Seed of the exploration draws."""

    contact_daily_cap: Annotated[int, Range(0, None)] = 2
    """Triggers per customer per day, all channels."""
    contact_weekly_cap: Annotated[int, Range(0, None)] = 5
    """Triggers per customer per 7 days."""
    quiet_hours: Annotated[str, HOUR_RANGE] = "21-8"
    """Local hours (customer's time zone, UTC if unknown) with no triggers, ``start-end`` (``0-0``: none)."""
    max_ignored_offers: Annotated[int, Range(0, None)] = 3
    """Offers ignored or rejected in a row after which marketing triggers stop."""

    # --- Routing and event time (issue 10) -------------------------------------
    late_event_grace_s: Annotated[int, Range(0, None)] = 3600
    """An event older than the customer's newest event time by more than this is *late*: it still
    updates windows, totals and the timeline, but raises no flag and no trigger
    (``livesignals_late_events_total``); a response this late after its offer expired is unmatched."""
    trigger_max_age_s: Annotated[int, Range(0, None)] = 21_600
    """A trigger whose decision moment (event time) is older than this at send time, or whose
    expiry has passed, is not sent (suppressed, reason ``stale``)."""
    policy_clock: Literal["wall", "stream"] = "wall"
    """What *now* is for the contact policy (quiet hours, caps) and trigger staleness at send time:
    ``wall``, the engine's clock (production); ``stream``, the customer's newest event time
    (replays of recorded streams, simulations and tests, where wall time means nothing)."""

    # --- The 360 -------------------------------------------------------------
    timeline_max_entries: Annotated[int, Range(0, None)] = 200
    """Timeline entries kept per customer (oldest dropped)."""
    timeline_max_age_days: Annotated[int, Range(1, None)] = 90
    """Timeline entries older than this are dropped; the key expires after it too."""
    profile_compression: Literal["zstd", "off"] = "zstd"
    """How the engine writes profile documents to Redis: ``zstd``, compressed with a dictionary shipped in
    the package (:mod:`livesignals.documents`, about 4x smaller); ``off``, plain JSON (readable with
    ``redis-cli GET``). Readers accept both forms whatever this says: switching needs no migration."""
    timeline_compression: Literal["zstd", "off"] = "zstd"
    """The same for each timeline entry (a member of the customer's timeline, with a dictionary of its own).
    A replayed entry adds nothing while the form stays the same; an entry written in one form and replayed
    in the other (a batch cut short by a crash across a switch or an upgrade) is kept twice, until trimmed."""

    # --- Models (issue 4) -----------------------------------------------------
    models: dict[str, Any] = field(default_factory=dict)
    """Model choice and hyper-parameters per kind and role (TOML only), e.g.
    ``[models.churn.challenger] learning_rate = 0.2``; see :mod:`models.registry`."""
    churn_horizon_days: Annotated[float, Range(0.000001, None)] = 30.0
    """A cancellation within this many days after scoring makes the churn label positive."""
    models_enabled: bool = True
    """Score the online models in the flow (off: profiles and rules only)."""
    model_control_poll_s: Annotated[float, Range(0, None)] = 10.0
    """How often workers look for promotions (``livesignals models promote``)."""

    # --- Shared models: churn labels and checkpoints (issue 11) ----------------
    churn_snapshots_per_horizon: Annotated[int, Range(1, None)] = 6
    """Churn feature snapshots per customer per horizon (the cadence; bounds pending snapshots)."""
    models_checkpoint_every: Annotated[int, Range(1, None)] = 20_000
    """Write the shared models' checkpoint after this many lessons learned ..."""
    models_checkpoint_every_s: Annotated[float, Range(0, None)] = 300.0
    """... or after this many seconds with lessons learned, whichever comes first."""

    # --- Ownership and durability (issue 10) ------------------------------------
    consumer_group: Annotated[str, NOT_EMPTY] = "livesignals-engine"
    """Kafka consumer group the engine commits its offsets to after each Redis commit (lag tooling;
    a Redis that is behind them has lost data). Partitions are claimed in Redis, not by the group."""
    retry_backoff_s: Annotated[float, Range(0, None)] = 0.5
    """First wait after Redis or Kafka failed a batch; doubled per failure up to ``retry_backoff_max_s``."""
    retry_backoff_max_s: Annotated[float, Range(0, None)] = 30.0
    """Longest wait between retries: the engine retries for as long as the outage lasts."""
    kafka_log_check_s: Annotated[float, Range(0.1, None)] = 30.0
    """How often a running engine reads again an earlier record of each partition it reads, to notice a log
    that was reset under it (a topic re-created on a live broker); after a disconnect it checks at once
    (``flows.log_watch``)."""
    on_state_loss: Literal["rebuild", "stop"] = "rebuild"
    """When Redis lost or rolled back committed state: ``rebuild`` replays the partition from the
    offset Redis still holds (from the earliest one if none) when Kafka's retention still has it,
    else stops (exit code 4); ``stop`` always stops."""
    redis_wait_replicas: int = 0
    """After each Redis commit, ``WAIT`` until this many replicas acknowledged it (0 = off). With a
    replica and this at 1, a failover loses no commit the engine acknowledged (to Kafka, to the next
    batch); a commit not acknowledged in time is retried (the engine waits for its replicas)."""
    redis_wait_timeout_ms: int = 1000
    """How long one ``WAIT`` blocks before the commit counts as failed and is retried."""

    # --- Rebuild outputs (issue 10, session 15) ----------------------------------
    republish_replays: bool = False
    """After a STATE LOSS, publish again the outputs (flags, triggers, decisions, reroutes, dead letters) of the
    replayed events below the offsets already committed, whose outputs Kafka confirmed before that commit. Off:
    the replay rebuilds state only up to there (less work, no repeated output ids); on: for output topics that
    were lost along with Redis."""

    # --- Privacy: erasure and retention (issue 14) ---------------------------
    anonymous_ttl_s: int = 30 * 86_400
    """An anonymous profile (keyed by ``device_id`` or ``cookie_id``), its timeline and its writer
    key expire this long after the last event applied to it (refreshed by every write)."""
    identity_claim_ttl_s: int = 400 * 86_400
    """A claim set (``ls:{<ident>}:owners``: the customers that linked an identifier) expires this
    long after its last new claim."""
    erasure_ledger_ttl_s: int = 400 * 86_400
    """How long an erasure is remembered (``ls:erased:<hash>``), so that a replay of the input does
    not bring the customer back: keep it at least as long as the input topics' retention
    (0 = forever, for input topics kept forever)."""
    erasure_ledger_secret: str = ""
    """Key of the keyed BLAKE2b hash of customer keys in the erasure ledger and audit stream
    (empty: unkeyed). Never logged."""
    analyst_pseudonym_secret: str = ""
    """Key of the pseudonyms analysts see for customer ids (``customer_id:p_<16 hex>``: HMAC-SHA256 of the
    customer key, :func:`livesignals.privacy.analyst_pseudonym`). Empty: the deployment's random secret kept
    in Redis (``ls:secret:pseudonym``, made once), with a WARNING -- fine for the demo; set it from a secret
    store, since whoever reads Redis reads that one. Changing it changes every pseudonym (each customer's new
    lookup key is written at its next event; the old ones resolve until its erasure). Never logged."""
    erasure_audit_maxlen: int = 100_000
    """Approximate length kept in the erasure audit stream (``ls:erasures``)."""
    dead_letter_redact: bool = False
    """Dead letters keep no personal data in their bounded prefix: payload ``email``, ``phone``,
    ``name``, ``address``, ``text``, ``comment`` (and profile fields of those names) are replaced,
    customer identifiers and the record key are hashed; a value that is not a JSON object is dropped."""

    # --- Outages and rebuild loops (issue 10, outside review) ------------------
    state_loss_max_rebuilds: int = 5
    """Most state-loss rebuilds of one partition within ``state_loss_window_s``; one more means
    something keeps deleting Redis's data (a rebuild loop): the engine stops with exit code 4."""
    state_loss_window_s: float = 600.0
    """Window, in seconds, in which ``state_loss_max_rebuilds`` is counted."""

    # --- Operations ----------------------------------------------------------
    metrics_port: Annotated[int, Range(0, 65_535)] = 9464
    """Port of ``/metrics``, ``/healthz`` and ``/readyz`` (0 = off). Fixed: a port already taken stops the
    engine with exit code 2; when ``-a`` puts several processes on one host, process i uses port + i."""
    log_level: Annotated[str, LOG_LEVEL] = "INFO"
    """Python log level of the engine and the CLI (DEBUG, INFO, WARNING, ERROR, CRITICAL)."""

    # --- Agent desktop service (gateway/, issue 12) ------------------------------
    gateway_host: str = "127.0.0.1"
    """Address ``livesignals serve`` binds (``0.0.0.0`` in a container)."""
    gateway_port: int = 8780
    """Port of the agent desktop service."""
    gateway_token_secrets: tuple[str, ...] = ()
    """HS256 secrets (>= 32 bytes each) that bearer tokens are verified against; the first signs
    ``livesignals token``. Several during a key rotation. Never logged."""
    gateway_contact_open_s: Annotated[int, Range(1, CONTACT_IDLE_S)] = CONTACT_IDLE_S
    """An open contact older than this (its last event's time) no longer grants an agent access; at most
    :data:`CONTACT_IDLE_S`, when the engine itself considers the contact over."""
    gateway_audit_maxlen: int = 1_000_000
    # gateway (issue 12, session 14)
    gateway_queue_audit_maxlen: Annotated[int, Range(1, None)] = 1_000_000
    """Approximate length kept in ``<prefix>:audit:queues``, the stream of queue deliveries' audit entries:
    apart from ``<prefix>:audit`` so that customers' queue traffic never evicts reads, denials and
    subscriptions from the trail (break-test 12g, G2)."""
    """Approximate length kept in the audit stream ``<prefix>:audit``."""
    gateway_push_max_customers: int = 50
    """Most customers one push connection may subscribe to."""
    gateway_push_keepalive_s: float = 15.0
    """Seconds between keep-alive comments on an idle push connection."""
    gateway_push_recheck_s: float = 30.0
    """How often a push connection checks that its caller may still see each customer it follows (a
    contact that ended ends the stream)."""
    gateway_push_max_connections: Annotated[int, Range(1, None)] = 20
    """Most push connections one caller (token subject) may hold open on one process (more: 429)."""
    gateway_workers: Annotated[int, Range(1, 64)] = 1
    """Processes ``livesignals serve`` runs (uvicorn workers on one port). One process serves reads on
    one core (Python); each has its own push reader and in-memory fan-out. Set it to the cores the
    service may use (bench/gateway.py measures both)."""

    # --- Agent desktop service: abuse limits (gateway/, issue 12 break-test) ------
    gateway_body_max_bytes: Annotated[int, Range(256, 1_048_576)] = 16_384
    """Largest request body the service reads; a longer one is refused (413) while it streams in."""
    gateway_feedback_timeout_s: Annotated[float, Range(0.1, 60.0)] = 5.0
    """How long a feedback request waits for Kafka to confirm its event; the producer gives the event up
    after the same time (``message.timeout.ms``), so a 503 means it was not sent."""
    gateway_feedback_ttl_s: Annotated[int, Range(60, None)] = 86_400
    """How long an Idempotency-Key, and an agent's verdict on one flag or decision, are remembered."""
    gateway_feedback_per_agent_day: Annotated[int, Range(0, 1_000_000)] = 20
    """Most verdicts one agent gives one shared model a day (per flag name for flag relevance; sentiment
    corrections; action verdicts; not the customers' offer answers it records, one per customer and decision
    already); beyond, 429. 0 = no quota."""
    gateway_audit_max_age_s: Annotated[int, Range(60, None)] = 90 * 86_400
    """Audit entries older than this are trimmed (as well as beyond ``gateway_audit_maxlen``)."""

    # --- Agent desktop service: refused callers, slow senders (gateway/, issue 12 break-tests) ------
    gateway_audit_refusals_per_min: Annotated[int, Range(1, 1_000_000)] = 60
    """Most refusals (401, 403, audited 400) one caller -- by address, and by the token's subject -- writes
    to the audit trail per minute and process; beyond, one summarising entry, the rest only counted
    (``livesignals_gateway_refusals_unaudited_total``), so refusals cannot flush the trail."""
    gateway_push_subscribes_per_min: Annotated[int, Range(1, 1_000_000)] = 120
    """Most push subscriptions (``GET /v1/push``) one caller (token subject) opens per minute and process;
    beyond, 429 before any customer is read or audited (each subscription reads and audits its customers)."""
    gateway_header_timeout_s: Annotated[float, Range(0.5, 300.0)] = 10.0
    """A connection that has not sent a whole request head (request line and headers) this long after it
    opened, or after its previous response, is closed (slow-header senders hold no socket for long)."""

    # --- Agent desktop service: callers' addresses (gateway/, issue 12 break-test 12b, B7) ------
    gateway_trusted_proxies: Annotated[tuple[str, ...], PROXY_ADDRESSES] = ()
    """Peer addresses (IPs or networks) whose ``X-Forwarded-For``/``X-Forwarded-Proto`` the service
    believes: a refusal's audited ``source`` and the per-address refusal budget then use the address
    they forward. Empty (the default): the headers are ignored and the socket peer is the caller, so no
    caller writes the address it likes into the audit trail. Set it to the reverse proxy's addresses."""
    gateway_audited_per_min: Annotated[int, Range(1, 1_000_000)] = 600
    """Most customer requests (reads, feedback, each customer of a push subscription: every one an audit
    entry) one caller (token subject) makes per minute and process; beyond, 429 before anything is read or
    audited, so one token flushes the audit trail (``MAXLEN``) with allowed reads no faster than this rate
    (break-test 12c, C3): at 600, the default 1,000,000 entries in about 25 hours (12m, N2; README)."""
    gateway_queue_audited_per_min: Annotated[int, Range(1, 1_000_000)] = 600
    """Customers first shown through one queue in a minute (per process, whatever the desks following it)
    that are audited one by one; beyond, they are still shown and named in batches, a bounded number of
    entries per queue and minute (counted in ``livesignals_gateway_push_over_rate_total``; break-test 12h,
    H3: the bound was per desk, so the entries grew with desks x customers). A budget of its own: who waits in a
    queue is decided by customers (anyone who opens a web chat), so queue volume must never cost a desk its
    own reads or hide customers from it (break-test 12e, E2), nor flush the audit trail (12d, D1)."""

    # --- Operations: health, lag, shutdown (issue 13) ----------------------------
    metrics_host: Annotated[str, NOT_EMPTY] = "0.0.0.0"  # noqa: S104 - Prometheus scrapes from another host or pod
    """Address the metrics and health endpoints bind to (``127.0.0.1``: this host only)."""
    status_interval_s: Annotated[float, Range(0.1, None)] = 10.0
    """How often lag is read from Kafka's high watermarks and Redis and Kafka are checked for ``/readyz``."""
    status_log_interval_s: Annotated[float, Range(0, None)] = 60.0
    """How often the engine logs one JSON status line (throughput, lag, freshness); 0 = never."""
    shutdown_grace_s: Annotated[float, Range(1, None)] = 25.0
    """On SIGTERM, how long the batch in flight may take to commit before the process exits anyway."""
    suppressed_alert_s: Annotated[float, Range(0, None)] = 300.0
    """Every trigger held back by the contact policy for this long: one WARNING line (and
    ``livesignals_triggers_all_suppressed_seconds``); quiet hours at night do this by design."""

    def __post_init__(self) -> None:
        """Check every value by its type and range (:mod:`livesignals.settings_check`), converting what
        loses nothing (a TOML integer for a float, a list for a tuple); raise :class:`SettingsError`."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in check_settings(values, _hints(), redact).items():
            object.__setattr__(self, name, value)
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise SettingsError(
                f"retry_backoff_max_s: must be at least retry_backoff_s ({self.retry_backoff_s:g}), "
                f"got {self.retry_backoff_max_s:g}", "retry_backoff_max_s",
            )  # fmt: skip
        # durability (issue 10, break-test F2): one repartition topic per deployment unless set
        derived = not self.repartition_topic
        if derived:
            object.__setattr__(self, "repartition_topic", derived_repartition_topic(self.key_prefix))
        object.__setattr__(self, "_derived_repartition", derived)
        outputs = {self.dead_letter_topic, self.flags_topic, self.triggers_topic, self.decisions_topic}
        looped = sorted(outputs & set(self.input_topics))
        if looped:
            raise SettingsError(f"input_topics: {looped} are also output topics of the engine: "
                                "it would read its own output", "input_topics")  # fmt: skip

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then the TOML file, then ``LIVESIGNALS_*`` variables; every value checked.

        Raises :class:`SettingsError` (a ``ValueError``) with one line naming the setting and where its
        value came from: ``batch_size: expected an integer, got 'x' (str) (in ls.toml)``.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        source: dict[str, str] = {}
        path = path or env.get("LIVESIGNALS_CONFIG")
        if path:
            values.update(read_toml(path))
            source = dict.fromkeys(values, f"in {path}")
        hints = _hints()
        for f in fields(cls):
            variable = f"LIVESIGNALS_{f.name.upper()}"
            raw = env.get(variable)
            if raw is not None:
                values[f.name] = parse_env(variable, raw, hints[f.name])
                source[f.name] = f"from {variable}"
        warn_unknown_variables(env, {f"LIVESIGNALS_{f.name.upper()}" for f in fields(cls)})
        moved = [name for name in _MOVED_TO_RULES if name in values or f"LIVESIGNALS_{name.upper()}" in env]
        if moved:
            raise SettingsError(f"settings {moved} are now thresholds in the rules file (rules_path): "
                                f"copy livesignals/rules/catalogue.toml and edit {_MOVED_TO_RULES[moved[0]]}",
                                moved[0])  # fmt: skip
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown settings: {sorted(unknown)}" + (f" {source[min(unknown)]}" if path else ""))
        try:
            return cls(**values)
        except SettingsError as exc:
            where = source.get(exc.setting)
            raise SettingsError(f"{exc} ({where})" if where else str(exc), exc.setting) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (a derived ``repartition_topic`` follows a new ``key_prefix``).

        >>> Settings(key_prefix="blue").replace(key_prefix="green").repartition_topic
        'green.repartition'
        """
        if getattr(self, "_derived_repartition", False) and "repartition_topic" not in changes:
            changes = {**changes, "repartition_topic": ""}
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict that is safe to log: what ``repr``, the start-up log line and
        ``livesignals settings`` show (see :mod:`livesignals.redaction`)."""
        return {f.name: redact(f.name, getattr(self, f.name)) for f in fields(self)}

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({items})"

    def kafka_client_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka config for a client of this deployment."""
        # durable (#10): librdkafka's reconnect backoff grows to 10 s by default; 1 s bounds recovery after a restart
        defaults = {"bootstrap.servers": self.kafka_bootstrap, "reconnect.backoff.max.ms": 1000}
        return {**defaults, **self.kafka_config, **extra}


def derived_repartition_topic(key_prefix: str) -> str:
    """The default repartition topic of the deployment with this ``key_prefix``: one per deployment
    (characters Kafka refuses in topic names become ``_``).

    >>> derived_repartition_topic("ls"), derived_repartition_topic("tenant:a")
    ('ls.repartition', 'tenant_a.repartition')
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", key_prefix)[: 249 - len(".repartition")] + ".repartition"


def quiet_hours_note(quiet_hours: str) -> str:
    """What ``quiet_hours`` means, for ``livesignals settings`` (a default that surprises at night).

    >>> quiet_hours_note("21-8")
    'no trigger from 21:00 to 08:00 customer-local time (UTC when the zone is unknown); 0-0 = none'
    >>> quiet_hours_note("0-0")
    'no quiet hours: triggers at any hour'
    """
    start, _, end = quiet_hours.partition("-")
    if not (start.strip().isdigit() and end.strip().isdigit()):
        return "start-end in hours, e.g. 21-8; 0-0 = none"
    if int(start) == int(end):
        return "no quiet hours: triggers at any hour"
    return (f"no trigger from {int(start):02d}:00 to {int(end):02d}:00 customer-local time "
            "(UTC when the zone is unknown); 0-0 = none")  # fmt: skip


@functools.cache
def _hints() -> dict[str, Any]:
    """The fields' type hints with their ``Annotated`` ranges and formats."""
    return get_type_hints(Settings, include_extras=True)
