"""Bytewax dataflows and their Kafka/Redis connectors.

The only package that imports Bytewax. ``python -m bytewax.run "flows.live:build()"``
runs the engine.
"""
