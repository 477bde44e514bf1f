"""How a contact centre reads a survey answer (shared by rules, KPIs, features and views)."""

from __future__ import annotations


def is_negative_survey(kind: str, score: float) -> bool:
    """CSAT <= 2 of 5, NPS <= 6 of 10 (a detractor), or CES >= 5 of 7 (hard work).

    >>> is_negative_survey("csat", 2), is_negative_survey("nps", 7), is_negative_survey("ces", 6)
    (True, False, True)
    """
    if kind == "csat":
        return score <= 2
    if kind == "nps":
        return score <= 6
    return score >= 5  # ces: 7 = very hard
