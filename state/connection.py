"""Open a Redis (or Redis Cluster) client from the settings, and ride out outages.

:class:`Backoff` retries an operation for as long as its dependency is
unreachable: capped exponential waits, ``livesignals_dependency_up`` at 0 and
``livesignals_ready`` at 0 meanwhile, one log line per failure streak (then
every ``max_s``) rather than a traceback per attempt. Fencing and state loss
are not outages: they are raised at once.

Recovery does not wait out the cap: during a wait the dependency is *probed*
every ``probe_every_s`` (a Redis ``PING``, a Kafka metadata request: cheap,
unlike the batch) and the operation is retried as soon as it answers. So the
cap bounds the load a long outage puts on the dependency, not how long the
engine stays idle once it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from livesignals import metrics
from livesignals.settings import Settings
from state.ownership import Fenced, StateLost

log = logging.getLogger(__name__)
T = TypeVar("T")

PROBE_EVERY_S = 0.25
"""How often an unreachable dependency is probed during a backoff wait."""


def probed(probe: Callable[[], object]) -> bool:
    """True if ``probe()`` returns without raising (whatever it returns: the dependency answered)."""
    try:
        probe()
    except Exception:  # still down: any error of the client's
        return False
    return True


def connect(settings: Settings) -> Any:
    """A client for ``settings.redis_url``; a cluster client when ``redis_cluster``.

    The client returns bytes; the store decodes what it reads. A cluster client reads the slot map as
    it is built: a node that does not answer then is waited out with :class:`Backoff` (not-ready
    meanwhile), as a single Redis is at its first command, instead of failing the start-up.
    """
    if settings.redis_cluster:
        node = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)  # probed while waiting
        wait = Backoff("redis", settings.retry_backoff_s, settings.retry_backoff_max_s, probe=node.ping)
        return wait.run(lambda: RedisCluster.from_url(settings.redis_url))
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30)


class Backoff:
    """Retries ``fn`` while it fails with one of ``errors``, waiting ``initial_s``, then twice as long, up to
    ``max_s``; forever unless ``max_attempts``.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionError("down")
    ...     return "up"
    >>> Backoff("test", initial_s=0.001, max_s=0.002, errors=(ConnectionError,)).run(flaky)
    'up'
    >>> len(calls)
    3
    """

    def __init__(
        self,
        dependency: str,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        errors: tuple[type[BaseException], ...] = (redis.RedisError, RedisClusterException),
        max_attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        probe: Callable[[], object] | None = None,
        probe_every_s: float = PROBE_EVERY_S,
    ) -> None:
        self.dependency = dependency
        self.initial_s = initial_s
        self.max_s = max_s
        self.errors = errors
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.probe = probe
        self.probe_every_s = probe_every_s

    @classmethod
    def for_redis(cls, settings: Settings, client: Any = None) -> Backoff:
        """Redis retries with the settings' waits (probing ``client`` with ``PING`` while waiting)."""
        probe = client.ping if client is not None else None
        return cls("redis", settings.retry_backoff_s, settings.retry_backoff_max_s, probe=probe)

    def wait(self, delay: float, probing: bool = True) -> bool:
        """Wait up to ``delay`` seconds, less if the probe says the dependency answers again (then True)."""
        if self.probe is None or not probing or delay <= self.probe_every_s:
            self.sleep(delay)
            return False
        waited = 0.0
        while waited < delay:
            step = min(self.probe_every_s, delay - waited)
            self.sleep(step)
            waited += step
            if probed(self.probe):
                return True
        return False

    def run(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried until it succeeds (or ``max_attempts`` failed: then its error is raised)."""
        delay, failures, logged = self.initial_s, 0, 0.0
        probing = True  # off once the probe answered but the operation failed again (a node refusing writes)
        while True:
            try:
                result = fn()
            except (Fenced, StateLost):
                raise
            except redis.WatchError:
                continue  # a partition's meta changed under the commit: the next attempt checks it again
            except self.errors as exc:
                failures += 1
                metrics.DEPENDENCY_UP.labels(self.dependency).set(0)
                metrics.DEPENDENCY_RETRIES.labels(self.dependency).inc()
                metrics.READY.set(0)
                if self.max_attempts is not None and failures >= self.max_attempts:
                    raise
                now = time.monotonic()
                if failures == 1 or now - logged >= self.max_s:
                    log.warning("%s unavailable (%s: %s); retrying every <= %.0fs, partitions kept",
                                self.dependency, type(exc).__name__, exc, self.max_s)  # fmt: skip
                    logged = now
                probing = not self.wait(delay, probing) and probing
                delay = min(delay * 2, self.max_s)
                continue
            if failures:
                log.warning("%s back after %d failed attempts", self.dependency, failures)
            metrics.DEPENDENCY_UP.labels(self.dependency).set(1)
            return result

    def __call__(self, fn: Callable[[], None]) -> None:
        """So that a :class:`Backoff` is a :data:`state.store.Retry`."""
        self.run(fn)
