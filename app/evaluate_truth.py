"""Ground truth for ``livesignals models evaluate``: what the models should have said, and how close they came.

* **Sentiment** -- the simulator's truth file (``{"kind": "text", "event_id",
  "lang", "sentiment"}``). Figures are given both ways, whatever the truth:
  three-class (negative / neutral / positive, the score's neutral band) and
  binary on the texts whose truth is positive or negative (the score's sign;
  a score of exactly 0 is no answer, wrong for either class).
* **Churn** -- who cancelled when: the stream's own ``cancellation`` events,
  plus any truth file lines ``{"kind": "churn", "customer_id", "at"}`` (the
  simulator's) or ``{"customer_id", "cancelled_at"}``, or a CSV with columns
  ``customer_id,cancelled_at`` (a customers file; empty = never cancelled). A
  churn score at ``t`` is positive when the customer cancels in ``(t, t + horizon]``;
  a negative score closer than the horizon to the end of the stream is left out
  (censored: its label is not known yet), as are scores in the first
  ``warmup`` share of the stream's time or its first two horizons, whichever is
  longer (until one horizon has passed, a model has seen only positive labels:
  every early score is high, and pooled with later ones it would rank backwards).

>>> roc_auc([True, False, True, False], [0.9, 0.1, 0.4, 0.5])
0.75
>>> binary_f1([("positive", 0.3), ("negative", -0.2), ("negative", 0.0)])
(0.6667, 0.8333)
"""

from __future__ import annotations

import bisect
import csv
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from livesignals import serde
from livesignals.contract import primary_key


def read_truth(paths: Iterable[str | Path]) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """Sentiment truth by event id, and cancellation times by customer key, from truth files."""
    texts: dict[str, dict[str, Any]] = {}
    cancels: dict[str, list[int]] = defaultdict(list)
    for path in paths:
        if str(path).endswith(".csv"):
            with open(path, newline="") as fh:
                for row in csv.DictReader(fh):
                    if row.get("cancelled_at"):
                        cancels[primary_key({"customer_id": row["customer_id"]})].append(
                            int(float(row["cancelled_at"]))
                        )
            continue
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                doc = serde.loads(line)
                if doc.get("kind") == "text":
                    texts[doc["event_id"]] = doc
                elif doc.get("kind") == "churn" and doc.get("at") is not None:
                    cancels[primary_key({"customer_id": doc["customer_id"]})].append(int(doc["at"]))
                elif doc.get("cancelled_at") is not None and doc.get("customer_id"):
                    cancels[primary_key({"customer_id": doc["customer_id"]})].append(int(doc["cancelled_at"]))
    return texts, dict(cancels)


def churn_labels(
    scores: list[tuple[str, int, float]],
    cancels: dict[str, list[int]],
    horizon_ms: int,
    stream_start: int,
    stream_end: int,
    warmup: float = 0.2,
) -> tuple[list[bool], list[float]]:
    """Label each churn score ``(customer_key, t, p)`` by the truth (see the module docstring)."""
    ordered = {k: sorted(v) for k, v in cancels.items()}
    since = max(stream_start + int((stream_end - stream_start) * warmup), stream_start + 2 * horizon_ms)
    ys, ps = [], []
    for key, t, p in scores:
        if t < since:
            continue
        times = ordered.get(key, [])
        i = bisect.bisect_right(times, t)
        y = i < len(times) and times[i] <= t + horizon_ms
        if not y and t + horizon_ms > stream_end:
            continue
        ys.append(y)
        ps.append(p)
    return ys, ps


def roc_auc(ys: list[bool], ps: list[float]) -> float | None:
    """ROC AUC by ranks (ties share their rank); None without both classes."""
    pos = sum(ys)
    neg = len(ys) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    ranks = [0.0] * len(ps)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and ps[order[j + 1]] == ps[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, ys, strict=True) if y)
    return round((rank_sum - pos * (pos + 1) / 2) / (pos * neg), 4)


def three_class(pairs: list[tuple[str, str]]) -> tuple[float | None, float | None]:
    """Accuracy and macro-F1 over negative / neutral / positive (truth, predicted class)."""
    if not pairs:
        return None, None
    accuracy = sum(1 for y, p in pairs if y == p) / len(pairs)
    return round(accuracy, 4), _macro_f1(pairs, ("negative", "neutral", "positive"))


def binary_f1(pairs: list[tuple[str, float]]) -> tuple[float | None, float | None]:
    """Accuracy and macro-F1 over negative / positive, on texts whose truth is one of them
    (truth, score): the score's sign decides, 0 is no answer."""
    pairs = [(y, s) for y, s in pairs if y in ("negative", "positive")]
    if not pairs:
        return None, None
    labelled = [(y, "positive" if s > 0 else "negative" if s < 0 else "none") for y, s in pairs]
    accuracy = sum(1 for y, p in labelled if y == p) / len(labelled)
    return round(accuracy, 4), _macro_f1(labelled, ("negative", "positive"))


def _macro_f1(pairs: list[tuple[str, str]], classes: tuple[str, ...]) -> float:
    f1s = []
    for c in classes:
        tp = sum(1 for y, p in pairs if y == c and p == c)
        fp = sum(1 for y, p in pairs if y != c and p == c)
        fn = sum(1 for y, p in pairs if y == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return round(sum(f1s) / len(f1s), 4)
