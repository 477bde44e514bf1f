"""``livesignals erase`` and ``livesignals export``: a customer's rights of erasure and access.

``erase`` never writes customer state itself: it produces an ``erase`` event to
the input topic, keyed by the customer (Kafka's default partitioner, as every
producer must), so the engine that owns the customer's partition applies it in
order, inside its fenced commit (:mod:`operators.erasure`); with ``--wait`` it
then waits for the erasure's audit entry. ``export`` reads what Redis holds
(:func:`state.erasure.export`) and, with ``--kafka``, the customer's records on
the flags, triggers and decisions topics (every partition, from the start: slow on big topics).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from livesignals import serde
from livesignals.contract import IDENTIFIER_KINDS, primary_key
from livesignals.identifiers import canonical_identifier
from livesignals.partitioner import PRODUCER_CONFIG
from livesignals.settings import Settings
from operators.profile360.identity import ERASED_CLAIMANT
from state.connection import connect
from state.erasure import ErasureLedger, export, resolve
from state.keys import Keys
from state.retention import Retention


def customer_key(identifier: str) -> str:
    """``kind:value``; a bare id means ``customer_id``; the value spelled as the engine keys it
    (:func:`livesignals.identifiers.canonical_identifier`: stripped, NFC, e-mails lower-cased), else ``ValueError``.

    >>> customer_key("c42"), customer_key("email:a@b.c "), customer_key(" email: Cafe\u0301@B.c")
    ('customer_id:c42', 'email:a@b.c', 'email:caf\xe9@b.c')
    >>> customer_key("mail:a@b.c")
    Traceback (most recent call last):
    ...
    ValueError: unknown identifier kind 'mail' (one of customer_id, email, phone, device_id, cookie_id)
    """
    kind, _, value = identifier.partition(":") if ":" in identifier else ("customer_id", ":", identifier)
    kind = kind.strip()
    if kind not in IDENTIFIER_KINDS:
        raise ValueError(f"unknown identifier kind {kind!r} (one of {', '.join(IDENTIFIER_KINDS)})")
    try:
        return f"{kind}:{canonical_identifier(kind, value)}"
    except ValueError as exc:
        raise ValueError(f"the {kind} {exc}") from None


def held(client: Any, keys: Keys, key: str) -> bool:
    """True when Redis holds anything under ``key``: a profile, a timeline or a claim set."""
    return bool(client.exists(keys.profile(key), keys.timeline(key)) or client.exists(keys.owners(key)))


def erase_event(subject: str, also: str | None, request_id: str, now_ms: int) -> dict[str, Any]:
    """The erase event for ``subject`` (and the identifier that led to it, if another)."""
    ids = dict([subject.split(":", 1)])
    if also and also != subject:
        kind, value = also.split(":", 1)
        ids.setdefault(kind, value)
    return {
        "schema_version": 1, "event_id": f"erase-{request_id}-{uuid.uuid4().hex[:8]}", "type": "erase",
        "channel": "backoffice", "customer": ids, "event_time": now_ms, "payload": {"request_id": request_id},
    }  # fmt: skip


def request_erase(settings: Settings, identifier: str, wait_s: float = 0.0) -> dict[str, Any]:
    """Produce the erase event(s) for ``identifier``; with ``wait_s``, wait for the engine's audit entries."""
    client, keys = connect(settings), Keys(settings.key_prefix)
    key = customer_key(identifier)
    subjects, claimants = resolve(client, keys, key)
    found = bool(claimants) or held(client, keys, key)
    request_id = uuid.uuid4().hex
    now = int(time.time() * 1000)
    producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True, **PRODUCER_CONFIG})
    keyed = []
    for subject in subjects:
        doc = erase_event(subject, key, request_id, now)
        primary = primary_key(doc["customer"])
        producer.produce(settings.input_topics[0], serde.dumps(doc), primary.encode())
        keyed.append(primary)
    if producer.flush(30):
        raise RuntimeError("the erase request was not confirmed by Kafka")
    # shared by the rule the erasure decided with (erasure_owner): customers, an erased one included; an
    # anonymous claimant (an e-mail typed beside the phone) is nobody's customer (break-test 12i, I3)
    customers = [c for c in claimants if c.startswith(("customer_id:", ERASED_CLAIMANT))]
    shared = subjects == [key] and len(customers) > 1
    out: dict[str, Any] = {
        "request_id": request_id,
        "identifier": key,
        "erasing": keyed,
        "shared_with": customers if shared else [],
        "found": found,
    }
    if not found:
        out["note"] = (f"nothing is held under {key} (no profile, timeline or claim): no customer was found "
                       "to erase; the erase event was sent anyway, so events of it in flight are dropped")  # fmt: skip
    elif shared:
        out["note"] = (f"{key} is shared by {len(customers)} customers (an erased one counts): it is erased "
                       "alone, the customers stay (erase each by their customer_id)")  # fmt: skip
    if wait_s > 0:
        ledger = ErasureLedger(client, keys, Retention.from_settings(settings))
        wanted = {ledger.subject(k) for k in keyed}
        deadline = time.monotonic() + wait_s
        done: set[str] = set()
        while time.monotonic() < deadline and not wanted <= done:
            done = {r["subject"] for r in ledger.audit(request_id)}
            time.sleep(0.1)
        out["confirmed"] = wanted <= done
        if not out["confirmed"]:
            out["why"] = (
                f"no audit entry from the engine within {wait_s:g} s: is it running and reading "
                f"{settings.input_topics[0]}?"
            )
        out["keys_erased"] = len(ledger.audit(request_id))
    return out


def export_customer(settings: Settings, identifier: str, kafka: bool = False) -> dict[str, Any]:
    """Everything held about the customer (see the module docstring)."""
    client, keys = connect(settings), Keys(settings.key_prefix)
    key = customer_key(identifier)
    subjects, _ = resolve(client, keys, key)
    ledger = ErasureLedger(client, keys, Retention.from_settings(settings))
    doc: dict[str, Any] = {"identifier": key, "customers": [export(client, keys, s, ledger) for s in subjects]}
    if kafka:
        wanted = set(subjects)
        for c in doc["customers"]:
            wanted |= {i for i, linked in c["linked"].items() if not linked.get("shared")}
        doc["kafka"] = _kafka_records(settings, wanted)
    return doc


def _kafka_records(settings: Settings, wanted: set[str]) -> dict[str, list[Any]]:
    """The records keyed by one of ``wanted`` on the flags, triggers and decisions topics."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"ls-export-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})  # fmt: skip
    out: dict[str, list[Any]] = {}
    try:
        for topic in (settings.flags_topic, settings.triggers_topic, settings.decisions_topic):
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            found: list[Any] = []
            # every partition: the engine's publisher keys by customer with librdkafka's default partitioner
            for part in sorted(meta.partitions if meta is not None else ()):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(topic, part, low)])
                position, deadline = low, time.monotonic() + 30
                while position < high and time.monotonic() < deadline:
                    for m in consumer.consume(500, 1.0):
                        position = max(position, (m.offset() or 0) + 1)
                        key, value = m.key(), m.value()
                        if m.error() is None and key and key.decode(errors="replace") in wanted:
                            found.append(serde.loads(value) if value else {"tombstone": True})
            out[topic] = found
    finally:
        consumer.close()
    return out
