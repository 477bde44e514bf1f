"""Decisions: which next-best action goes out, to whom, and what it taught us.

Owns arbitration between candidate actions (:mod:`.actions`), the contact
policy every trigger passes (:mod:`.policy`) and learning from offer
responses and agents' verdicts (:mod:`.responses`).
"""
