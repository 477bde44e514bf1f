"""Fixtures of the integration tests (real Kafka and Redis; the session's servers are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cluster import three_nodes


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """A three-node Redis Cluster for the module that asks for it (its own, stopped after the module)."""
    with three_nodes() as nodes:
        yield f"redis://127.0.0.1:{nodes[0].port}/0"
