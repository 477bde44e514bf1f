"""The feedback route under attack (break-test of issue 12): bodies are capped and never read before the token,
a slow or unreachable Kafka stalls no read and a 503 means the event was not sent, an Idempotency-Key answers once
whatever comes between, one agent gives one verdict per target and accepts only what was offered."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from app.embedded import free_port
from gateway.app import kafka_producer
from livesignals import documents, serde
from tests.gateway.conftest import LiveServer, NullProducer, bearer, now_ms, token, world_for
from tests.helpers import consume_all, event

A1 = bearer(token("a1", queues=("billing",)))
FLAG = {"target": "flag", "target_id": "f-1", "verdict": "not_relevant"}


def _exchange(port: int, head: str, chunks: list[bytes]) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` (stopping when the server answers or closes); the answer's first line
    and how many body bytes were sent before it came."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    try:
        sock.sendall(head.encode())
        sock.setblocking(False)
        for chunk in chunks:
            try:
                answer = sock.recv(4096)
                if answer:
                    return answer.split(b"\r\n", 1)[0], sent
            except BlockingIOError:
                pass
            try:
                sock.setblocking(True)
                sock.sendall(chunk)
                sent += len(chunk)
                sock.setblocking(False)
            except OSError:
                break
        sock.setblocking(True)
        sock.settimeout(10)
        return sock.recv(4096).split(b"\r\n", 1)[0], sent
    finally:
        sock.close()


def _chunked(size: int, count: int) -> list[bytes]:
    return [f"{size:x}\r\n".encode() + b"a" * size + b"\r\n" for _ in range(count)]


def test_a_body_is_capped_while_it_streams_and_never_read_before_the_token(world):
    path = "/v1/customers/c1/feedback"
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        # no token, a body of unknown length: 401 without the service waiting for (or reading) the body
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        status, sent = _exchange(s.port, head, [*_chunked(8192, 2), *[b"" for _ in range(200)]])
        assert b" 401 " in status, status
        # a declared 300 MB: refused at once, before a byte of the body
        auth = f"Authorization: {A1['Authorization']}\r\n"
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 300000000\r\n\r\n"
        status, sent = _exchange(s.port, head, [])
        assert b" 413 " in status, status
        # a valid token and an endless chunked body: refused once past the cap, not read to its end
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n"
        status, sent = _exchange(s.port, head, _chunked(4096, 20_000))
        assert b" 413 " in status, status
        assert sent < 20_000 * 4096 // 10


@pytest.mark.kafka
def test_an_unreachable_kafka_stalls_no_read_and_a_503_means_not_sent(kafka_settings, redis_client):
    settings = kafka_settings.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}", gateway_feedback_timeout_s=8.0)
    world = world_for(settings, redis_client)  # 45 verdicts of one agent at once: the daily quota is not tested here
    world.settings = world.settings.replace(gateway_feedback_per_agent_day=0)
    world.give_targets("customer_id:c1", flags=tuple(f"f-{i}" for i in range(45)))
    producer = kafka_producer(world.settings)
    answers: list[tuple[int, int, str]] = []
    lock = threading.Lock()
    with LiveServer(world.settings, world.client, producer) as s:

        def send(i: int) -> None:
            body = {**FLAG, "target_id": f"f-{i}"}
            r = httpx.post(f"{s.url}/v1/customers/c1/feedback", json=body,
                           headers={**A1, "Idempotency-Key": f"k{i}"}, timeout=60)  # fmt: skip
            with lock:
                answers.append((i, r.status_code, r.json()["detail"]))

        senders = [threading.Thread(target=send, args=(i,)) for i in range(45)]
        for t in senders:
            t.start()
        read = httpx.get(f"{s.url}/v1/customers/c1", headers=A1, timeout=60)
        with lock:
            answered_before_the_read = len(answers)
        for t in senders:
            t.join()
        assert read.status_code == 200
        # the read did not wait for the feedback requests: they take their 8 s, long enough that a read that did
        # not wait is back first even on a busy machine (1.5 s failed under load)
        assert answered_before_the_read == 0
        assert sorted(status for _, status, _ in answers) == [503] * 45
        assert all("not delivered" in detail for _, _, detail in answers)  # Kafka's own report: given up
        producer.poll(0)
        assert len(producer) == 0  # librdkafka gave the events up: they will not be sent when Kafka is back
        # the ledger let go of the failed requests: a retry is tried again (503), not "in progress" (409)
        retry = httpx.post(f"{s.url}/v1/customers/c1/feedback", json={**FLAG, "target_id": "f-0"},
                           headers={**A1, "Idempotency-Key": "k0"}, timeout=60)  # fmt: skip
        assert retry.status_code == 503


def _post(client: TestClient, customer: str, body: dict[str, Any], key: str, headers: dict[str, str] = A1) -> Any:
    return client.post(f"/v1/customers/{customer}/feedback", json=body, headers={**headers, "Idempotency-Key": key})


@pytest.mark.kafka
def test_an_idempotency_key_answers_once_per_customer_and_body_however_late_the_retry(kworld, kclient):
    for customer in ("customer_id:c1", "customer_id:c2"):
        kworld.give_targets(customer, flags=("f-1",))
    first = _post(kclient, "c1", FLAG, "same-key")
    assert first.status_code == 202, first.text
    conflicting = _post(kclient, "c1", {**FLAG, "verdict": "relevant"}, "same-key")
    assert conflicting.status_code == 409, conflicting.text  # not 202 and silently dropped
    other_customer = _post(kclient, "c2", FLAG, "same-key")  # c2 waits in billing
    assert other_customer.status_code == 202, other_customer.text
    assert other_customer.json()["event_id"] != first.json()["event_id"]
    t = now_ms() - 10_000
    kworld.apply(*[event("web_event", "c1", t + i, event_id=f"pv{i}", action="page_view") for i in range(40)])
    late = _post(kclient, "c1", FLAG, "same-key")  # after more events than the engine's duplicate horizon
    assert late.status_code == 202 and late.json() == first.json()
    records = consume_all(kworld.settings.kafka_bootstrap, kworld.settings.input_topics[0], 3, timeout_s=8)
    assert sorted(serde.loads(m.value())["event_id"] for m in records) == sorted(
        [first.json()["event_id"], other_customer.json()["event_id"]]
    )
    ledger = [k.decode() for k in kworld.client.keys(f"{kworld.settings.key_prefix}:feedback:*")]
    digests_only = re.compile(
        rf"^{kworld.settings.key_prefix}:feedback:{{[0-9a-f]{{24}}}}:(key|verdict|quota):[0-9a-f]{{24}}"
    )
    assert ledger and all(digests_only.match(k) for k in ledger), ledger  # no customer, agent or key in clear


@pytest.mark.kafka
def test_one_verdict_per_agent_per_target_and_only_offered_actions(kworld, kclient):
    kworld.give_targets("customer_id:c1", flags=("f-1",))
    answers = [_post(kclient, "c1", FLAG, f"poison-{i}").status_code for i in range(30)]
    assert answers == [202] + [409] * 29
    supervisor = bearer(token("s1", role="supervisor", queues=("billing",)))
    assert _post(kclient, "c1", FLAG, "poison-0", supervisor).status_code == 202  # another person's verdict
    invented = _post(kclient, "c1", {"target": "action", "verdict": "accept", "action": "free_iphone"}, "k2")
    assert invented.status_code == 422, invented.text
    # second break-test B13: verdicts on made-up flags, texts or decisions would each put an event in the
    # customer's bounded timeline (200 of them pushed every real entry out): refused, nothing produced
    for i, target in enumerate(("flag", "sentiment", "action")):
        verdict = {"flag": "relevant", "sentiment": "positive", "action": "not_relevant"}[target]
        made_up = _post(kclient, "c1", {"target": target, "target_id": f"made-up-{i}", "verdict": verdict}, f"m{i}")
        assert made_up.status_code == 422, made_up.text
    padded = _post(kclient, "c1", {**FLAG, "target_id": " f-1 "}, "padded")  # B8: another spelling of f-1
    assert padded.status_code == 422, padded.text
    records = consume_all(kworld.settings.kafka_bootstrap, kworld.settings.input_topics[0], 3, timeout_s=8)
    assert sorted(serde.loads(m.value())["payload"]["agent_id"] for m in records) == ["a1", "s1"]


@pytest.mark.kafka
def test_one_agent_gives_a_bounded_share_of_one_models_labels_a_day(kworld, kclient):
    """Third break-test C5: 30 customers waiting in the agent's queue, one not-relevant verdict on each one's
    `frustrated` flag, taught every desk's relevance for that flag alone. Quota: 20 a day per flag name."""
    t = now_ms() - 10_000
    customers = [f"w{i}" for i in range(24)]
    kworld.apply(*[event("chat", c, t, event_id=f"q-{c}", queue="billing", text="hello") for c in customers])
    for c in customers:
        kworld.give_targets(f"customer_id:{c}", flags=(f"f-{c}",))
    answers = [
        _post(kclient, c, {"target": "flag", "target_id": f"f-{c}", "verdict": "not_relevant"}, f"q-{c}").status_code
        for c in customers
    ]
    quota = kworld.settings.gateway_feedback_per_agent_day
    assert answers == [202] * quota + [429] * (len(customers) - quota), answers
    trail = [{k.decode(): v.decode() for k, v in f.items()}
             for _, f in kworld.client.xrange(f"{kworld.settings.key_prefix}:audit")]  # fmt: skip
    over = [e for e in trail if e["action"] == "feedback" and e["reason"].startswith("rate limited")]
    assert len(over) == len(customers) - quota and all(e["who"] == "a1" and e["allowed"] == "0" for e in over)
    assert _post(kclient, customers[0], {"target": "flag", "target_id": f"f-{customers[0]}",
                                         "verdict": "not_relevant"}, f"q-{customers[0]}").status_code == 202  # fmt: skip
    other = bearer(token("a2", queues=("billing",)))  # another agent's own quota
    last = customers[-1]
    body = {"target": "flag", "target_id": f"f-{last}", "verdict": "not_relevant"}
    assert _post(kclient, last, body, "other-agent", other).status_code == 202
    records = consume_all(kworld.settings.kafka_bootstrap, kworld.settings.input_topics[0], quota + 2, timeout_s=8)
    assert len(records) == quota + 1  # a 429 produced nothing; the retry was answered from the ledger


