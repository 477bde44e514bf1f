"""Redis Cluster, live: the master holding some partitions' ``{part:<p>}`` keys restarts empty while two Bytewax
processes share the four partitions (outside review of #10: that partition's KPIs undercounted after the rebuild,
contacts 65 against 82). The engines notice, rebuild every partition (:mod:`state.rebuild`), and end with the
state of an uninterrupted run: profiles, timelines, KPIs and voice of the customer.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from app import embedded
from app.engine_process import engine_argv, engine_env, start_engine, stop_process
from state.connection import connect
from state.keys import Keys
from tests.helpers import committed, produce
from tests.integration.cluster import three_nodes
from tests.integration.test_cluster_outage import events
from tests.integration.test_ownership import state_of, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 4000


def test_a_lost_partition_master_under_two_processes_is_rebuilt_to_an_uninterrupted_runs_state(
    kafka_settings, tmp_path: Path
):
    with three_nodes() as nodes:
        s = kafka_settings.replace(
            redis_url=f"redis://{nodes[0].address}/0", redis_cluster=True, models_enabled=False, quiet_hours="0-0"
        )
        faulty = s.replace(key_prefix=s.key_prefix + "f", batch_size=100, consumer_group=s.consumer_group + "f")
        produce(s.kafka_bootstrap, s.input_topics[0], events(7, N))
        addresses = ";".join(f"127.0.0.1:{embedded.free_port()}" for _ in range(2))
        logs = [open(tmp_path / f"engine{i}.log", "wb") for i in range(2)]  # noqa: SIM115 - the engines write them
        procs = [
            subprocess.Popen(engine_argv("-i", str(i), "-a", addresses), env=engine_env(faulty.replace(metrics_port=0)),
                             stdout=logs[i], stderr=subprocess.STDOUT, start_new_session=True)
            for i in range(2)
        ]  # fmt: skip
        try:
            while committed(faulty) < N // 3:  # partial changes in every partition
                assert all(p.poll() is None for p in procs)
                time.sleep(0.02)
            client, keys = connect(faulty), Keys(faulty.key_prefix)
            metas = [client.get_node_from_key(keys.partition_meta(p)).name for p in range(4)]
            victim = max(set(metas), key=metas.count)
            host, port = victim.rsplit(":", 1)
            redis.Redis(host=host, port=int(port)).flushall()  # restarted empty (no persistence)
            produce(s.kafka_bootstrap, s.input_topics[0], events(8, N))  # every partition reads on
            wait_for(faulty, 2 * N, procs, timeout_s=300)
            assert all(p.poll() is None for p in procs)
        finally:
            for p in procs:
                stop_process(p)
            for f in logs:
                f.close()
        text = b"".join((tmp_path / f"engine{i}.log").read_bytes() for i in range(2))
        assert b"rebuilding the partition as a whole" in text
        assert b"could not be applied" not in text

        reference = s.replace(key_prefix=s.key_prefix + "r", consumer_group=s.consumer_group + "r")
        engine = start_engine(reference)
        try:
            wait_for(reference, 2 * N, [engine], timeout_s=300)
        finally:
            stop_process(engine)
        pr, tr, ar = state_of(reference)
        pf, tf, af = state_of(faulty)
        assert len(pr) > 300 and len(ar) == 4
        assert af == ar, "KPIs and voice of the customer of every partition equal an uninterrupted run's"
        assert pf == pr, f"{len(set(pf.items()) ^ set(pr.items()))} profiles differ"
        assert tf == tr
