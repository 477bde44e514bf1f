"""Ground truth for ``livesignals models evaluate``: what the models should have said, and how close they came.

* **Sentiment** -- the simulator's truth file (``{"kind": "text", "event_id",
  "lang", "sentiment"}``). Figures are given both ways, whatever the truth:
  three-class (negative / neutral / positive, the score's neutral band) and
  binary on the texts whose truth is positive or negative (the score's sign;
  a score of exactly 0 is no answer, wrong for either class).
* **Churn** -- who cancelled when: the stream's own ``cancellation`` events,
  plus any truth file lines ``{"kind": "churn", "customer_id", "at"}`` (the
  simulator's) or ``{"customer_id", "cancelled_at"}``, or a CSV with columns
  ``customer_id,cancelled_at`` (a customers file; empty = never cancelled; other
  columns ignored). Times are ISO-8601 dates or datetimes (no zone = UTC) or
  epoch milliseconds (a number below 1e11 is read as seconds); a bad row or a
  missing column is one line, ``file:line: what`` (:class:`TruthError`). A
  churn score at ``t`` is positive when the customer cancels in ``(t, t + horizon]``;
  a negative score closer than the horizon to the end of the stream is left out
  (censored: its label is not known yet), as are scores in the first
  ``warmup`` share of the stream's time or its first two horizons, whichever is
  longer (until one horizon has passed, a model has seen only positive labels:
  every early score is high, and pooled with later ones it would rank backwards).
  The pool holds scores taken at the customers' events; the rescores the
  silent-customer sweep gives (event id ``sweep``) are written by ``--scores``
  but not pooled, so the figure stays comparable across releases; what a
  profile shows at month ends is ``bench.models``' figure.

>>> roc_auc([True, False, True, False], [0.9, 0.1, 0.4, 0.5])
0.75
>>> binary_f1([("positive", 0.3), ("negative", -0.2), ("negative", 0.0)])
(0.6667, 0.8333)
"""

from __future__ import annotations

import bisect
import csv
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from livesignals import serde
from livesignals.contract import primary_key

CSV_COLUMNS = ("customer_id", "cancelled_at")
TIME_FORMS = "an ISO-8601 date or datetime (2026-03-01, 2026-03-01T09:30:00Z; no zone = UTC) or epoch ms (or s)"
EPOCH_S_BELOW = 100_000_000_000
"""An epoch number below this (year 5138 in seconds, 1973 in milliseconds) is read as seconds."""


class TruthError(ValueError):
    """A truth file that cannot be read as given: the message is one line, ``file:line: what``."""


def parse_time(value: Any, where: str) -> int:
    """Milliseconds since the epoch from an ISO-8601 date/datetime or an epoch number (ms, or s).

    >>> parse_time("2026-03-01", "t.csv:2"), parse_time("2026-03-01T00:00:00+01:00", "t.csv:2")
    (1772323200000, 1772319600000)
    >>> parse_time(1772323200, "t.csv:2"), parse_time("1772323200000", "t.csv:2")
    (1772323200000, 1772323200000)
    >>> try:
    ...     parse_time("yesterday", "t.csv:3")
    ... except TruthError as exc:
    ...     print(str(exc)[:51])
    t.csv:3: cancelled_at 'yesterday' is not a time: gi
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TruthError(f"{where}: cancelled_at {value!r} is not a time: give {TIME_FORMS}")
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise TruthError(f"{where}: cancelled_at {value!r} is not a time: give {TIME_FORMS}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)
    if not math.isfinite(number) or number < 0:
        raise TruthError(f"{where}: cancelled_at {value!r} is not a time: give {TIME_FORMS}")
    return int(number * 1000) if number < EPOCH_S_BELOW else int(number)


def read_truth(paths: Iterable[str | Path]) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """Sentiment truth by event id, and cancellation times by customer key, from truth files.

    A ``.csv`` file needs the columns ``customer_id,cancelled_at`` (others are
    allowed and ignored; an empty ``cancelled_at`` = never cancelled); any other
    file is JSON lines. A missing column, a bad time, a line that is not a JSON
    object, or a JSON lines file with no line of a known shape raises
    :class:`TruthError` naming the file and line.
    """
    texts: dict[str, dict[str, Any]] = {}
    cancels: dict[str, list[int]] = defaultdict(list)
    for path in paths:
        if str(path).endswith(".csv"):
            _read_csv(path, cancels)
        else:
            _read_jsonl(path, texts, cancels)
    return texts, dict(cancels)


def _read_csv(path: str | Path, cancels: dict[str, list[int]]) -> None:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise TruthError(
                f"{path}:1: missing column(s) {', '.join(missing)}; a customers CSV needs the header "
                f"{','.join(CSV_COLUMNS)} (found: {','.join(header) or 'nothing'}); cancelled_at is {TIME_FORMS}"
            )
        reader.fieldnames = header
        for row in reader:
            where = f"{path}:{reader.line_num}"
            customer = (row.get("customer_id") or "").strip()
            at = (row.get("cancelled_at") or "").strip()
            if not customer:
                if at:
                    raise TruthError(f"{where}: cancelled_at {at!r} without a customer_id")
                continue
            if at:
                cancels[primary_key({"customer_id": customer})].append(parse_time(at, where))


def _read_jsonl(path: str | Path, texts: dict[str, dict[str, Any]], cancels: dict[str, list[int]]) -> None:
    known = lines = 0
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            lines += 1
            where = f"{path}:{number}"
            try:
                doc = serde.loads(line)
            except Exception:  # any undecodable line is the same error for the user
                raise TruthError(f"{where}: not a JSON object (a truth file is JSON lines, or a .csv)") from None
            if not isinstance(doc, dict):
                raise TruthError(f"{where}: not a JSON object (a truth file is JSON lines, or a .csv)")
            if doc.get("kind") == "text" and doc.get("event_id"):
                texts[doc["event_id"]] = doc
            elif doc.get("kind") == "churn" and doc.get("customer_id") and doc.get("at") is not None:
                cancels[primary_key({"customer_id": doc["customer_id"]})].append(parse_time(doc["at"], where))
            elif doc.get("customer_id") and doc.get("cancelled_at") is not None:
                cancels[primary_key({"customer_id": doc["customer_id"]})].append(parse_time(doc["cancelled_at"], where))
            elif "kind" not in doc:
                raise TruthError(
                    f'{where}: neither a cancellation {{"customer_id", "cancelled_at"}} nor a simulator truth '
                    f'line {{"kind": "churn"|"text", ...}} (keys: {", ".join(sorted(map(str, doc))[:6])})'
                )
            else:
                continue  # the simulator's other kinds (customers, offers, renewals) are not churn or text truth
            known += 1
    if lines and not known:
        raise TruthError(f"{path}:1: no cancellation or text truth in the file (see `livesignals models evaluate -h`)")


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
