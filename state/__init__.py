"""Redis state: key design, the batched profile store, readers, and connections.

:mod:`state.keys` (every key, its type, bound and TTL), :mod:`state.store` (the
batched profile store the engine commits through), :mod:`state.reader` (the
360, KPIs, voice of the customer and model status, for the CLI and the agent
service), :mod:`state.memory` (an in-memory store for tests and offline
evaluation), :mod:`state.connection` (a Redis or Redis Cluster client from
settings, and riding out outages), :mod:`state.ownership` (partition claims,
owner epochs and the checks that fence commits) and :mod:`state.cluster_commit`
(the ordered Redis Cluster commit), :mod:`state.rebuild` (rebuilding a Cluster partition as a
whole after its master lost its data) and :mod:`state.deployments` (deployments of other key prefixes
on the same topics). Layer: above ``operators`` (whose types it stores), below ``flows``.

Nothing here imports Bytewax. Every key of one customer shares one hash slot
(``{...}`` hash tag), so the same code works on one Redis and on Redis Cluster.
"""
