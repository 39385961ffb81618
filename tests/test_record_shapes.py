"""The IRI and language-tag rules are `pattern` constraints run by pydantic-core's regex engine;
they must accept and refuse exactly what the Python validators they replaced did."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.records import ActivityCreate, Language, error_message

# The rules as the Python validators applied them (after whitespace stripping and the length bounds).
_PYTHON_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_PYTHON_TAG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")

# Letters, IRI punctuation, every character Python or Unicode call whitespace (incl. \x1c-\x1f and
# U+180E, U+200B, which are not), controls, and non-ASCII letters.
_TRICKY = "aZ09:-+./#?=%&~_ \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u180e\u2000\u200b\u2028\u2029\u202f\u205f\u3000" \
          "\x00\x07\x7f<>\"{}|\\^`é例"


# str_strip_whitespace is pydantic-core's trim: Unicode White_Space, which \x1c-\x1f are not
# (no whitespace lies above U+3000).
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace() and not 0x1C <= c <= 0x1F)


def _accepts_iri(value: str) -> bool:
    entry = {"sourceId": "s", "verb": {"id": value, "display": "d"}, "object": {"id": "https://x.example/a"},
             "timestamp": "2026-01-01T00:00:00Z"}
    try:
        ActivityCreate.model_validate(entry)
    except ValidationError as exc:
        assert [e["loc"] for e in exc.errors()] == [("verb", "id")]
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_TRICKY, max_size=12).map(lambda rest: "https:" + rest) | st.text(alphabet=_TRICKY, max_size=14))
@example("https://x\n")
@example("urn:a\x1cb")
@example(" urn:uuid:1 ")
@example("https://例え.jp/パス")
def test_iri_rule_is_the_python_one(value: str) -> None:
    stripped = value.strip(_WHITESPACE)
    expected = 3 <= len(stripped) <= 2000 and _PYTHON_IRI.match(stripped) is not None
    assert _accepts_iri(value) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZ9- \t\n\x1c_é", max_size=12))
@example("pt-BR")
@example("en\n")
def test_language_tag_rule_is_the_python_one(value: str) -> None:
    stripped = value.strip(_WHITESPACE)
    expected = 2 <= len(stripped) <= 35 and _PYTHON_TAG.match(stripped) is not None
    try:
        Language.model_validate({"tag": value})
        accepted = True
    except ValidationError as exc:
        accepted = not any(e["loc"] == ("tag",) for e in exc.errors())
    assert accepted == expected


def test_shape_errors_are_worded() -> None:
    try:
        ActivityCreate.model_validate({"sourceId": "s", "verb": {"id": "not an iri", "display": "d"},
                                       "object": {"id": "https://x.example/a"}, "timestamp": "2026-01-01T00:00:00Z"})
    except ValidationError as exc:
        assert [error_message(e) for e in exc.errors()] == [
            "must be an absolute IRI such as https://example.org/x or urn:uuid:..."]
    else:
        raise AssertionError("accepted an IRI without a scheme")
