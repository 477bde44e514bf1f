"""Redis Cluster, live: a master restarted from an older RDB snapshot while an engine runs on Kafka (outside review
of #10, F4: only the partition whose meta lived there noticed; the others lost 376 of 3,000 events, engine ready).
Every partition notices now — the one whose meta rolled back by its offsets behind the consumer group, the others
by the master's applied watermark (:mod:`state.watermarks`) — and the state equals an uninterrupted run's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from app.engine_process import start_engine, stop_process
from state.connection import connect
from state.keys import Keys
from tests.helpers import produce
from tests.integration.cluster import three_nodes
from tests.integration.test_cluster_outage import events, start_again
from tests.integration.test_cluster_rollback import wait_until_ok
from tests.integration.test_ownership import state_of, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 3000


def test_a_master_rolled_back_under_a_running_engine_is_seen_by_every_partition(kafka_settings, tmp_path: Path):
    with three_nodes() as nodes:
        s = kafka_settings.replace(
            redis_url=f"redis://{nodes[0].address}/0", redis_cluster=True, models_enabled=False, quiet_hours="0-0"
        )
        faulty = s.replace(key_prefix=s.key_prefix + "f", batch_size=100, consumer_group=s.consumer_group + "f")
        produce(s.kafka_bootstrap, s.input_topics[0], events(7, N))
        log = open(tmp_path / "engine.log", "wb")  # noqa: SIM115 - the engine writes it
        engine = start_engine(faulty.replace(log_level="INFO"), log=log)
        try:
            wait_for(faulty, N, [engine], timeout_s=300)
            client, keys = connect(faulty), Keys(faulty.key_prefix)
            metas = [client.get_node_from_key(keys.partition_meta(p)).name for p in range(4)]
            victim = next(n for n in nodes if n.address == min(set(metas), key=metas.count))
            node = redis.Redis(host="127.0.0.1", port=victim.port)
            node.save()  # the snapshot it will roll back to
            produce(s.kafka_bootstrap, s.input_topics[0], events(8, N))
            wait_for(faulty, 2 * N, [engine], timeout_s=300)
            node.shutdown(nosave=True)
            start_again(victim)  # from its older RDB file, under the running engine
            wait_until_ok(nodes)
            produce(s.kafka_bootstrap, s.input_topics[0], events(9, N))  # every partition reads on
            wait_for(faulty, 3 * N, [engine], timeout_s=300)
            deadline = time.monotonic() + 120
            while b"rolled back" not in (tmp_path / "engine.log").read_bytes() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert engine.poll() is None
        finally:
            stop_process(engine)
            log.close()
        text = (tmp_path / "engine.log").read_bytes()
        assert b"rolled back" in text, "the partitions whose meta lives elsewhere saw the master roll back"
        assert b"could not be applied" not in text

        reference = s.replace(key_prefix=s.key_prefix + "r", consumer_group=s.consumer_group + "r")
        engine = start_engine(reference)
        try:
            wait_for(reference, 3 * N, [engine], timeout_s=300)
        finally:
            stop_process(engine)
        pr, tr, ar = state_of(reference)
        pf, tf, af = state_of(faulty)
        assert len(pr) > 150 and len(ar) == 4
        assert af == ar, "KPIs and voice of the customer of every partition equal an uninterrupted run's"
        assert pf == pr, f"{len(set(pf.items()) ^ set(pr.items()))} profiles differ"
        assert tf == tr
