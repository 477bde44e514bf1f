"""Sentiment on outside labelled text: cold start, learning, and cost (issue 11).

Reads labelled texts from ``--data DIR``: every ``*.tsv`` file there holds
lines ``lang <tab> label <tab> text`` (label ``positive`` / ``negative``;
others are skipped). No data ships with the project: point it at public sets
you converted (the README names the ones we used). Per file, in one run:

* cold start: binary macro-F1 of the lexicon (score >= 0 reads positive) and
  of a plain lexicon tool on the same texts -- VADER's own analyser for
  English (if ``vaderSentiment`` is installed), and for every language the
  mean valence of the lexicon words found with no rules (negation,
  intensifiers, clitics...), the way a plain word-list tool reads;
* learning: progressive predict-then-learn (each text is predicted, then
  learned), binary macro-F1 over the whole stream and over its second half,
  for the model as shipped (naive Bayes and softmax regression on hashed
  features, mixed by their recent accuracy), each of those two learners
  alone, and River's BagOfWords + MultinomialNB (the reference the issue
  names: unbounded vocabulary);
* cost: microseconds per text to score at cold start and after learning (one
  run), and the pickled model's size.

    python -m bench.sentiment --data /path/to/tsv-dir [--limit 4000]
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.lexicon import Lexicon
from models.sentiment import SentimentModel
from models.text import tokens


def load(path: Path, limit: int) -> list[tuple[str, str]]:
    """``(text, label)`` pairs of one TSV file, binary labels only, in file order."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[1] in ("positive", "negative") and parts[2].strip():
            out.append((parts[2], parts[1]))
    return out[:limit]


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    """Binary macro-F1 of ``(truth, predicted)`` pairs."""
    f1s = []
    for cls in ("positive", "negative"):
        tp = sum(1 for t, p in pairs if t == cls and p == cls)
        fp = sum(1 for t, p in pairs if t != cls and p == cls)
        fn = sum(1 for t, p in pairs if t == cls and p != cls)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return round(sum(f1s) / 2, 4)


def binary(proba: dict[str, float]) -> str:
    """Positive or negative, whichever is more likely (neutral ignored)."""
    return "positive" if proba.get("positive", 0.0) >= proba.get("negative", 0.0) else "negative"


def plain_lexicon(lex: Lexicon) -> Callable[[str], float]:
    """A plain word-list reader: mean valence of the words found, no rules."""

    def score(text: str) -> float:
        found = [v for t in tokens(text) if (v := lex.words.get(t)) is not None]
        return sum(found) / len(found) if found else 0.0

    return score


def progressive(
    data: list[tuple[str, str]], predict: Callable[[str], str], learn: Callable[[str, str], None]
) -> dict[str, float]:
    """Predict each text, then learn it; macro-F1 over all and the second half."""
    pairs = []
    for text, label in data:
        pairs.append((label, predict(text)))
        learn(text, label)
    return {"all": macro_f1(pairs), "second_half": macro_f1(pairs[len(pairs) // 2 :])}


def _predictor(model: SentimentModel) -> Callable[[str], str]:
    def predict(text: str) -> str:
        return binary(model.predict_proba_one(text))

    return predict


def river_nb() -> tuple[Callable[[str], str], Callable[[str, str], None]]:
    """River's BagOfWords + MultinomialNB on our tokens (the issue's reference)."""
    from river import compose, feature_extraction, naive_bayes

    model = compose.Pipeline(
        feature_extraction.BagOfWords(on=None, tokenizer=tokens, ngram_range=(1, 2)), naive_bayes.MultinomialNB()
    )

    def predict(text: str) -> str:
        return binary(model.predict_proba_one(text))  # type: ignore[arg-type]

    def learn(text: str, label: str) -> None:
        model.learn_one(text, label)  # type: ignore[arg-type]

    return predict, learn


def per_text_us(fn: Callable[[str], Any], texts: list[str]) -> float:
    """Microseconds per call over the texts (one run, tokenisation cache cleared first)."""
    from models.text import _cached_clauses

    _cached_clauses.cache_clear()
    start = time.perf_counter()
    for t in texts:
        fn(t)
    return round((time.perf_counter() - start) / len(texts) * 1e6, 1)


def bench_file(path: Path, limit: int) -> dict[str, Any]:
    """Every figure for one labelled file."""
    data = load(path, limit)
    texts = [t for t, _ in data]
    lex = Lexicon.load()
    result: dict[str, Any] = {"texts": len(data), "positive": sum(1 for _, y in data if y == "positive")}
    cold = SentimentModel()
    result["cold_start"] = macro_f1([(y, "positive" if cold.score(t) >= 0 else "negative") for t, y in data])
    plain = plain_lexicon(lex)
    result["plain_lexicon"] = macro_f1([(y, "positive" if plain(t) >= 0 else "negative") for t, y in data])
    result["texts_with_a_lexicon_word"] = round(sum(1 for t in texts if lex.analyse(t)[1]) / len(texts), 3)
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        vader = SentimentIntensityAnalyzer()
        if path.name.startswith("en"):
            result["vader_tool"] = macro_f1(
                [(y, "positive" if vader.polarity_scores(t)["compound"] >= 0 else "negative") for t, y in data]
            )
    except ImportError:
        pass
    learning: dict[str, Any] = {}
    for name, learner in (("shipped_ensemble", "ensemble"), ("softmax", "softmax"), ("nb", "nb")):
        model = SentimentModel(learner=learner)
        learning[name] = progressive(data, _predictor(model), model.learn_one)
        learning[name]["blend"] = round(model._blend(), 3)
        if name == "shipped_ensemble":
            result["us_per_text_learned"] = per_text_us(model.score, texts[:1000])
            result["model_bytes"] = len(pickle.dumps(model))
    learning["river_bow_nb"] = progressive(data, *river_nb())
    result["learning"] = learning
    result["us_per_text_cold"] = per_text_us(cold.score, texts[:1000])
    return result


def main(argv: list[str] | None = None) -> None:
    """Run every TSV file in ``--data`` and print/keep the figures."""
    from bench.common import write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="directory of lang<TAB>label<TAB>text files")
    parser.add_argument("--limit", type=int, default=4000, help="texts per file at most")
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.tsv"))
    if not files:
        raise SystemExit(f"no *.tsv files in {args.data}")
    write_result("sentiment", {f.stem: bench_file(f, args.limit) for f in files})


if __name__ == "__main__":
    main()
