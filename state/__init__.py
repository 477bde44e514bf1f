"""Redis state: key design, the batched profile store, and connections.

Nothing here imports Bytewax. Every key of one customer shares one hash slot
(``{...}`` hash tag), so the same code works on one Redis and on Redis Cluster.
"""
