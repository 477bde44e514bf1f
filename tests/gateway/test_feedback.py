"""Feedback from the desktop through real Kafka: each verdict becomes a contract event on the input topic,
keyed by the customer's owner partition, idempotent on retry, and the engine applies it."""

from __future__ import annotations

import pytest

from livesignals import documents, serde
from livesignals.contract import decode, primary_key
from livesignals.errors import Origin
from livesignals.partitioner import owner_partition
from tests.gateway.conftest import bearer, now_ms, token
from tests.helpers import consume_all, event

pytestmark = pytest.mark.kafka

A1 = bearer(token("a1", queues=("billing",)))


def post(client, body, key):
    return client.post(
        "/v1/customers/email:ann@example.com/feedback", json=body, headers={**A1, "Idempotency-Key": key}
    )


def offered(world):
    """Give c1 a decision (three contacts: repeat_contact) and return the actions it ranked."""
    t = now_ms() - 20_000
    world.apply(*[event("chat", "c1", t + i, event_id=f"rc{i}", agent_id="a1", queue="billing", text="still broken")
                  for i in range(3)])  # fmt: skip
    nba = serde.loads(documents.decode(world.client.get(world.keys.profile("customer_id:c1"))))["predictions"][
        "next_best_actions"
    ]
    return [row[0] for row in nba["ranked"]], nba["decision_id"]


def test_verdicts_become_contract_events_on_the_input_topic_once_per_idempotency_key(kworld, kclient):
    actions, decision_id = offered(kworld)
    kworld.give_targets("customer_id:c1", flags=("f-1",), texts=("e-1", "e-2"), decisions=("d-1",))
    requests = [
        ({"target": "action", "action": actions[0], "verdict": "accept"}, "k-accept"),
        ({"target": "sentiment", "target_id": "e-2", "verdict": "positive"}, "k-sent-2"),
        ({"target": "action", "target_id": "d-1", "verdict": "not_relevant"}, "k-nr"),
        ({"target": "flag", "target_id": "f-1", "verdict": "relevant"}, "k-flag"),
        ({"target": "sentiment", "target_id": "e-1", "verdict": "negative"}, "k-sent"),
    ]
    ids = []
    for body, key in requests:
        r = post(kclient, body, key)
        assert r.status_code == 202, r.text
        ids.append(r.json()["event_id"])
    retry = post(kclient, *requests[3])
    assert retry.status_code == 202 and retry.json()["event_id"] == ids[3]  # same key, same answer
    # one verdict per agent per decision: rejecting what a1 accepted is refused, nothing produced
    second = post(kclient, {"target": "action", "action": actions[0], "verdict": "reject"}, "k-reject")
    assert second.status_code == 409, second.text
    # third break-test C9: the customer answered once; a supervisor looking at the same card does not record
    # the answer again (acceptance counts and offer labels multiplied with the people watching)
    supervisor = bearer(token("s1", role="supervisor", queues=("billing",)))
    again = kclient.post(
        "/v1/customers/c1/feedback", json=requests[0][0], headers={**supervisor, "Idempotency-Key": "s"}
    )
    assert again.status_code == 409 and again.json()["title"] == "Answer already recorded", again.text
    assert len(set(ids)) == 5
    topic = kworld.settings.input_topics[0]
    records = consume_all(kworld.settings.kafka_bootstrap, topic, 6, timeout_s=8)
    assert len(records) == 5  # the retry was answered from the ledger, not produced again
    docs = [serde.loads(m.value()) for m in records]
    by_id = {d["event_id"]: d for d in docs}
    assert set(by_id) == set(ids)
    for m in records:
        doc = serde.loads(m.value())
        event = decode(m.value(), Origin(topic, m.partition(), m.offset()), now_ms=now_ms())
        assert event.customer_key == "customer_id:c1"  # the email was resolved to its customer
        assert m.key() == primary_key(doc["customer"]).encode()
        assert m.partition() == owner_partition("customer_id:c1", 4)
        assert doc["payload"]["agent_id"] == "a1" and doc["channel"] == "backoffice"
    assert by_id[ids[0]]["type"] == "offer_response" and by_id[ids[0]]["payload"]["response"] == "accepted"
    assert by_id[ids[0]]["payload"].get("decision_id") in (None, decision_id)
    assert by_id[ids[2]]["payload"] == {"target_id": "d-1", "kind": "action", "label": "not_relevant", "agent_id": "a1"}
    assert by_id[ids[4]]["payload"]["label"] == "negative"
    # the engine applies each once
    before = documents.decode(kworld.client.get(kworld.keys.profile("customer_id:c1")))
    kworld.engine.process([_raw(m) for m in records])
    after = serde.loads(documents.decode(kworld.client.get(kworld.keys.profile("customer_id:c1"))))
    assert after["events"] - serde.loads(before)["events"] == 5
    assert after["history"]["by_type"]["agent_feedback"] == 4


def _raw(m):
    from livesignals.contract import RawMessage

    return RawMessage(m.value(), m.key(), Origin(m.topic(), m.partition(), m.offset(), now_ms()))


def test_bad_feedback_is_a_problem_and_nothing_is_produced(kclient):
    for body, key in [
        ({"target": "flag", "target_id": "f-1", "verdict": "accept"}, "k1"),
        ({"target": "nonsense", "verdict": "relevant"}, "k2"),
        ({"target": "action", "verdict": "accept"}, "k3"),
        ({"target": "flag", "target_id": "f\u200b1", "verdict": "relevant"}, "k4"),
        ({"target": "flag", "target_id": "f-1", "verdict": "relevant"}, ""),
        ({"target": ["flag"], "target_id": "f-1", "verdict": "relevant"}, "k5"),  # third break-test C7: was 500
        ({"target": "flag", "target_id": "f-1", "verdict": ["relevant"]}, "k6"),
        ({"target": {"a": 1}, "target_id": "f-1", "verdict": {"b": 2}}, "k7"),
    ]:
        r = post(kclient, body, key)
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
