"""Sentiment lexicons and the rules that read them: the cold start, per language.

Sources (graded valences on VADER's scale, -4 .. +4):

* English: the VADER lexicon (Hutto & Gilbert 2014, ~7,500 entries, MIT
  licence), read at run time from the installed ``vaderSentiment`` package,
  with a customer-service supplement of our own (``models/lexicons/en.txt``)
  whose entries take precedence (polite words such as *please* or *help* are
  neutral in a request -- *help* and *hope* keep VADER's valence in a clause
  with no request marker; delivery and billing words are added);
* Persian and Greek: lexicons written for this project
  (``models/lexicons/fa.txt``, ``el.txt``; Apache-2.0 like the code).

The rules (:mod:`models.polarity_rules` holds the word lists): valences add up
over a text, each clause on its own; an intensifier scales the next sentiment
word (*very*, خیلی, πολύ), a downtoner shrinks it; a negator flips and damps
the next three words of its clause (*not*, every *n't* contraction, *never*,
*without*, δεν, μην, όχι, نه, بدون); Persian negation that follows the word --
a negative verb, «خوب نبود», «راضی نیستم», «کیفیتش خوب نیست» -- flips the
three words before it, and a negative verb form of a sentiment verb
(«نپسندیدم», «نمی‌ارزه») is the flipped verb; a Persian negative verb with no
sentiment word to flip is a mild complaint of its own («سس نذاشتین», a thing
missing: :data:`~models.polarity_rules.FA_BARE_NEGATIVE_VERB`, too mild to read
negative in three classes); words after *but* / ولی / αλλά
weigh 1.5 times, words before it half; exclamation marks add emphasis. The sum
``s`` is squashed as ``s / sqrt(s² + 15)`` into (-1, 1): graded, not
all-or-nothing.

>>> lex = Lexicon.load()
>>> lex.score("Thanks, the agent solved it quickly") > 0 > lex.score("This is not good, terrible service")
True
>>> lex.score("Can you check my order?"), lex.score("Can I change the delivery address?")
(0.0, 0.0)
>>> lex.score("Can you help me?") < 0.15 < lex.score("Proud to help our local food bank")
True
>>> lex.score("I can't log in") <= 0 and lex.score("good") < lex.score("very good")
True
>>> lex.score("So much for fast delivery") < 0 < lex.score("They do so much for our town, wonderful")
True
>>> [lex.score(t) < 0 for t in ("خوب نبود", "راضی نیستم", "کیفیتش خوب نیست", "δεν είναι καλή")]
[True, True, True, True]
>>> [lex.score(t) > 0 for t in ("عالیه", "مرسی", "καλό", "مشکلی نداشت", "no problem")]
[True, True, True, True, True]
>>> -0.15 < lex.score("سس نذاشتین") < 0
True
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from models import polarity_rules as rules
from models.text import clauses, tokens

LANGUAGES = ("en", "fa", "el")
MEMO_SIZE = 100_000
MAX_STEM_TOKEN = 40
"""Tokens longer than this are not stemmed (stemming tries every prefix)."""
PLAIN, NEGATOR, BOOSTER, WORD = range(4)
PLAIN_ROLE = (PLAIN, 0.0, False)
"""The role of most tokens: one shared object, so the hot loop tests it by identity."""
PLAIN_HEAD = (PLAIN, 0.0, False)
"""A plain token that starts a phrase: equal to :data:`PLAIN_ROLE`, not the same object (the hot
loop must try the phrases)."""
ALPHA = 15.0
"""Squashing constant: a sum of 4 (one strong word) reads about 0.72."""


def vader_lexicon_path() -> Path | None:
    """Where the installed ``vaderSentiment`` package keeps its lexicon, if installed."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "vader_lexicon.txt"
    return path if path.exists() else None


def vader_emoji(vader: Path, words: dict[str, float]) -> dict[str, float]:
    """Emoji valences the way VADER's own tool reads them: the sum of the VADER valences of the
    words of the emoji's name in ``emoji_utf8_lexicon.txt`` (beside VADER's lexicon, MIT), so
    "💛" (*yellow heart*) reads like *heart*. Emoji written as several tokens are left out.

    >>> path = vader_lexicon_path()
    >>> path is None or vader_emoji(path, {"heart": 3.2, "crying": -2.1})["💛"] == 3.2
    True
    """
    path = vader.with_name("emoji_utf8_lexicon.txt")
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        emoji, _, name = line.partition("\t")
        toks = tokens(emoji)
        value = sum(words.get(w, 0.0) for w in name.lower().split())
        if len(toks) == 1 and value and not toks[0].isalnum():
            out[toks[0]] = round(max(-4.0, min(4.0, value)), 3)
    return out


