"""The word lists and word-form rules the lexicon scorer reads, per language.

Negators, intensifiers and contrast words for English, Persian and Greek, in
normalised form (:func:`models.text.normalize`: lower case, no accents, ی/ک,
no ZWNJ); Persian clitic stripping and negative verb forms; Greek endings.

>>> is_negator("can't"), is_negator("dont"), is_negator("δεν"), is_negator("can")
(True, True, True, False)
>>> is_persian_negative_verb("نیستم"), is_persian_negative_verb("نمیخوام"), is_persian_negative_verb("نزدیک")
(True, True, False)
>>> list(persian_forms("کیفیتش"))[:2], greek_stem("καλοσ"), greek_stem("καλη")
(['کیفیت', 'کیفیتش'], 'καλ', 'καλ')
"""

from __future__ import annotations

from collections.abc import Iterator

NEGATION_SCOPE = 3
"""Tokens a negator reaches (before it in English and Greek, after the word in Persian)."""
NEGATION_SCALE = -0.75
"""A negated word flips and loses a quarter of its strength ("not good" is milder than "bad")."""

NEGATORS = frozenset({
    # English (every token ending in n't is a negator too)
    "not", "no", "never", "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent",
    "wont", "wouldnt", "couldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint", "nothing", "nobody",
    "neither", "nor", "without", "none", "hardly", "barely", "lack", "lacks", "lacking",
    # Persian, before the word
    "نه", "بدون", "بی",
    # Greek
    "δεν", "μην", "μη", "οχι", "ουτε", "χωρισ", "ποτε", "τιποτα", "κανενα", "κανεισ",
})  # fmt: skip

BOOSTERS: dict[str, float] = {
    # English
    "very": 1.3, "really": 1.3, "so": 1.25, "soo": 1.35, "too": 1.2, "extremely": 1.5, "absolutely": 1.4,
    "completely": 1.35, "totally": 1.35, "incredibly": 1.45, "super": 1.35, "utterly": 1.45, "highly": 1.3,
    "truly": 1.3, "most": 1.2, "such": 1.2, "seriously": 1.3, "deeply": 1.3, "terribly": 1.4, "awfully": 1.3,
    "ridiculously": 1.4, "insanely": 1.4, "hugely": 1.3, "especially": 1.2, "fucking": 1.5, "damn": 1.3,
    "slightly": 0.6, "somewhat": 0.7, "bit": 0.7, "little": 0.75, "kinda": 0.7, "kind": 0.8, "sort": 0.8,
    "fairly": 0.8, "rather": 0.85, "almost": 0.7, "partly": 0.7, "quite": 1.1, "pretty": 1.1,
    # Persian
    "خیلی": 1.35, "بسیار": 1.35, "واقعا": 1.3, "کاملا": 1.35, "اصلا": 1.35, "شدیدا": 1.45, "بینهایت": 1.5,
    "انقدر": 1.25, "اینقدر": 1.25, "چقدر": 1.25, "حسابی": 1.3, "فوق": 1.3, "هیچ": 1.2, "خیلیی": 1.45,
    "کمی": 0.7, "یکم": 0.7, "یکمی": 0.7, "نسبتا": 0.8, "تقریبا": 0.8, "نسبت": 0.9,
    # Greek
    "πολυ": 1.35, "παρα": 1.3, "τοσο": 1.25, "πραγματικα": 1.3, "εντελωσ": 1.35, "απολυτα": 1.35,
    "καθολου": 1.35, "υπερβολικα": 1.4, "τρομερα": 1.4, "απιστευτα": 1.45, "ιδιαιτερα": 1.2, "αρκετα": 1.1,
    "λιγο": 0.7, "καπωσ": 0.7, "σχετικα": 0.8,
}  # fmt: skip

CONTRAST = frozenset({"but", "however", "though", "ولی", "اما", "ولیکن", "αλλα", "ομωσ", "μα"})
"""Words after the last of these weigh 1.5 times, words before them half. Not *yet*: mostly an
adverb in complaints ("not arrived yet" halved the complaint, "yet more issues" weighed the
issues under the rest); VADER's own tool has only *but*."""

