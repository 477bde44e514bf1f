"""The rules language and flags: one TOML file declares every flag and action.

Owns the safe expression language (:mod:`.expressions`), reason and evidence
templates (:mod:`.templates`), the context a rule reads (:mod:`.context`), the
rulebook that loads, checks and reloads the file (:mod:`.rulebook`) and the
flag and trigger records it produces (:mod:`.signals`).
"""
