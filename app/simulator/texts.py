"""Text bank for the simulator: messages by language, sentiment and topic.

Each template has a true sentiment (``negative``, ``neutral``, ``positive``):
that is the ground truth the sentiment model is scored against. Persian texts
are sometimes written with Arabic letter forms (ي, ك), without zero-width
non-joiners, or with Persian digits, as real users type them.
"""

from __future__ import annotations

import random

SENTIMENTS = ("negative", "neutral", "positive")

ITEMS = {
    "en": ["phone", "laptop", "headphones", "shoes", "fridge", "router", "jacket"],
    "fa": ["گوشی", "لپ‌تاپ", "هدفون", "کفش", "یخچال", "مودم", "کاپشن"],
    "el": ["κινητό", "λάπτοπ", "ακουστικά", "παπούτσια", "ψυγείο"],
}

# (topic, template); {item} and {order} are filled in.
TEMPLATES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "en": {
        "negative": [
            (
                "delivery",
                "My order {order} still hasn't arrived and nobody answers. This is terrible.",
            ),
            ("delivery", "Third time asking where my {item} is. Really disappointed."),
            ("quality", "The {item} stopped working after two days, awful quality."),
            ("billing", "You charged me twice for order {order}! I want a refund now."),
            ("technical", "The app keeps crashing at checkout, I can't pay. So frustrating."),
            ("service", "Worst customer service ever, I waited an hour on hold."),
            ("cancel", "I'm done with you, please close my account."),
            ("quality", "Cheap and broken, I regret buying this {item}."),
        ],
        "neutral": [
            ("delivery", "Can you tell me the status of order {order}?"),
            ("account", "Please update my delivery address."),
            ("product", "Is the {item} available in another colour?"),
            ("billing", "I need a copy of the invoice for order {order}."),
            ("service", "What are your opening hours on Saturday?"),
            ("technical", "How do I reset my password?"),
        ],
        "positive": [
            ("service", "Thanks a lot, the agent solved my problem quickly!"),
            ("product", "Love my new {item}, great quality."),
            ("delivery", "Fast delivery and good packaging, excellent."),
            ("service", "Very helpful and kind support, thank you."),
            ("product", "The {item} works perfectly, very happy with it."),
            ("billing", "Refund received, thanks for sorting it out so fast."),
        ],
    },
    "fa": {
        "negative": [
            ("delivery", "سفارش {order} هنوز نرسیده و هیچ‌کس جواب نمی‌دهد، واقعاً افتضاح است"),
            ("quality", "از کیفیت {item} خیلی ناراضی هستم، بعد از دو روز خراب شد"),
            ("service", "سه بار تماس گرفتم و مشکلم حل نشد"),
            ("service", "این بدترین خدمات مشتری است که دیده‌ام"),
            ("cancel", "پولم را پس بدهید، دیگر از شما خرید نمی‌کنم"),
            ("technical", "برنامه مدام خطا می‌دهد و نمی‌توانم پرداخت کنم"),
            ("billing", "دو بار از حسابم پول کم شده، خیلی عصبانی هستم"),
        ],
        "neutral": [
            ("delivery", "می‌خواستم وضعیت سفارش {order} را بدانم"),
            ("account", "لطفاً آدرس ارسال را تغییر دهید"),
            ("service", "ساعت کاری فروشگاه چیست؟"),
            ("product", "آیا {item} در رنگ دیگری موجود است؟"),
            ("billing", "فاکتور سفارش {order} را برایم بفرستید"),
        ],
        "positive": [
            ("service", "خیلی ممنون، مشکلم سریع حل شد"),
            ("product", "از خرید {item} بسیار راضی هستم"),
            ("service", "پشتیبانی عالی بود، متشکرم"),
            ("delivery", "ارسال سریع و بسته‌بندی خوب، عالی بود"),
            ("service", "همکار شما بسیار مودب و دلسوز بود"),
        ],
    },
    "el": {
        "negative": [
            ("delivery", "Η παραγγελία {order} δεν έχει φτάσει ακόμα, είναι απαράδεκτο"),
            ("service", "Πολύ κακή εξυπηρέτηση, περίμενα μία ώρα"),
            ("quality", "Το {item} χάλασε μετά από δύο μέρες"),
        ],
        "neutral": [
            ("delivery", "Θα ήθελα να μάθω την κατάσταση της παραγγελίας {order}"),
            ("account", "Παρακαλώ αλλάξτε τη διεύθυνση αποστολής"),
        ],
        "positive": [
            ("service", "Ευχαριστώ πολύ, εξαιρετική εξυπηρέτηση"),
            ("product", "Είμαι πολύ ικανοποιημένος με το {item}"),
        ],
    },
}

_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def _as_typed(text: str, rng: random.Random) -> str:
    """Persian as people type it: Arabic ي/ك, no ZWNJ, Persian digits, at random."""
    if rng.random() < 0.3:
        text = text.replace("ی", "ي").replace("ک", "ك")
    if rng.random() < 0.3:
        text = text.replace("\u200c", " ")
    if rng.random() < 0.5:
        text = text.translate(_PERSIAN_DIGITS)
    return text


def make_text(lang: str, sentiment: str, rng: random.Random, order_id: str = "") -> tuple[str, str]:
    """A ``(topic, text)`` in ``lang`` with the given true ``sentiment``.

    >>> topic, text = make_text("en", "positive", random.Random(1), "o-7")
    >>> isinstance(topic, str) and len(text) > 10
    True
    """
    topic, template = rng.choice(TEMPLATES[lang][sentiment])
    order = order_id or f"{rng.randrange(10**5, 10**6)}"
    text = template.format(item=rng.choice(ITEMS[lang]), order=order)
    if lang == "fa":
        text = _as_typed(text, rng)
    return topic, text