SARCASTIC = frozenset({
    # English praise that, alone in its clause and followed by a complaint, is sarcasm ("Great, another delay.")
    "great", "wonderful", "perfect", "brilliant", "fantastic", "lovely", "nice", "awesome", "amazing", "excellent",
    "super", "terrific", "marvelous", "marvellous", "fabulous", "splendid", "superb", "cool",
    # Persian
    "عالی", "عالیه", "ایول", "افرین", "محشر", "محشره", "خوبه", "دمت", "دمتون",
    # Greek
    "τελεια", "τελειο", "υπεροχα", "υπεροχο", "ωραια", "ωραιο", "μπραβο", "φανταστικα", "εξαιρετικα", "θαυμασια",
})  # fmt: skip
"""Words of praise that turn sarcastic when they stand alone in a clause and a complaint follows."""
SARCASM_FILLERS = frozenset({
    "oh", "just", "yeah", "wow", "ah", "well", "how", "so", "really", "simply", "absolutely", "very", "lot", "a",
    "چه", "وای", "واقعا", "خیلی", "اوه", "به", "گرم",
    "ω", "α", "πωπω", "τι", "απλα", "πολυ", "ρε",
})  # fmt: skip
"""Words that may stand beside the praise in such a clause ("oh great", "just perfect", «چه عالی», «ω τι ωραία»)."""
THANKS = frozenset({"thanks", "thank", "you", "ty", "ممنون", "مرسی", "متشکرم", "سپاس", "ευχαριστω", "ευχαριστουμε"})
"""Thanks alone in a clause: polite before a complaint ("Thanks! My parcel is late"), sarcastic before a
*never again* ("Thanks a lot. Never again.")."""
SARCASM_CLAUSE_TOKENS = 3
SARCASM_COMPLAINT = -1.0
"""A later clause at or below this valence (VADER's scale) makes the lone praise sarcastic."""
CLAUSE_START_PHRASES = frozenset({("so", "much", "for")})
"""Idioms that mean what the lexicon says only at the start of a clause: "So much for fast delivery"
is sarcasm, "they do so much for our town" is praise."""
REQUEST_WORDS = frozenset({"help", "hope"})
"""Words the customer-service supplement reads nearly neutral *in a request* ("Can you help?",
"I hope you can fix it"); in a clause without a request marker ("Proud to help", "Hope you all
have a great day") they keep VADER's valence (:attr:`models.lexicon.Lexicon.outside_request`)."""
REQUEST_MARKERS = frozenset({
    "please", "pls", "plz", "can", "could", "would", "need", "needs", "needed", "want", "wanted",
    "can't", "cant", "cannot", "couldn't", "you", "me", "my", "i", "someone", "anyone",
})  # fmt: skip
"""A clause with one of these is a request (or about the customer's own problem): the
supplement's near-neutral value of a :data:`REQUEST_WORDS` word holds there. *will* is not one
("this will help families"); chosen on a dev split (every other text of the English SentiMP set)
and the UCI sentences, never on the other half."""

NEVER = frozenset({"never", "هیچوقت", "هرگز", "ποτε"})
AGAIN = frozenset({"again", "anymore", "دیگه", "دیگر", "دوباره", "ξανα", "πια"})
NEVER_AGAIN = -2.5
""""I will never order from you again", «دیگه هیچوقت خرید نمی‌کنم», «ποτέ ξανά»: a customer who
says they are gone (never and again in one clause, at most :data:`NEVER_AGAIN_GAP` tokens apart)."""
NEVER_AGAIN_GAP = 6

_FA_SUFFIXES = ("هایی", "هاشون", "هامون", "هاش", "های", "ترین", "ها", "تر", "ان", "مون", "تون", "شون", "اش",
                "ش", "م", "ت", "ه", "ی", "یه", "ست", "ای", "ام", "ات", "ید", "یم", "ند", "ن")  # fmt: skip
