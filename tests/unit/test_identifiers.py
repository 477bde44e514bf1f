"""Identifiers that print like another id are rejected; legitimate marks after a letter are kept (issue #9)."""

from __future__ import annotations

import pytest

from livesignals.identifiers import normalise_identifier

INVISIBLE = ["\u034f", "\u17b4", "\u17b5", "\u180b", "\u180c", "\u180d", "\u180f", "\ufffc", "\ufffd", "\u3164"]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_invisible_characters_are_rejected_anywhere(char: str, where: str) -> None:
    value = {"start": char + "c42", "middle": "c4" + char + "2", "end": "c42" + char}[where]
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        normalise_identifier(value, 256)


@pytest.mark.parametrize("mark", ["\u0301", "\u0332", "\u0903", "\u20dd", "\u0e48"], ids=lambda c: f"U+{ord(c):04X}")
def test_an_id_starting_with_any_mark_is_rejected(mark: str) -> None:
    """Nonspacing, spacing (U+0903, class 0) and enclosing (U+20DD) marks alike."""
    with pytest.raises(ValueError, match="starts with the combining mark"):
        normalise_identifier(mark + "c42", 256)


@pytest.mark.parametrize(
    "value",
    ["c42\u0332", "\u0915\u093e", "\u0e01\u0e48", "cafe\u0301", "\u1780\u17b6"],
    ids=["low-line-after-digit", "devanagari-vowel-sign", "thai-tone-mark", "decomposed-accent", "khmer-visible-vowel"],
)
def test_a_visible_mark_after_a_base_character_is_kept(value: str) -> None:
    assert normalise_identifier(value, 256)


def test_lookalikes_of_one_id_do_not_become_three_customers() -> None:
    """The reviewer's case: "c42", "\\u034fc42" and "c42\\u17b4" printed the same."""
    assert normalise_identifier("c42") == "c42"
    for lookalike in ("\u034fc42", "c42\u17b4"):
        with pytest.raises(ValueError):
            normalise_identifier(lookalike)


def test_an_email_keys_one_customer_however_it_is_cased() -> None:
    """Outside review of #12 (finding 20): an agent typing ``ANN.SMITH@EXAMPLE.COM`` was refused the customer the
    engine keyed from ``ann.smith@example.com`` (and the refusal was audited as a BOLA attempt). Every door spells
    an e-mail in lower case: the event contract, ``livesignals erase/export`` and the agent desktop service."""
    from app.privacy import customer_key
    from livesignals import serde
    from livesignals.contract import decode
    from livesignals.errors import Origin
    from tests.helpers import T0, event

    doc = event("chat", text="hi")
    doc["customer"] = {"customer_id": "C1", "email": "Ann.Smith@Example.COM"}
    ev = decode(serde.dumps(doc), Origin("in", 0, 0), now_ms=T0 + 1000)
    assert ev.ids == {"customer_id": "C1", "email": "ann.smith@example.com"}, "customer ids keep their case"
    assert customer_key("email:ANN.SMITH@EXAMPLE.COM") == "email:ann.smith@example.com"
    from gateway.api import customer_key as path_key

    assert path_key("email:ANN.SMITH@EXAMPLE.COM") == "email:ann.smith@example.com"
