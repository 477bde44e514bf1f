"""The rules language and flags: one TOML file declares every flag and action.

Owns the safe expression language (:mod:`.expressions`), reason and evidence
templates (:mod:`.templates`), the context a rule reads (:mod:`.context`), the
rulebook that loads, checks and reloads the file (:mod:`.rulebook`), reading
the file safely with line numbers (:mod:`.rules_file`), counting rules that
fail at run time (:mod:`.failures`), and the flag and trigger records it
produces (:mod:`.signals`).
"""