_FA_LIGHT_VERBS = ("بود", "بوده", "شد", "شده", "شو", "ش", "دار", "داشت", "داشته", "کرد", "کرده", "کن", "داد",
                   "داده", "ده", "دید", "خواست", "خواه", "خوا", "رسید", "رسیده", "اومد", "امد", "اومده", "گرفت",
                   "خورد", "باش", "زد", "تونست", "تون", "ذاشت", "گذاشت")  # fmt: skip
_FA_ENDINGS = ("", "م", "ی", "د", "یم", "ید", "ند", "ن", "ه", "ین", "یی")
FA_BARE_NEGATIVE_VERB = -0.4
"""Valence of a Persian negative verb that negates no sentiment word before it («سس نذاشتین»: a thing
missing is a complaint). Alone it scores -0.10, neutral in three classes (below the 0.15 band), negative
in two. Chosen on the SnappFood dev split (cold start 0.753 -> 0.775 at -0.4, flat from -0.4 to -1.6);
README, "Sentiment on real text"."""
_FA_NEGATIVE_VERBS = frozenset("ن" + stem + end for stem in _FA_LIGHT_VERBS for end in _FA_ENDINGS) - {"نشد", "ند"}
_FA_NEGATIVE_VERBS |= {"نشد", "نیست", "نیستم", "نیستی", "نیستیم", "نیستید", "نیستند", "نیستن", "نیستش", "نبودش"}
_GREEK_ENDINGS = ("ιουσ", "ουμε", "ουνε", "ησαν", "ιοσ", "ιεσ", "ιου", "ιων", "ιοι", "ιησ",
                  "ουσ", "εισ", "ετε", "ουν", "αμε", "ατε", "ων", "εσ", "οσ", "ησ",
                  "ασ", "ου", "οι", "ει", "ια", "ιο", "η", "ο", "α", "ε", "ι", "ω")  # fmt: skip


def is_negator(tok: str) -> bool:
    """A word that negates what follows it in its clause (``n't`` forms included)."""
    return tok in NEGATORS or tok.endswith("n't")


def is_greek(tok: str) -> bool:
    """The token is written in Greek."""
    return "\u0370" <= tok[0] <= "\u03ff" or "\u1f00" <= tok[0] <= "\u1fff"


def is_arabic_script(tok: str) -> bool:
    """The token is written in Persian/Arabic script."""
    return "\u0600" <= tok[0] <= "\u06ff"


_GREEK_ENDING_SETS = [(k, frozenset(e for e in _GREEK_ENDINGS if len(e) == k)) for k in (4, 3, 2, 1)]


def greek_stem(tok: str) -> str:
    """The token without its longest inflectional ending (a stem of at least three letters)."""
    for k, ends in _GREEK_ENDING_SETS:
        if len(tok) - k >= 3 and tok[-k:] in ends:
            return tok[:-k]
    return tok


def persian_forms(tok: str) -> Iterator[str]:
    """The token with its clitics and plural/comparative suffixes stripped
    (کیفیتش -> کیفیت, عالیه -> عالی), then the token itself, then with a
    doubled letter cut (عالیی -> عالی)."""
    for suffix in _FA_SUFFIXES:
        if tok.endswith(suffix) and len(tok) - len(suffix) >= 2:
            yield tok[: -len(suffix)]
    yield tok
    collapsed = "".join(c for i, c in enumerate(tok) if i == 0 or c != tok[i - 1])
    if collapsed != tok:
        yield collapsed


def persian_unnegated(tok: str) -> Iterator[str]:
    """The affirmative forms of a Persian negative verb (نمیارزه -> میارزه,
    نپسندیدم -> پسندیدم); nothing for a word that is not one."""
    if tok.startswith("ن") and len(tok) > 3:
        yield tok[1:]


def is_persian_negative_verb(tok: str) -> bool:
    """A negated Persian verb or copula («نیست», «نبود», «نشد», «ندارم», «نمی‌…»),
    which negates the words just before it."""
    return tok in _FA_NEGATIVE_VERBS or (tok.startswith("نمی") and len(tok) > 4)
