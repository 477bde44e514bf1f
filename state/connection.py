"""Open a Redis (or Redis Cluster) client from the settings."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from livesignals.settings import Settings


def connect(settings: Settings) -> Any:
    """A client for ``settings.redis_url``; a cluster client when ``redis_cluster``.

    The client returns bytes; the store decodes what it reads.
    """
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url)
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30)
