"""Pure engine logic: decode, profile updates, rules and the batch engine.

Nothing here imports Bytewax; I/O (Redis, Kafka) is injected, so every piece
can be tested alone and the stream processor could be swapped.
"""
