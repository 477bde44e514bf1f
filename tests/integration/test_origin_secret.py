"""With ``repartition_secret`` left empty, the engines of one deployment sign origin headers with a
random secret kept in Redis -- never a key derived from settings that may hold no password."""

from __future__ import annotations

import pytest

from flows.engine_sink import default_engine
from operators.routing import origin_key
from tests.fuzzing import ListPublisher


def test_an_empty_secret_becomes_one_random_secret_per_deployment(settings):
    first = default_engine(settings, publisher=ListPublisher())
    second = default_engine(settings, publisher=ListPublisher())
    secret = first.settings.repartition_secret
    assert len(secret) == 64 and secret == second.settings.repartition_secret
    # what a forger who knows every setting would compute is not the key the engines use
    assert origin_key(settings) != origin_key(first.settings)
    other = default_engine(settings.replace(key_prefix=settings.key_prefix + "x"), publisher=ListPublisher())
    assert other.settings.repartition_secret != secret  # another deployment, another secret


def test_a_configured_secret_is_kept(settings):
    engine = default_engine(settings.replace(repartition_secret="s3cret-from-vault"), publisher=ListPublisher())
    assert engine.settings.repartition_secret == "s3cret-from-vault"


def test_a_state_loss_writes_back_the_secret_the_engine_signs_with(settings):
    """Outside review of #10, G4: Redis emptied under a running engine; a restart must read the secret the engine
    kept signing its replay's reroutes with, not create a new one (that dead-lettered the rebuild's backlog)."""
    from flows.engine_sink import _EnginePartition
    from state.connection import connect
    from state.keys import Keys
    from state.ownership import StateLost

    engine = default_engine(settings, publisher=ListPublisher())
    signing = engine.settings.repartition_secret
    client = connect(settings)
    client.delete(Keys(settings.key_prefix).secret("origin"))  # Redis restarted empty
    sink = _EnginePartition(engine, settings, None, None)
    with pytest.raises(StateLost):  # no ownership here: the loss goes up after the write-back
        sink._lost(0, StateLost(0, "the partition meta is missing"))
    restarted = default_engine(settings, publisher=ListPublisher())
    assert restarted.settings.repartition_secret == signing
