"""What feedback was already taken: an Idempotency-Key answered once, one verdict per agent per target,
one answer per customer per decision, and a daily quota of labels per agent and model.

Short records in Redis per accepted request (``SET NX EX``):

* ``<prefix>:feedback:{<agent+customer>}:key:<key digest>`` -- the request's body
  digest and, once Kafka confirmed the event, the answer. The same key with the
  same body gets the same answer and nothing is produced again (however many
  events the customer had in between, within ``gateway_feedback_ttl_s``: the
  engine's own duplicate horizon is short); the same key with another body is a
  409; a key whose first request is still waiting for Kafka is a 409 too (retry
  later). While it waits, the record lives only ``pending_s`` (a little more
  than the longest wait): a service killed mid-request does not hold the key,
  or the verdict, for a day.
* ``<prefix>:feedback:{<agent+customer>}:verdict:<target digest>`` -- which
  request gave this agent's verdict on a flag, a text or a decision. A second verdict
  by the same agent on the same target (thirty "not relevant" clicks on one flag)
  is a 409.
* ``<prefix>:feedback:{<customer>}:answer:<decision digest>`` -- the customer's
  accept or reject of one decision, whichever desk recorded it: the serving agent
  and a supervisor looking at the same card do not both record the customer's
  answer (third break-test C9).
* ``<prefix>:feedback:{<agent>}:quota:<model digest>:<day>`` -- how many labels this
  agent gave one shared model today (per flag name for ``flag_relevance``, see
  :func:`gateway.feedback.label_kind`); over ``gateway_feedback_per_agent_day`` a
  verdict is a 429 (third break-test C5: one agent marking every waiting customer's
  flag taught every desk's relevance alone). The quota bounds the agent's own
  opinions (relevance, sentiment, not relevant), not the customers' accept or
  reject of an offer the desk records (:data:`UNQUOTED`): those are bounded by the
  one-answer-per-customer-and-decision rule, and a desk records far more than 20
  a day (fourth break-test D2).

Keys hold digests only, keyed with the deployment's privacy secret (no customer
identifier, no agent id in clear, and nobody without the secret can recompute
which keys concern a customer). The answers kept for retries hold the event as
produced (its agent and target ids); they expire after ``gateway_feedback_ttl_s``
and an erasure does not delete them. A failed send releases the request's
records and refunds its quota, so the desk's retry goes through.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from gateway.feedback import ANSWER
from gateway.problems import Problem
from livesignals import serde

DAY_S = 86_400


def digest(*parts: str, secret: str = "") -> str:
    """A short, stable digest of ``parts`` (joined unambiguously), keyed with ``secret``.

    >>> digest("a7", "customer_id:c1") == digest("a7", "customer_id:c1") != digest("a7c", "ustomer_id:c1")
    True
    >>> digest("a7", secret="s1") != digest("a7", secret="s2")
    True
    """
    key = hashlib.blake2b(secret.encode(), digest_size=32).digest() if secret else b""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12, key=key).hexdigest()


def body_digest(body: dict[str, Any]) -> str:
    """The digest of a request body, whatever the order of its fields.

    >>> body_digest({"a": 1, "b": 2}) == body_digest({"b": 2, "a": 1}) != body_digest({"a": 2, "b": 2})
    True
    """
    return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


UNQUOTED: Final = frozenset({"answer"})
"""Label kinds (:func:`gateway.feedback.label_kind`) no daily quota applies to: a customer's accept or reject,
one per customer and decision already."""


class FeedbackLedger:
    """Idempotency and one-verdict records of the feedback route (see the module docstring)."""

    def __init__(
        self, client: Any, prefix: str, ttl_s: int, secret: str = "", pending_s: int = 60, per_agent_day: int = 0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.secret = secret
        self.pending_s = min(pending_s, ttl_s)
        self.per_agent_day = per_agent_day

    def _digest(self, *parts: str) -> str:
        return digest(*parts, secret=self.secret)

    def _keys(self, agent: str, customer: str, idempotency_key: str, target: str) -> tuple[str, str, str]:
        tag = f"{self.prefix}:feedback:{{{self._digest(agent, customer)}}}"
        key_id = self._digest(agent, idempotency_key)
        if target.startswith(ANSWER):  # the customer's answer: one whoever records it
            verdict = f"{self.prefix}:feedback:{{{self._digest(customer)}}}:answer:{self._digest(target)}"
        else:
            verdict = f"{tag}:verdict:{self._digest(target)}"
        return f"{tag}:key:{key_id}", verdict, key_id

    def _quota_key(self, agent: str, kind: str, now_s: float) -> str:
        return f"{self.prefix}:feedback:{{{self._digest(agent)}}}:quota:{self._digest(kind)}:{int(now_s // DAY_S)}"

    def spend(self, agent: str, kind: str, now_s: float) -> None:
        """Count one label of ``kind`` by ``agent`` today; a 429 problem (nothing counted) over the quota.
        A customer's answer (:data:`UNQUOTED`) is not counted."""
        if self.per_agent_day <= 0 or kind in UNQUOTED:
            return
        key = self._quota_key(agent, kind, now_s)
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 2 * DAY_S)
        count = pipe.execute()[0]
        if count > self.per_agent_day:
            self.client.decr(key)
            raise Problem(
                429, "Verdict quota reached",
                f"at most {self.per_agent_day} verdicts a day for this model (one agent cannot set it alone)",
            )  # fmt: skip

    def refund(self, agent: str, kind: str, now_s: float) -> None:
        """Give back a label counted by :meth:`spend` whose event was not sent."""
        if self.per_agent_day > 0 and kind not in UNQUOTED:
            self.client.decr(self._quota_key(agent, kind, now_s))

    def begin(
        self, agent: str, customer: str, idempotency_key: str, body: dict[str, Any], target: str
    ) -> dict[str, Any] | None:
        """``None``: this request is new and reserved (send it, then :meth:`done` or :meth:`release`);
        a dict: the answer already given to this key and body; a 409 problem otherwise."""
        key, verdict, key_id = self._keys(agent, customer, idempotency_key, target)
        mine = body_digest(body)
        for _ in range(3):  # a record that expires between SET NX and GET: try again
            if self.client.set(key, serde.dumps({"body": mine, "answer": None}), nx=True, ex=self.pending_s):
                if self.client.set(verdict, key_id, nx=True, ex=self.pending_s):
                    return None
                self.client.delete(key)
                if target.startswith(ANSWER):
                    raise Problem(409, "Answer already recorded", "the customer's answer to this offer is recorded")
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
        """Keep ``answer`` for retries of this key, and the verdict, for ``ttl_s`` (Kafka confirmed the event)."""
        key, verdict, _ = self._keys(agent, customer, idempotency_key, target)
        self.client.set(key, serde.dumps({"body": body_digest(body), "answer": answer}), ex=self.ttl_s)
        self.client.expire(verdict, self.ttl_s)

    def release(self, agent: str, customer: str, idempotency_key: str, target: str) -> None:
        """Forget a reservation whose event was not sent (the desk may retry, or give another verdict)."""
        key, verdict, key_id = self._keys(agent, customer, idempotency_key, target)
        holder = self.client.get(verdict)
        if holder is not None and (holder.decode() if isinstance(holder, bytes) else holder) == key_id:
            self.client.delete(verdict)
        self.client.delete(key)