def test_the_ledger_keys_are_keyed_and_a_pending_request_holds_nothing_for_a_day(redis_client):
    """Third break-test C12/C13: ledger digests could be recomputed by anyone who guesses an agent and a
    customer id; a request killed while waiting for Kafka held its key and the verdict for 24 h."""
    from gateway.feedback_ledger import FeedbackLedger, digest

    ledger = FeedbackLedger(redis_client, "lsfb", ttl_s=86_400, secret="s" * 32, pending_s=60)
    body = {"target": "flag", "target_id": "f-1", "verdict": "relevant"}
    assert ledger.begin("a7", "customer_id:y1", "k1", body, "flag:f-1") is None  # then the process dies
    names = [k.decode() for k in redis_client.keys("lsfb:feedback:*")]
    assert len(names) == 2 and not any(digest("a7", "customer_id:y1") in k for k in names)
    assert all(0 < redis_client.ttl(k) <= 60 for k in names)
    ledger.done("a7", "customer_id:y1", "k1", body, "flag:f-1", {"event_id": "fb-1"})
    assert all(redis_client.ttl(k) > 60 for k in names)


@pytest.mark.kafka
def test_not_relevant_on_an_action_names_the_offer_that_was_sent(kworld, kclient):
    """Third break-test C14: the card's Not-relevant beside any ranked action was applied to the sent offer,
    or dropped as unmatched when the decision was not sent, with 202 either way."""
    kworld.apply(event("chat", "c1", now_ms() - 5_000, event_id="nr-0", queue="billing", text="hello"))
    doc = serde.loads(documents.decode(kworld.client.get(kworld.keys.profile("customer_id:c1"))))
    doc.setdefault("predictions", {})["offers_pending"] = [{"id": "d-sent", "action": "callback", "t": 0, "exp": 0}]
    doc["predictions"]["next_best_actions"] = {
        "decision_id": "d-unsent",
        "chosen": "discount",
        "sent": False,
        "ranked": [],
    }
    kworld.client.set(kworld.keys.profile("customer_id:c1"), serde.dumps(doc))
    body = {"target": "action", "target_id": "d-unsent", "verdict": "not_relevant", "action": "discount"}
    assert _post(kclient, "c1", body, "nr-1").status_code == 422  # not sent: nothing could learn from it
    other = {"target": "action", "target_id": "d-sent", "verdict": "not_relevant", "action": "discount"}
    assert _post(kclient, "c1", other, "nr-2").status_code == 422  # another action than the one sent
    sent = {"target": "action", "target_id": "d-sent", "verdict": "not_relevant", "action": "callback"}
    assert _post(kclient, "c1", sent, "nr-3").status_code == 202


def test_the_daily_quota_bounds_an_agents_opinions_not_the_customers_answers_it_records(redis_client):
    """Fourth break-test D2: accept/reject (the customer's answer, one per customer and decision already)
    shared the 20-a-day quota, so a desk could record no customer's answer after its 20th."""
    from gateway.feedback_ledger import FeedbackLedger
    from gateway.problems import Problem

    ledger = FeedbackLedger(redis_client, "lsq", ttl_s=86_400, secret="s" * 32, per_agent_day=20)
    now_s = time.time()
    for _ in range(60):  # sixty customers' answers in a day: all recorded
        ledger.spend("a8", "answer", now_s)
    for _ in range(20):
        ledger.spend("a8", "flag:frustrated", now_s)
    with pytest.raises(Problem) as refused:  # the agent's own verdicts: still 20 a day per model
        ledger.spend("a8", "flag:frustrated", now_s)
    assert refused.value.status == 429
