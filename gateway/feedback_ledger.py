"""What feedback was already taken: an Idempotency-Key answered once, one verdict per agent per target.

Two short records in Redis per accepted request, both expiring after
``gateway_feedback_ttl_s`` (``SET NX EX``), both under one hash tag (the agent and
customer) so they share a Cluster slot:

* ``<prefix>:feedback:{<agent+customer>}:key:<key digest>`` -- the request's body
  digest and, once Kafka confirmed the event, the answer. The same key with the
  same body gets the same answer and nothing is produced again (however many
  events the customer had in between: the engine's own duplicate horizon is
  short); the same key with another body is a 409; a key whose first request is
  still waiting for Kafka is a 409 too (retry later).
* ``<prefix>:feedback:{<agent+customer>}:verdict:<target digest>`` -- which
  key gave this agent's verdict on a flag, a text or a decision. A second verdict
  by the same agent on the same target (thirty "not relevant" clicks on one flag,
  accept and then reject of one decision) is a 409: one agent cannot drive a
  shared model alone.

Keys hold digests only (no customer identifier, no agent id in clear). A failed
send releases both records, so the desk's retry goes through.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.problems import Problem
from livesignals import serde


def digest(*parts: str) -> str:
    """A short, stable digest of ``parts`` (joined unambiguously).

    >>> digest("a7", "customer_id:c1") == digest("a7", "customer_id:c1") != digest("a7c", "ustomer_id:c1")
    True
    """
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


def body_digest(body: dict[str, Any]) -> str:
    """The digest of a request body, whatever the order of its fields.

    >>> body_digest({"a": 1, "b": 2}) == body_digest({"b": 2, "a": 1}) != body_digest({"a": 2, "b": 2})
    True
    """
    return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


class FeedbackLedger:
    """Idempotency and one-verdict records of the feedback route (see the module docstring)."""

    def __init__(self, client: Any, prefix: str, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _keys(self, agent: str, customer: str, idempotency_key: str, target: str) -> tuple[str, str, str]:
        tag = f"{self.prefix}:feedback:{{{digest(agent, customer)}}}"
        key_id = digest(idempotency_key)
        return f"{tag}:key:{key_id}", f"{tag}:verdict:{digest(target)}", key_id

    def begin(
        self, agent: str, customer: str, idempotency_key: str, body: dict[str, Any], target: str
    ) -> dict[str, Any] | None:
        """``None``: this request is new and reserved (send it, then :meth:`done` or :meth:`release`);
        a dict: the answer already given to this key and body; a 409 problem otherwise."""
        key, verdict, key_id = self._keys(agent, customer, idempotency_key, target)
        mine = body_digest(body)
        for _ in range(3):  # a record that expires between SET NX and GET: try again
            if self.client.set(key, serde.dumps({"body": mine, "answer": None}), nx=True, ex=self.ttl_s):
                if self.client.set(verdict, key_id, nx=True, ex=self.ttl_s):
                    return None
                self.client.delete(key)
                raise Problem(409, "Verdict already given", "you already gave a verdict on this; it stands")
            row = self.client.get(key)
            if row is None:
                continue
            record = serde.loads(row)
            if record["body"] != mine:
                raise Problem(409, "Idempotency-Key reused", "this Idempotency-Key was used for another request")
            if record["answer"] is None:
                raise Problem(409, "Request in progress", "the first request with this Idempotency-Key is pending")
            answer: dict[str, Any] = record["answer"]
            return answer
        raise Problem(409, "Request in progress", "the first request with this Idempotency-Key is pending")

    def done(
        self, agent: str, customer: str, idempotency_key: str, body: dict[str, Any], target: str, answer: dict[str, Any]
    ) -> None:
        """Keep ``answer`` for retries of this key (Kafka confirmed the event)."""
        key, _, _ = self._keys(agent, customer, idempotency_key, target)
        self.client.set(key, serde.dumps({"body": body_digest(body), "answer": answer}), ex=self.ttl_s)

    def release(self, agent: str, customer: str, idempotency_key: str, target: str) -> None:
        """Forget a reservation whose event was not sent (the desk may retry, or give another verdict)."""
        key, verdict, key_id = self._keys(agent, customer, idempotency_key, target)
        holder = self.client.get(verdict)
        if holder is not None and holder.decode() == key_id:
            self.client.delete(verdict)
        self.client.delete(key)
