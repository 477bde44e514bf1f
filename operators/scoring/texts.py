"""Text scoring and its delayed labels: the sentiment of an event's text, and the labels surveys and
agents give it later (part of :mod:`operators.scoring.online`, which re-exports these names).

``predictions.recent_texts`` keeps the last :data:`MAX_RECENT_TEXTS` texts (truncated; with who
labelled them and the score they got), so a survey that rates an interaction (``rates_event_id``) or an
agent's correction (``agent_feedback``) can teach the sentiment model; ``predictions.mood`` follows the
scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livesignals.contract import Event
from models.registry import Models
from models.sentiment import label_from_survey
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import printable

if TYPE_CHECKING:
    from operators.scoring.online import ScoringReport

MAX_RECENT_TEXTS = 3
TEXT_CHARS = 200
"""Characters of a text kept for delayed labels, controls removed first (``sizes.printable``: 4 bytes each)."""
MOOD_ALPHA = 0.3


def text_of(event: Event) -> str | None:
    """The event's text (message, transcript or survey comment), if any."""
    text = event.payload.get("text") or event.payload.get("comment")
    return text if isinstance(text, str) and text.strip() else None


def score_text(models: Models, state: CustomerState, event: Event, text: str, report: ScoringReport) -> float:
    """Score a text with the champion, remember it for delayed labels, update the mood."""
    score = models.model("sentiment").score(text)
    report.scored["sentiment"] += 1
    report.scores.append(("sentiment", event.customer_key, event.event_id, event.event_time_ms, score))
    texts = state.predictions.setdefault("recent_texts", [])
    texts.append([event.event_id, event.event_time_ms, printable(text)[:TEXT_CHARS], [], score])
    del texts[:-MAX_RECENT_TEXTS]
    mood = state.predictions.get("mood") or {"n": 0, "avg": 0.0}
    avg = score if mood["n"] == 0 else (1 - MOOD_ALPHA) * mood["avg"] + MOOD_ALPHA * score
    state.predictions["mood"] = {
        "last": score, "avg": round(avg, 4), "trend": round(avg - mood["avg"], 4) if mood["n"] else 0.0,
        "n": mood["n"] + 1, "t": event.event_time_ms,
    }  # fmt: skip
    return score


def learn_labels(models: Models, state: CustomerState, event: Event, report: ScoringReport) -> None:
    """Learn the sentiment labels this event carries (survey answers, agent corrections)."""
    p = event.payload
    if event.type == "survey":
        label = label_from_survey(p["kind"], p["score"])
        if p.get("comment"):
            _learn_text(models, p["comment"], label, report)  # the answer labels its own comment
        if p.get("rates_event_id"):
            _learn_remembered(models, state, p["rates_event_id"], label, "survey", report)
    elif event.type == "agent_feedback" and p["kind"] == "sentiment":
        _learn_remembered(models, state, p["target_id"], p["label"], "agent", report)


def _learn_remembered(
    models: Models, state: CustomerState, event_id: str, label: str, source: str, report: ScoringReport
) -> None:
    for entry in state.predictions.get("recent_texts", []):
        if entry[0] == event_id:
            if source in entry[3]:
                report.labels[("sentiment", "duplicate")] += 1
                return
            entry[3].append(source)
            _learn_text(models, entry[2], label, report)
            return
    report.labels[("sentiment", "unmatched")] += 1


def _learn_text(models: Models, text: str, label: str, report: ScoringReport) -> None:
    """Teach a labelled text as hashed buckets and a lexicon score, never its words: lessons travel
    through Redis to every worker (issue #14). Buckets: the largest any sentiment role uses."""
    buckets = max(slot.model.n_features for _, slot in models.all("sentiment"))
    models.teach("sentiment", [models.model("sentiment").lesson(text, buckets), label])
    report.labels[("sentiment", "learned")] += 1
    report.learned = True
