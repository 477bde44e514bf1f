"""The hub's fan-out without a server: a slow connection is cut, never the hub; delivery looks up the
flag's customer only (no scan of other connections)."""

from __future__ import annotations

import asyncio

from gateway import push


def test_a_full_outbox_closes_the_connection_and_leaves_a_close_marker():
    async def run():
        sub = push.Subscription(customers={"customer_id:c1": "customer_id:c1"})
        for i in range(push.QUEUE_SIZE + 5):
            sub.offer(("flags", f"{i}-0", "customer_id:c1", b"{}", "flag"))
        assert sub.overflowed
        items = [sub.outbox.get_nowait() for _ in range(sub.outbox.qsize())]
        # the entries that did not fit are dropped, never one queued before them (findings-12 #23): the client
        # gets 0..QUEUE_SIZE-1 in order, then the close marker, and resumes after QUEUE_SIZE-1
        assert items[-1] is None and len(items) == push.QUEUE_SIZE + 1
        assert [item[1] for item in items[:-1] if item] == [f"{i}-0" for i in range(push.QUEUE_SIZE)]

    asyncio.run(run())


def test_fan_out_offers_only_to_followers_of_the_flags_customer():
    async def run():
        subs = {c: push.Subscription(customers={f"customer_id:{c}": f"customer_id:{c}"}) for c in ("a", "b")}
        queue_sub = push.Subscription(queues=frozenset({"q1"}), accept_queue_flag=lambda key, contacts: True)
        sent = push.fan_out(
            ("flags", "1-0", "customer_id:a", b"{}", "flag"),
            [subs["a"]],
            {"q1": {queue_sub}},
            [{"queue": "q1", "agent_id": None}],  # the open contacts the entry carries
        )
        assert sent == 2
        assert subs["a"].outbox.qsize() == 1 and subs["b"].outbox.qsize() == 0 and queue_sub.outbox.qsize() == 1

    asyncio.run(run())


def test_token_secrets_must_be_long_enough_to_sign_with():
    import pytest

    from gateway.auth import check_secrets

    with pytest.raises(ValueError, match="at least 32 bytes"):
        check_secrets(["short"])
    with pytest.raises(ValueError, match="empty"):
        check_secrets([])
