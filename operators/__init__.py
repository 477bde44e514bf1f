"""Pure engine logic, in rooms by idea, with the batch engine at the top.

* :mod:`operators.engine` -- the batch engine: decode, fold events into
  state, flags, decisions, outputs; :mod:`operators.report` what a batch did;
  :mod:`operators.partition` the per-partition aggregates; :mod:`operators.ports`
  what the engine publishes and needs from the state layer; :mod:`operators.routing`
  routing by customer; :mod:`operators.staging` what one event stages until it succeeds.
* :mod:`operators.profile360` -- the customer 360 update.
* :mod:`operators.rules` -- the rules language, flags and triggers.
* :mod:`operators.decisions` -- next-best action, contact policy, responses.
* :mod:`operators.scoring` -- model features and per-event scoring.

Nothing here imports Bytewax, ``state`` or ``flows``; I/O (Redis, Kafka) is
injected, so every piece can be tested alone and the stream processor could
be swapped.
"""
