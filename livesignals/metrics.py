"""Every Prometheus metric LiveSignals exports, defined once, here.

Labels are bounded sets (topic, reason, flag, action, event type, operation);
never a customer id. The engine serves them with its health endpoints
(:mod:`flows.health`); :func:`serve` is a bare ``/metrics`` endpoint for other processes.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

EVENTS_IN = Counter("livesignals_events_in_total", "Messages read from input topics.", ["topic"])
EVENTS_APPLIED = Counter("livesignals_events_applied_total", "Valid events applied to customer state.", ["type"])
EVENTS_REPLAY_SKIPPED = Counter(
    "livesignals_events_replay_skipped_total",
    "Events skipped because their offset was already applied (replay after a restart).",
)
DEAD_LETTERS = Counter("livesignals_dead_letters_total", "Messages sent to the dead-letter topic.", ["reason"])
FLAGS = Counter("livesignals_flags_total", "Live flags raised.", ["flag"])
TRIGGERS = Counter("livesignals_triggers_total", "Next-best-action triggers emitted.", ["action"])
TRIGGERS_SUPPRESSED = Counter(
    "livesignals_triggers_suppressed_total",
    "Actions held back by contact policy or consent.",
    ["action", "reason"],
)
DECISIONS = Counter(
    "livesignals_decisions_total", "Next-best-action decisions, by policy and chosen action.", ["policy", "action"]
)
OFFER_OUTCOMES = Counter(
    "livesignals_offer_outcomes_total",
    "Responses to actions (accepted, rejected, ignored, expired, not_relevant); action 'other' if not in the rules.",
    ["action", "response"],
)
KAFKA_PRODUCED = Counter("livesignals_kafka_produced_total", "Records confirmed by Kafka.", ["topic"])
KAFKA_DELIVERY_FAILURES = Counter(
    "livesignals_kafka_delivery_failures_total",
    "Records Kafka did not confirm (retried, then the batch fails).",
    ["topic"],
)
KAFKA_PRODUCER_RENEWED = Counter(
    "livesignals_kafka_producer_renewed_total",
    "Kafka producers replaced after a fatal error (e.g. UNKNOWN_PRODUCER_ID once the broker lost its log): a "
    "fatal producer refuses every record for good (flows.publisher).",
)
KAFKA_LOG_CHECKS = Counter(
    "livesignals_kafka_log_checks_total",
    "Records a running engine read again to check that a partition's log is still the one it applied "
    "(flows.log_watch). trigger: disconnect (after a broker disconnect) or periodic (kafka_log_check_s).",
    ["trigger"],
)
REDIS_ROUNDTRIPS = Counter("livesignals_redis_roundtrips_total", "Round trips to Redis.", ["op"])
REDIS_COMMANDS = Counter("livesignals_redis_commands_total", "Commands sent to Redis.", ["op"])
PROFILES_UNREADABLE = Counter(
    "livesignals_profiles_unreadable_total",
    "Stored profiles that could not be read when loaded by the engine or the agent desktop.",
)
KPI_EVENTS = Counter(
    "livesignals_kpi_events_total",
    "Contact-centre KPI components by channel (see operators/profile360/kpis.py and the README for the "
    "PromQL that turns them into FCR, repeat rate, AHT, CSAT, NPS, CES and deflection).",
    ["channel", "component"],
)
KPI_VALUES = Counter(
    "livesignals_kpi_value_sum",
    "Sums behind averaged KPIs by channel: handle_s (handle time seconds) and ces (CES answers).",
    ["channel", "component"],
)
COMPLAINTS = Counter("livesignals_complaints_total", "Complaints seen (negative text, bad survey, case opened).")
MODEL_SCORED = Counter("livesignals_model_scored_total", "Events scored by each model (champion).", ["model"])
MODEL_LABELS = Counter(
    "livesignals_model_labels_total",
    "Delayed labels by model and outcome (learned, positive, negative, duplicate, unmatched).",
    ["model", "outcome"],
)
MODEL_METRIC = Gauge(
    "livesignals_model_metric",
    "Progressive-validation figures over a sliding window, per model, role and input partition.",
    ["model", "role", "metric", "partition"],
)
BATCH_SECONDS = Histogram(
    "livesignals_batch_seconds",
    "Wall time to process one engine batch, from decode to state commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_EVENTS = Histogram(
    "livesignals_batch_events",
    "Messages per engine batch.",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
)


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from outside
    """Start the ``/metrics`` HTTP endpoint in a daemon thread (0 = off)."""
    if port:
        start_http_server(port, addr=addr)


# rules: the rules file and the rules language (operators/rules)
RULES_RELOAD_ERRORS = Counter(
    "livesignals_rules_reload_errors_total",
    "Rules files rejected, at start-up or on reload (the error names the line; the rules in force stay).",
)
RULES_CURRENT = Gauge(
    "livesignals_rules_current",
    "1 when the rules in force are the rules file's latest version, 0 while a rejected file waits to be fixed.",
)
RULE_ERRORS = Counter(
    "livesignals_rule_errors_total",
    "Rule evaluations that raised (taken as false or null; the batch goes on), by rule kind and name.",
    ["kind", "rule"],
)


# --- Dead letters that always fit (issue 9: input safety) ------------------------
DEAD_LETTERS_UNPUBLISHABLE = Counter(
    "livesignals_dead_letters_unpublishable_total",
    "Records Kafka refused for good even as a minimal dead-letter record: logged and dropped, by topic.",
    ["topic"],
)


# routing and event time
EVENTS_REROUTED = Counter(
    "livesignals_events_rerouted_total",
    "Events read from a partition that does not own their customer, re-published to the repartition topic.",
    ["topic"],
)
LATE_EVENTS = Counter(
    "livesignals_late_events_total",
    "Events older than the customer's newest event time by more than late_event_grace_s: "
    "applied, but no flag and no trigger.",
)


# models (issue 11): the shared learner and its checkpoints
MODEL_LESSONS = Counter(
    "livesignals_model_lessons_total",
    "Lessons of the shared learner: published to the log, learned, skipped (already learned), or failed (logged).",
    ["outcome"],
)
MODEL_CHECKPOINT_BYTES = Gauge("livesignals_model_checkpoint_bytes", "Size of the last model checkpoint written.")
MODEL_CHECKPOINT_SECONDS = Histogram(
    "livesignals_model_checkpoint_seconds",
    "Time to pickle and write one model checkpoint.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


# --- atomic apply and deduplication (issue 9 items 3-5) ---------------------------------
EVENTS_DUPLICATE = Counter(
    "livesignals_events_duplicate_total",
    "Events skipped because an event with the same event_id was applied to the customer recently "
    "(within the deduplication horizon: the customer's last 32 events).",
)


# ownership and durability
READY = Gauge(
    "livesignals_ready",
    "1 while the engine can make progress: Redis and Kafka reachable, partitions owned, not fenced.",
)
DEPENDENCY_UP = Gauge(
    "livesignals_dependency_up", "1 while the dependency answers, 0 while the engine backs off.", ["dependency"]
)
DEPENDENCY_RETRIES = Counter(
    "livesignals_dependency_retries_total", "Attempts that failed on an unreachable dependency.", ["dependency"]
)
PARTITIONS_OWNED = Gauge("livesignals_partitions_owned", "Partition numbers this process owns (claimed, not fenced).")
FENCED = Counter(
    "livesignals_fenced_total", "Partitions this process stopped writing because another engine claimed them."
)
STATE_LOSS = Counter(
    "livesignals_state_loss_total",
    "Times Redis was found to have lost or rolled back committed state, by what the engine did "
    "(rebuilt: replayed from Kafka; stopped: retention no longer holds the events).",
    ["action"],
)
KAFKA_OFFSET_COMMITS = Counter(
    "livesignals_kafka_offset_commits_total",
    "Offsets committed to the engine's Kafka consumer group after the Redis commit, by outcome.",
    ["outcome"],
)


# privacy: erasure and retention (issue 14)
ERASURES = Counter(
    "livesignals_erasures_total",
    "Customer keys erased, by how the request came: input (an erase event) or cascade (an identifier "
    "linked to an erased customer).",
    ["origin"],
)
ERASED_EVENTS_DROPPED = Counter(
    "livesignals_events_erased_dropped_total",
    "Events dropped because their customer was erased after they happened (a replay of the input, "
    "a late event): never applied, never dead-lettered.",
)

# --- Agent desktop service (gateway/, issue 12) -------------------------------
GATEWAY_REQUESTS = Counter(
    "livesignals_gateway_requests_total", "HTTP requests answered by the agent desktop service.", ["route", "status"]
)
GATEWAY_DECISIONS = Counter(
    "livesignals_gateway_access_total",
    "Access decisions of the agent desktop service (each one audited), by action and result.",
    ["action", "result"],
)
GATEWAY_PUSH_CONNECTIONS = Gauge("livesignals_gateway_push_connections", "Live push (SSE) connections open.")
GATEWAY_PUSHED = Counter("livesignals_gateway_pushed_total", "Flags delivered to push connections.")
GATEWAY_FEEDBACK = Counter(
    "livesignals_gateway_feedback_total", "Agent feedback events produced to the input topic, by kind.", ["kind"]
)


# --- operations (issue 13): lag, freshness, batches, suppression ------------------
CONSUMER_LAG = Gauge(
    "livesignals_consumer_lag_messages",
    "Messages in Kafka not yet committed by this engine: high watermark minus committed offset, per owned "
    "input partition (refreshed every status_interval_s).",
    ["topic", "partition"],
)


class BatchHistogram(Collector):
    """A Prometheus histogram fed a batch of observations at a time: one lock per batch, where
    ``Histogram.observe`` takes one per message (the freshness of every committed message).

    >>> h = BatchHistogram("doctest_seconds", "Doctest.", (1, 10), registry=None)
    >>> h.observe_many([0.5, 1.0, 3.0, 99.0])
    >>> [(s.labels.get("le"), s.value) for s in next(iter(h.collect())).samples][:3]
    [('1.0', 2), ('10.0', 3), ('+Inf', 4)]
    """

    def __init__(
        self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry | None = REGISTRY
    ) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        """Count every value of ``values`` (seconds) at once."""
        counts = [0] * len(self._counts)
        total = 0.0
        for v in values:
            counts[bisect.bisect_left(self.bounds, v)] += 1
            total += v
        with self._lock:
            for i, n in enumerate(counts):
                self._counts[i] += n
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


EVENT_FRESHNESS = BatchHistogram(
    "livesignals_event_freshness_seconds",
    "From a message's Kafka timestamp to the moment its batch was committed (Redis, then the consumer group).",
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
BATCHES_COMMITTED = Counter(
    "livesignals_batches_committed_total", "Engine batches (one partition's messages) committed to Redis and Kafka."
)
BATCH_FAILURES = Counter(
    "livesignals_batch_failures_total",
    "Engine batch attempts that failed, by cause (redis, kafka, other); each is retried after a backoff "
    "(livesignals_dependency_retries_total) unless the process is shutting down.",
    ["cause"],
)
TRIGGERS_ALL_SUPPRESSED_SECONDS = Gauge(
    "livesignals_triggers_all_suppressed_seconds",
    "How long every action decided has been held back by the contact policy or consent (0 once one is sent).",
)


# input safety (issue 9: guard)
FLAGS_HELD_BACK = Counter(
    "livesignals_flags_held_back_total",
    "Flags whose rule held but were not raised: the customer already holds the most raised flags "
    "(32) and none weaker to displace.",
    ["flag"],
)
ORIGIN_HEADERS_IGNORED = Counter(
    "livesignals_origin_headers_ignored_total",
    "Records on the repartition topic whose ls.origin.* headers were not signed by the engine "
    "(missing or wrong ls.origin.sig): dead-lettered as unverified_reroute, never applied.",
)

REROUTED_AGAIN = Counter(
    "livesignals_rerouted_again_total",
    "Verified repartition records whose customer another partition owns under the current partition "
    "count (the topics grew): rerouted again to that owner, never applied where read.",
)
PARTITION_COUNT_CHANGED = Gauge(
    "livesignals_partition_count_changed",
    "1 when the input or repartition topics' partition count differs from the one the engine started "
    "with (partitions added while running are not read): the engine exits with code 5 for a restart.",
)


# where a batch's time goes (issue 16: fastpath)
ENGINE_ROUNDS = Counter(
    "livesignals_engine_rounds_total",
    "Rounds of several partitions a worker's engine received (flows.one_batch), by path: combined (one batch), "
    "split (a partition was not plain: partition by partition) or fallback (the combined batch failed: partition "
    "by partition).",
    ["path"],
)
BATCH_STAGE_SECONDS = Histogram(
    "livesignals_batch_stage_seconds",
    "Wall time of one stage of an engine batch: wait (from the Kafka timestamp of its oldest message to the "
    "batch's start: fetch, hand-over and earlier batches), check (the Redis state check before it), decode "
    "(bytes to events), apply (state, models, rules, actions), plan (sending the outputs to Kafka, no wait, and "
    "planning the Redis commit while Kafka writes them), publish (until Kafka confirmed the outputs, and the "
    "lessons' append), commit (the planned Redis commit), offsets (the consumer group's offsets and progress "
    "after it).",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# agent desktop service (issue 12: gateway, session 10)
GATEWAY_PUSH_SKIPPED = Counter(
    "livesignals_gateway_push_skipped_total",
    "Flags/updates stream entries the push reader skipped: not as the engine writes them (no customer or doc).",
)


# agent desktop service: refused callers (issue 12: gateway2, session 11)
GATEWAY_REFUSALS_UNAUDITED = Counter(
    "livesignals_gateway_refusals_unaudited_total",
    "Refusals of the agent desktop service not written to the audit trail one by one: their caller passed "
    "gateway_audit_refusals_per_min (one summarising entry per caller and minute), by the count it passed.",
    ["limit"],
)


# durability (issue 10, break-test)
REPARTITION_FOREIGN_SKIPPED = Counter(
    "livesignals_repartition_foreign_skipped_total",
    "Records on the repartition topic rerouted by another deployment (ls.origin.deployment names another "
    "key_prefix): skipped, that deployment applies them.",
)
KAFKA_OFFSET_OUT_OF_RANGE = Counter(
    "livesignals_kafka_offset_out_of_range_total",
    "Partitions whose resume offset Kafka no longer holds; the process stops with exit code 4. cause: "
    "deleted (below the log start: retention removed unapplied events) or log_reset (the broker lost its "
    "log or the topic was re-created).",
    ["cause"],
)


# restart time (issue 10: recovery, session 11)
STARTUP_SECONDS = Gauge(
    "livesignals_startup_seconds",
    "Seconds from the engine process's start to the end of each start-up step (imports, redis_checks, warm_up, "
    "kafka_metadata, engine, claimed, first_batch, first_commit: flows.startup); kill -9 recovery is this start.",
    ["step"],
)


# durability (issue 10, session 12)
CLUSTER_ROLLBACKS = Counter(
    "livesignals_cluster_master_rollbacks_total",
    "Redis Cluster masters seen rolled back (a backup restored, a failover to a lagging replica): their applied "
    "watermark for a partition was behind its committed offsets; the partition is replayed from the watermark "
    "(state.watermarks). seen_at: claim or batch (the check before each batch).",
    ["seen_at"],
)
CLAIM_EPOCH_ABOVE_CLOCK = Counter(
    "livesignals_claim_epoch_above_clock_total",
    "Redis Cluster claims whose owner epoch came from the epochs recorded on the masters, not from the host "
    "clock (the clock was behind an earlier owner's epoch: state.watermarks).",
)


# agent desktop service: the push reader seen by Prometheus (issue 12: gate3, session 12, break-test 12b B14)
GATEWAY_PUSH_READER_UP = Gauge(
    "livesignals_gateway_push_reader_up",
    "1 while this agent desktop process's push reader runs (its /healthz answers 503 at 0): set at each scrape.",
)
GATEWAY_PUSH_READ_AGE = Gauge(
    "livesignals_gateway_push_read_age_seconds",
    "Seconds since this process's push reader last completed a read of the flag streams (grows while Redis "
    "does not answer): set at each scrape.",
)


# gateway (issue 12, session 13)
GATEWAY_PUSH_OVER_RATE = Counter(
    "livesignals_gateway_push_over_rate_total",
    "Customers first delivered to a caller through a followed queue in a minute beyond "
    "gateway_queue_audited_per_min: shown, but audited together in one entry per caller and minute instead of "
    "one each (break-tests 12d D1, 12e E2).",
)


# operations (issue 10, session 13)
STATE_LOSS_NOTICED_IDLE = Counter(
    "livesignals_state_loss_noticed_idle_total",
    "Times the monitor found, between batches, that Redis lost a partition's committed state (a Redis restarted "
    "empty under an idle engine): the partition's worker then takes the STATE LOSS path a batch would "
    "(flows.state_probe), counted in livesignals_state_loss_total too.",
)


# gateway (issue 12, session 14)
GATEWAY_AUDIT_DROPPED = Counter(
    "livesignals_gateway_audit_dropped_total",
    "Audit entries of queue deliveries not written: more than 100,000 waiting for the writer (Redis slower than "
    "the deliveries), or a failed write (break-test 12f, F6: those entries are written off the delivery path).",
)


# durability (issue 10, session 15)
REPLAY_NOT_REPUBLISHED = Counter(
    "livesignals_replay_not_republished_total",
    "Input messages replayed after a STATE LOSS below the offsets committed before, whose outputs Kafka had "
    "already confirmed: state rebuilt, outputs not published again (republish_replays off).",
)
GROUP_OFFSETS_CHECKED = Counter(
    "livesignals_state_loss_group_offsets_total",
    "Topic partitions of a STATE LOSS found at a claim (Redis behind the consumer group), by whether the group's "
    "offset carried this deployment's fingerprint of the record below it and Kafka's log still holds that record "
    "(confirmed: the replay below it publishes nothing again) or not (unconfirmed: it publishes again; "
    "flows.confirmed, outside review of #10, 10h L3).",
    ["result"],
)


# erasure claims index (issue 12, session 15)
IDENTITY_CLAIMS_REFUSED = Counter(
    "livesignals_identity_claims_refused_total",
    "New identifiers not linked because their profile already claimed MAX_CLAIMS (500) identifiers in its life "
    "(operators.profile360.update): the bound on a profile's claims index and on what its erasure cascades to "
    "(break-test 12j, J2).",
)