def _entries(text: str) -> list[tuple[str, float]]:
    """``(word or phrase, valence)`` of a lexicon file: tab-separated, # comments."""
    out = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            word, value = line.split("\t")[:2]
            out.append((word, float(value)))
    return out


_VADER_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")
_VADER_SHORT_WORDS = frozenset({"ok"})


def _is_vader_word(entry: str) -> bool:
    """A VADER entry that is a word, not an emoticon: the tokeniser strips punctuation, so ``8)``,
    ``:d`` or ``</3`` would become the bare tokens ``8``, ``d``, ``3`` ("3 days late" read positive).

    >>> [e for e in ("love", "8)", ":d", "</3", "ok", "po", "fu", "can't") if _is_vader_word(e)]
    ['love', 'ok', "can't"]
    """
    return bool(_VADER_WORD.fullmatch(entry)) and (len(entry) >= 3 or entry in _VADER_SHORT_WORDS)


@dataclass
class Lexicon:
    """Word, phrase and stem valences, all languages in one table (scripts do not collide)."""

    words: dict[str, float] = field(default_factory=dict)
    phrases: dict[tuple[str, ...], float] = field(default_factory=dict)
    stems: dict[str, float] = field(default_factory=dict)
    """Greek stems (ending stripped) and Persian verb stems (entries ending in ``*``)."""
    heads: set[str] = field(default_factory=set)
    """First tokens of the phrases (one set look-up per token before the phrase look-ups)."""
    memo: dict[str, float | None] = field(default_factory=dict, repr=False)
    """Token -> valence already worked out (bounded by :data:`MEMO_SIZE`): word forms repeat."""
    roles: dict[str, tuple[int, float, bool]] = field(default_factory=dict, repr=False)
    """Token -> what it does in a clause (:meth:`_role`), bounded like ``memo``."""
    outside_request: dict[str, float] = field(default_factory=dict)
    """VADER's valence of the :data:`~models.polarity_rules.REQUEST_WORDS` (*help*, *hope*), read in
    a clause with no request marker; the supplement's near-neutral value holds in a request."""

    @classmethod
    def load(cls, languages: tuple[str, ...] = LANGUAGES) -> Lexicon:
        """The lexicons for ``languages``: VADER (if installed) under the shipped files."""
        lex = cls()
        root = importlib.resources.files("models").joinpath("lexicons")
        if "en" in languages and (vader := vader_lexicon_path()) is not None:
            for word, value in _entries(vader.read_text(encoding="utf-8")):
                if _is_vader_word(word):
                    lex.add(word, value)
                    if word in rules.REQUEST_WORDS:
                        lex.outside_request[word] = value
            for emoji, value in vader_emoji(vader, dict(lex.words)).items():
                lex.add(emoji, value)
        for lang in languages:
            for word, value in _entries(root.joinpath(f"{lang}.txt").read_text(encoding="utf-8")):
                lex.add(word, value)
        return lex

    def add(self, word: str, value: float) -> None:
        """One entry: a word, a phrase (several tokens) or a Persian verb stem (``stem*``)."""
        if word.endswith("*"):
            for tok in tokens(word[:-1]):
                self.stems[tok] = value
            return
        toks = tuple(tokens(word))
        if len(toks) > 1:
            self.phrases[toks] = value
            self.heads.add(toks[0])
            self.roles.clear()
        elif toks:
            self.words[toks[0]] = value
            self.memo.clear()
            self.roles.clear()
            if rules.is_greek(toks[0]) and (stem := rules.greek_stem(toks[0])) != toks[0]:
                self.stems.setdefault(stem, value)

    def lookup(self, tok: str) -> float | None:
        """Valence of one token: the word, its doubled letters cut, its Persian
        clitics stripped or its Greek ending, or a Persian negative verb form
        of a sentiment verb (flipped)."""
        if tok in self.memo:
            return self.memo[tok]
        if len(self.memo) >= MEMO_SIZE:
            self.memo.clear()
            self.roles.clear()
        value = self.memo[tok] = self._lookup(tok)
        return value

    def _lookup(self, tok: str) -> float | None:
        value = self.words.get(tok)
        if value is not None:
            return value
        if rules.is_greek(tok):
            stem = rules.greek_stem(tok)
            return self.stems.get(stem) if stem != tok else None
        if not rules.is_arabic_script(tok):
            return None
        for form in rules.persian_forms(tok):
            value = self.words.get(form)
            if value is None:
                value = self._verb_stem(form)
            if value is not None:
                return value
        for positive in rules.persian_unnegated(tok):
            value = self.words.get(positive)
            if value is None:
                value = self._verb_stem(positive)
            if value is not None:
                return rules.NEGATION_SCALE * value
        return None

    def _verb_stem(self, tok: str) -> float | None:
        if len(tok) > MAX_STEM_TOKEN:
            return None  # no word is this long: a hostile token must not cost quadratic time
        for end in range(len(tok) - 1, 2, -1):
            value = self.stems.get(tok[:end])
            if value is not None:
                return value
        return None

    def score(self, text: str) -> float:
        """Sentiment in (-1, 1); 0 when no lexicon word is found."""
        return self.analyse(text)[0]

    def score_with_hits(self, text: str) -> tuple[float, int]:
        """Sentiment in (-1, 1) and how many lexicon words it rests on."""
        score, hits, _ = self.analyse(text)
        return score, hits

    def analyse(self, text: str) -> tuple[float, int, list[str]]:
        """Score, number of sentiment words found, and the tokens read as negated
        (for the learned model's features)."""
        values: list[float] = []
        negated: list[str] = []
        contrast_at = -1
        praise: list[tuple[int, int]] = []  # values of lone praise clauses (sarcasm candidates)
        thanks: list[tuple[int, int]] = []  # values of lone thanks clauses (sarcastic before a never again)
        complaint_after = leaving = False
        for clause in clauses(text):
            start = len(values)
            if rules.CONTRAST.isdisjoint(clause):
                self._clause(clause, values, negated)
            else:  # the words after the last "but" weigh more, the words before it less
                at = max(i for i, tok in enumerate(clause) if tok in rules.CONTRAST)
                self._clause(clause[:at], values, negated)
                contrast_at = len(values)
                self._clause(clause[at + 1 :], values, negated)
            if not rules.NEVER.isdisjoint(clause) and not rules.AGAIN.isdisjoint(clause) and _never_again(clause):
                values.append(rules.NEVER_AGAIN)
                leaving = bool(thanks)
            if len(values) > start:
                if praise and sum(values[start:]) <= rules.SARCASM_COMPLAINT:
                    complaint_after = True
                elif min(values[start:]) > 0 and _lone(clause, rules.SARCASTIC):
                    praise.append((start, len(values)))
                elif min(values[start:]) > 0 and _lone(clause, rules.THANKS):
                    thanks.append((start, len(values)))
        # "Great, another delay.": praise before a complaint is sarcasm; so are thanks before a never again
        for first, end in (praise if complaint_after else []) + (thanks if leaving else []):
            for at in range(first, end):
                values[at] *= rules.NEGATION_SCALE
        if not values:
            return 0.0, 0, negated
        total = 0.0
        for i, v in enumerate(values):
            total += v * (0.5 if i < contrast_at else 1.5 if contrast_at >= 0 else 1.0)
        if total and (bangs := min(text.count("!"), 3)):
            total += math.copysign(0.3 * bangs, total)
        return round(total / math.sqrt(total * total + ALPHA), 4), len(values), negated

    def _role(self, tok: str) -> tuple[int, float, bool]:
        """What a token does, memoised: (:data:`PLAIN` / :data:`NEGATOR` /
        :data:`BOOSTER` / :data:`WORD`, scale or valence, negates the words before it)."""
        role = self.roles.get(tok)
        if role is None:
            if len(self.roles) >= MEMO_SIZE:
                self.roles.clear()
            post = rules.is_persian_negative_verb(tok)
            if rules.is_negator(tok):
                role = (NEGATOR, 0.0, post)
            elif (scale := rules.BOOSTERS.get(tok)) is not None:
                role = (BOOSTER, scale, post)
            elif (value := self.lookup(tok)) is not None:
                role = (WORD, value, post)
            else:
                role = (PLAIN, 0.0, True) if post else PLAIN_HEAD if tok in self.heads else PLAIN_ROLE
            self.roles[tok] = role
        return role

    def _clause(self, clause: tuple[str, ...], values: list[float], negated: list[str]) -> None:
        """Add the valences of one clause to ``values`` (rules in the module docstring)."""
        n, i = len(clause), 0
        negate_left, boost, boost_left = 0, 1.0, 0
        found: list[tuple[int, int]] = []  # (token index, index in values) of this clause
        heads, phrases, roles = self.heads, self.phrases, self.roles
        while i < n:
            tok = clause[i]
            role = roles.get(tok)
            if role is PLAIN_ROLE:  # the common case: a word with no sentiment, starting no phrase
                if negate_left:
                    negated.append(tok)
                    negate_left -= 1
                if boost_left:
                    boost_left -= 1
                i += 1
                continue
            step, value, kind, bare = 1, None, PLAIN, False
            if tok in heads:
                for size in (3, 2):
                    value = phrases.get(clause[i : i + size])
                    if value is not None and i and clause[i : i + size] in rules.CLAUSE_START_PHRASES:
                        value = None
                    if value is not None:
                        step = size
                        break
            if value is None:
                kind, number, post = role or self._role(tok)
                if kind == WORD:
                    value = number
                    if tok in self.outside_request and rules.REQUEST_MARKERS.isdisjoint(clause):
                        value = self.outside_request[tok]  # "proud to help" is praise, "can you help?" is not
                elif kind == NEGATOR:
                    negate_left = rules.NEGATION_SCOPE + 1
                elif kind == BOOSTER:
                    boost, boost_left = number, 3
                if post and not self._negate_before(i, clause, found, values, negated) and kind == PLAIN:
                    value, bare = rules.FA_BARE_NEGATIVE_VERB, True  # "سس نذاشتین": a thing missing is a complaint
            if value is not None:
                if boost_left:
                    value *= boost
                if negate_left:
                    value *= rules.NEGATION_SCALE
                    negated.append(tok)
                found.append((i if step == 1 and not bare else -1, len(values)))  # nor an idiom, nor this verb
                values.append(value)
                boost_left = 0
            elif negate_left and kind == PLAIN:
                negated.append(tok)
            i += step
            if negate_left:
                negate_left = max(0, negate_left - step)
            if boost_left:
                boost_left = max(0, boost_left - step)

    def _negate_before(
        self, i: int, clause: tuple[str, ...], found: list[tuple[int, int]], values: list[float], negated: list[str]
    ) -> bool:
        """Persian post-verbal negation: flip the sentiment words among the three
        tokens before ``i`` (not across و / ولی), once; whether any was flipped."""
        start = i - rules.NEGATION_SCOPE
        for j in range(i - 1, max(start, 0) - 1, -1):
            if clause[j] in rules.CONTRAST or clause[j] == "و":
                start = j + 1
                break
        flipped = False
        for k, (pos, at) in enumerate(found):
            if pos >= start and pos >= 0:
                values[at] *= rules.NEGATION_SCALE
                negated.append(clause[pos])
                found[k] = (-1, at)  # flipped once
                flipped = True
        return flipped


def _never_again(clause: tuple[str, ...]) -> bool:
    """*never* and *again* (any of the languages' words) within :data:`~models.polarity_rules.NEVER_AGAIN_GAP`
    tokens of each other in one clause.

    >>> _never_again(("i", "will", "never", "order", "from", "you", "again"))
    True
    >>> _never_again(("never", "had", "a", "problem", "and", "i", "will", "buy", "again"))
    False
    """
    nevers = [i for i, tok in enumerate(clause) if tok in rules.NEVER]
    agains = [i for i, tok in enumerate(clause) if tok in rules.AGAIN]
    return any(abs(i - j) <= rules.NEVER_AGAIN_GAP for i in nevers for j in agains)


def _lone(clause: tuple[str, ...], words: frozenset[str]) -> bool:
    """A short clause of ``words`` (praise, or thanks) and fillers only ("Great", "oh wonderful",
    «چه عالی», «τέλεια», "thanks a lot")."""
    return (
        len(clause) <= rules.SARCASM_CLAUSE_TOKENS
        and not words.isdisjoint(clause)
        and all(tok in words or tok in rules.SARCASM_FILLERS for tok in clause)
    )
