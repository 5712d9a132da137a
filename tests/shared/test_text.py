"""The one text rule: every valid string survives (in NFC) and round-trips through JSON; every forbidden class
of character is refused with a message that names it."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tcr_shared.language.text import (
    EARLIEST_SIGNED_ON,
    Label,
    LongText,
    Name,
    Reason,
    TextError,
    Title,
    clean_text,
    text_type,
)

CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
ZERO_WIDTH = [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]
SURROGATES = [0xD800, 0xDBFF, 0xDC00, 0xDFFF]
FORBIDDEN = (
    [(c, "a control character") for c in CONTROLS if chr(c) not in "\t\n"]
    + [(c, "a bidirectional override or isolate") for c in BIDI]
    + [(c, "a zero-width character") for c in ZERO_WIDTH]
    + [(c, "a lone surrogate") for c in SURROGATES]
)
NOT_TEXT = {*CONTROLS, *BIDI, *ZERO_WIDTH}

# Any character that is not forbidden: every plane, combining marks, CJK, emoji, RTL letters, LRM/RLM marks.
valid_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="".join(map(chr, NOT_TEXT))),
    max_size=60,
)
long_valid_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=("Cs",), exclude_characters="".join(map(chr, NOT_TEXT))),
        st.sampled_from("\t\n"),
    ),
    max_size=60,
)


class Contract(BaseModel):
    name: Name
    title: Title
    label: Label
    reason: Reason
    notes: LongText


@given(valid_text)
def test_any_valid_text_survives_in_nfc_and_round_trips_through_json(value):
    cleaned = clean_text(value)
    assert cleaned == unicodedata.normalize("NFC", value)
    assert json.loads(json.dumps(cleaned)) == cleaned
    assert json.loads(json.dumps(cleaned, ensure_ascii=False)) == cleaned
    assert cleaned.encode("utf-8").decode("utf-8") == cleaned  # what PostgreSQL stores


@given(long_valid_text)
def test_request_models_keep_valid_text_through_a_json_body(value):
    value = value or "x"
    short = value.replace("\t", " ").replace("\n", " ")
    body = json.dumps({"name": short, "title": short, "label": short, "reason": value, "notes": value})
    model = Contract.model_validate_json(body)
    assert model.name == model.title == model.label == unicodedata.normalize("NFC", short)
    assert model.reason == model.notes == unicodedata.normalize("NFC", value)
    assert Contract.model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize(("code", "kind"), FORBIDDEN, ids=[f"U+{c:04X}" for c, _ in FORBIDDEN])
def test_every_forbidden_character_is_refused_and_named(code, kind):
    value = f"Ningxia{chr(code)}Lab"
    for long in (False, True):
        with pytest.raises(TextError) as refused:
            clean_text(value, long=long)
        assert str(refused.value) == f"contains U+{code:04X} ({kind}) at position 7"


@given(valid_text, st.sampled_from(FORBIDDEN), valid_text)
def test_a_forbidden_character_anywhere_is_refused(before, forbidden, after):
    code, kind = forbidden
    with pytest.raises(TextError, match=rf"U\+{code:04X} \({kind}\)"):
        clean_text(before + chr(code) + after)


def test_tab_and_newline_only_in_long_text():
    assert clean_text("line one\n\tline two", long=True) == "line one\n\tline two"
    for char, code in (("\t", "0009"), ("\n", "000A"), ("\r", "000D")):
        with pytest.raises(TextError, match=f"U\\+{code} \\(a control character\\)"):
            clean_text(f"a{char}b")
    with pytest.raises(TextError, match="U\\+000D"):
        clean_text("a\r\nb", long=True)


def test_nfc_is_applied_and_length_is_counted_after_it():
    decomposed = "Cafe\u0301"  # e + combining acute
    assert clean_text(decomposed) == "Caf\u00e9"
    assert clean_text("\u212b") == "\u00c5"  # angstrom sign -> A with ring
    with pytest.raises(TextError, match="at most 3"):
        clean_text("abcd", max_length=3)
    assert clean_text(decomposed, max_length=4) == "Caf\u00e9"


def test_request_models_answer_with_the_field_and_the_character():
    good = {"name": "宁夏科技", "title": "t", "label": "l", "reason": "r", "notes": "n"}
    for field, bad in (("name", "a\x00b"), ("title", "\u202eevil"), ("label", "x\u200by"), ("reason", "a\x1bb")):
        with pytest.raises(ValidationError) as refused:
            Contract.model_validate({**good, field: bad})
        (error,) = refused.value.errors()
        assert error["loc"] == (field,)
        assert "contains U+" in error["msg"]
    with pytest.raises(ValidationError):
        Contract.model_validate({**good, "name": ""})
    with pytest.raises(ValidationError):
        Contract.model_validate({**good, "label": "x" * 101})
    short = text_type(5)

    class Tag(BaseModel):
        tag: short

    assert Tag(tag="abcde").tag == "abcde"
    with pytest.raises(ValidationError):
        Tag(tag="abcdef")


def test_the_schema_documents_the_lengths():
    schema = Contract.model_json_schema()["properties"]
    assert schema["name"]["maxLength"] == 200 and schema["name"]["minLength"] == 1
    assert schema["label"]["maxLength"] == 100


def test_signed_on_bound():
    assert EARLIEST_SIGNED_ON.isoformat() == "1985-01-01"


def test_the_scan_in_c_refuses_exactly_the_characters_the_rule_refuses():
    """clean_text looks for a refused character with one regular expression built from forbidden_kind; for every
    code point (not only those the rule names today) both agree, for short and long text."""
    from tcr_shared.language.text import _any_forbidden, forbidden_kind

    for long in (False, True):
        index = _any_forbidden(long)
        disagree = [
            code
            for code in range(0x110000)
            if bool(index.search(chr(code))) != bool(forbidden_kind(chr(code), long=long))
        ]
        assert disagree == []
