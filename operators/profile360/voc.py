"""Voice of the customer: the terms and topics rising in complaints right now.

Every complaint (a negative text, a bad survey answer, a case opened; see
:func:`operators.profile360.update.is_complaint`) adds its topic and the content words
of its text to window buckets shared by all customers (kept per Kafka
partition, summed by the reader). A term is *rising* when its rate in the
last hour is well above its rate over the last day:

    rise = count_1h / ((count_24h + 1) / 24)

so a term seen 6 times in the last hour and 8 times all day scores 16; a
steady term scores about 1. At most :data:`MAX_TERMS_PER_BUCKET` distinct
names are counted per bucket (new ones beyond it are ignored in that bucket).
"""

from __future__ import annotations

from typing import Any

from models.text import tokens
from operators.profile360.windows import Windows

MAX_TERMS_PER_BUCKET = 400
MIN_TOKEN_CHARS = 3
MAX_TERMS_PER_COMPLAINT = 20
"""Terms one complaint contributes: a long text must not crowd every other complaint out of a bucket."""

STOPWORDS = frozenset(
    # English
    "the and for you your our are was were with this that have has had not but can could would "
    "will from they them there their what when where which who why how all any been being into "
    "just very really still again about after before because please thanks thank yes now its "
    "she him her his get got one two three time times day days "
    # Persian (normalised: no ZWNJ, Persian letters)
    "این است که را از به با برای در هم یا تا شد شده بود هیچ کس من شما ما او آن اون هست نیست "
    "خیلی واقعا بار دیگر لطفا ممنون باید میخواستم "
    # Greek (normalised: no accents, final sigma folded)
    "και του της των την στο στη για από απο μου σας μας ειναι δεν θα να με τη το τα οι ηταν "
    "πολυ ακομα μετα".split()
)


def complaint_terms(text: str) -> list[str]:
    """Content words of a complaint, normalised, without stop words, numbers or contractions.

    >>> complaint_terms("My order STILL hasn't arrived, order 123!")
    ['order', 'arrived']
    """
    seen: dict[str, None] = {}  # ordered, O(1) membership
    for tok in tokens(text):
        if (
            len(tok) >= MIN_TOKEN_CHARS
            and not tok.isdigit()
            and "'" not in tok  # hasn't, don't: function words, never a topic
            and tok not in STOPWORDS
        ):
            seen[tok] = None
            if len(seen) >= MAX_TERMS_PER_COMPLAINT:
                break
    return list(seen)


def contributions(topic: str | None, text: str | None) -> dict[str, int]:
    """Bucket increments for one complaint: ``topic:<t>`` and ``term:<w>``."""
    # the count and the topic first: a bucket's name cap must never crowd them out
    out = {"complaints": 1}
    if topic:
        out[f"topic:{topic}"] = 1
    if text:
        out.update((f"term:{w}", 1) for w in complaint_terms(text))
    return out


def new_windows(doc: dict[str, Any] | None = None) -> Windows:
    """Complaint buckets (all counts), empty or rebuilt from their persisted form."""
    return Windows.from_json(doc, kinds={}, max_metrics=MAX_TERMS_PER_BUCKET)


def rising(windows: Windows, now_ms: int, top: int = 10, min_count: int = 3) -> dict[str, Any]:
    """Top rising terms and topics, with their hour and day counts."""
    names = {m for tier in ("5m", "1h") for b in windows.buckets.get(tier, {}).values() for m in b if ":" in m}
    scored: dict[str, list[dict[str, Any]]] = {"term": [], "topic": []}
    for name in names:
        kind, value = name.split(":", 1)
        hour = windows.query(name, "1h", now_ms)
        day = windows.query(name, "24h", now_ms)
        if hour >= min_count:
            scored[kind].append({kind: value, "hour": hour, "day": day, "rise": round(hour / ((day + 1) / 24), 1)})
    return {
        "complaints_1h": windows.query("complaints", "1h", now_ms),
        "complaints_24h": windows.query("complaints", "24h", now_ms),
        "terms": sorted(scored["term"], key=lambda r: (-r["rise"], -r["hour"], r["term"]))[:top],
        "topics": sorted(scored["topic"], key=lambda r: (-r["rise"], -r["hour"], r["topic"]))[:top],
    }
