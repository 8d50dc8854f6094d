"""Text hygiene: the input policy and the defences against a small model's output."""

from __future__ import annotations

import pytest

from seal_agent.errors import EmptyInputError, InputError, InvalidTextError
from seal_agent.text import (
    clean_input,
    content_words,
    drop_questions,
    is_degenerate,
    negation_mismatch,
    normalize,
    split_chunks,
    support,
    trim_repetition,
    unsupported_terms,
)

# -- clean_input ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n", "\x00\x01\x7f", b"  "])
def test_clean_input_refuses_empty(text: object) -> None:
    with pytest.raises(EmptyInputError, match="empty"):
        clean_input(text)


def test_clean_input_names_what_was_empty() -> None:
    with pytest.raises(EmptyInputError, match="^document "):
        clean_input("  ", what="document")


def test_clean_input_refuses_lone_surrogate() -> None:
    with pytest.raises(InvalidTextError, match="surrogate"):
        clean_input("abc\ud800")


def test_clean_input_refuses_invalid_utf8_bytes() -> None:
    with pytest.raises(InvalidTextError, match="UTF-8"):
        clean_input(b"caf\xe9 au lait")  # Latin-1, not UTF-8


def test_clean_input_decodes_valid_utf8_bytes() -> None:
    assert clean_input("café".encode()) == "café"


@pytest.mark.parametrize("value", [None, 42, 3.5, ["hi"], {"text": "hi"}])
def test_clean_input_refuses_non_text(value: object) -> None:
    with pytest.raises(InvalidTextError, match=type(value).__name__):
        clean_input(value)


def test_input_errors_are_value_errors() -> None:
    # Callers may catch the builtin instead of the SDK's class.
    with pytest.raises(ValueError):
        clean_input("")
    assert issubclass(InvalidTextError, InputError)


def test_clean_input_turns_crlf_and_cr_into_lf() -> None:
    assert clean_input("one\r\ntwo\rthree") == "one\ntwo\nthree"


def test_clean_input_removes_control_characters_but_keeps_newline_and_tab() -> None:
    raw = "a\x00b\x07c\x1bd\x7fe\x85f\tg\nh\x0bi\x0cj"
    assert clean_input(raw) == "abcdef\tg\nhij"


def test_clean_input_strips_outer_whitespace_and_nfc_normalises() -> None:
    decomposed = "  cafe\u0301  "  # e + combining acute accent
    out = clean_input(decomposed)
    assert out == "caf\u00e9"
    assert len(out) == 4


# -- normalize -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Cat sat on a mat.", "cat sat on mat"),
        ("An apple, an orange!", "apple orange"),
        ("  Hello,\n\tWORLD  ", "hello world"),
        ("the", ""),
        ("Theory and anthem", "theory and anthem"),  # articles only as whole words
        ("Sam's 3.5-hour trip", "sams 35hour trip"),
    ],
)
def test_normalize_follows_squad_conventions(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


# -- trim_repetition -----------------------------------------------------------


def test_trim_repetition_cuts_a_loop() -> None:
    assert trim_repetition("peanuts. peanuts. peanuts.") == "peanuts."


def test_trim_repetition_cuts_at_the_first_repeat_ignoring_case_and_punctuation() -> None:
    text = "I like tea. I like coffee. i like TEA! I like cake."
    assert trim_repetition(text) == "I like tea. I like coffee."


def test_trim_repetition_keeps_lines() -> None:
    assert trim_repetition("line one\nline two\nline one\nline three") == "line one\nline two"


def test_trim_repetition_leaves_text_without_repeats() -> None:
    text = "The user is allergic to peanuts. They live in Oslo."
    assert trim_repetition(text) == text


# -- is_degenerate -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ok",
        "  .. ",
        "the the the the the the the",
        "peanuts peanuts peanuts peanuts peanuts peanuts",
        "yes no yes no yes no yes no",
        "hahahahahahahaha",
    ],
)
def test_is_degenerate_flags_junk(text: str) -> None:
    assert is_degenerate(text)


@pytest.mark.parametrize(
    "text",
    [
        "The user is allergic to peanuts.",
        "The user's sister Maria lives in Lisbon and works as a nurse.",
        "Oslo",
    ],
)
def test_is_degenerate_keeps_real_sentences(text: str) -> None:
    assert not is_degenerate(text)


def test_is_degenerate_min_chars() -> None:
    assert is_degenerate("Oslo", min_chars=5)
    assert not is_degenerate("Oslo", min_chars=4)


# -- unsupported_terms ---------------------------------------------------------


def test_unsupported_terms_flags_an_invented_name() -> None:
    assert unsupported_terms("The user's brother is called Sami.", "I have a brother.") == ["Sami"]


def test_unsupported_terms_flags_an_invented_number() -> None:
    assert unsupported_terms("The user is 34 years old.", "I am 43 years old.") == ["34"]


def test_unsupported_terms_passes_names_and_numbers_of_the_source() -> None:
    source = "My sister Maria moved to Lisbon in 2019."
    assert unsupported_terms("The user's sister Maria moved to Lisbon in 2019.", source) == []


def test_unsupported_terms_passes_sentence_initial_ordinary_words() -> None:
    assert unsupported_terms("Peanuts make the user sick.", "I get sick from peanuts.") == []
    assert unsupported_terms("They live in Oslo.", "I live in Oslo.") == []


def test_unsupported_terms_lists_every_invented_term() -> None:
    found = unsupported_terms("Sami and Lena met in 1999 in Paris.", "I met a friend in Paris.")
    assert found == ["Sami", "Lena", "1999"]


def test_unsupported_terms_is_not_fooled_by_a_substring() -> None:
    # "Al" occurs inside "Alice" but is not a name the source mentions.
    assert unsupported_terms("The user's friend is Al.", "My friend Alice.") == ["Al"]


def test_unsupported_terms_accepts_a_possessive_of_a_source_name() -> None:
    source = "My sister Maria has her birthday in May."
    assert unsupported_terms("Maria's birthday is in May.", source) == []
    assert unsupported_terms("The user has a sister, Maria.", "Maria's cat is called Tom.") == []
    assert unsupported_terms("The user has a sister, Maria.", "Maria\u2019s cat is Tom.") == []
    # The possessive does not smuggle in a name the source lacks.
    assert unsupported_terms("Sami's car is red.", "My car is red.") == ["Sami's"]


# -- negation_mismatch ---------------------------------------------------------


def test_negation_mismatch_catches_a_contradiction() -> None:
    assert negation_mismatch("The user has no allergies to peanuts.", "I'm allergic to peanuts.")
    assert negation_mismatch("The user is allergic to peanuts.", "I am not allergic to peanuts.")


@pytest.mark.parametrize(
    ("line", "source"),
    [
        ("The user doesn't like tea.", "I do not like tea."),
        ("The user does not like tea.", "I don\u2019t like tea."),
        ("The user likes tea.", "I like tea."),
        ("The user never flies.", "I have never been on a plane!"),
    ],
)
def test_negation_mismatch_agrees_when_both_sides_agree(line: str, source: str) -> None:
    assert not negation_mismatch(line, source)


def test_negation_mismatch_is_not_triggered_by_words_containing_no() -> None:
    # "know", "note", "nothingness"-like words must not count as negations.
    assert not negation_mismatch("The user knows Norway.", "I know Norway, I wrote a note.")


# -- support ---------------------------------------------------------------------


def test_support_is_the_share_of_content_words_found_in_the_source() -> None:
    # content words of the line: likes, green, tea; the source has green and tea.
    assert support("The user likes green tea", "I like green tea") == pytest.approx(2 / 3)
    assert support("The user drinks green tea", "I drink green tea daily") == pytest.approx(2 / 3)


def test_support_of_a_fully_supported_line_is_one() -> None:
    assert support("green tea", "Every morning: green tea.") == 1.0


def test_support_of_an_unrelated_line_is_zero() -> None:
    assert support("The user owns a motorbike", "I like green tea") == 0.0


def test_support_of_a_line_without_content_words_is_one() -> None:
    assert content_words("The user is a user.") == set()
    assert support("The user is a user.", "anything") == 1.0


# -- drop_questions --------------------------------------------------------------


def test_drop_questions_keeps_the_statements() -> None:
    text = "I live in Oslo. Where do you live?\nMy dog is Rex! Is it cold there?"
    assert drop_questions(text) == "I live in Oslo. My dog is Rex!"


def test_drop_questions_of_only_questions_is_empty() -> None:
    assert drop_questions("What is my name? Do you remember?") == ""


def test_drop_questions_leaves_statements_alone() -> None:
    assert drop_questions("I am allergic to peanuts.") == "I am allergic to peanuts."


# -- split_chunks ----------------------------------------------------------------


def _document() -> str:
    paragraphs = []
    for p in range(6):
        sentences = [
            f"Paragraph {p} sentence {s} says something about item number {p * 10 + s}."
            for s in range(5)
        ]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def test_split_chunks_returns_short_text_whole() -> None:
    assert split_chunks("A short note.", 100) == ["A short note."]


@pytest.mark.parametrize("max_chars", [40, 60, 100, 250, 1000])
def test_split_chunks_bounds_every_chunk_and_loses_nothing(max_chars: int) -> None:
    text = _document()
    chunks = split_chunks(text, max_chars)
    assert len(chunks) > 1
    assert all(0 < len(c) <= max_chars for c in chunks)
    assert " ".join(chunks).split() == text.split()


def test_split_chunks_prefers_sentence_boundaries() -> None:
    text = _document()
    for chunk in split_chunks(text, 250):
        assert chunk.endswith(".")


def test_split_chunks_cuts_a_long_run_on_sentence_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(300))  # no punctuation at all
    chunks = split_chunks(text, 100)
    assert all(0 < len(c) <= 100 for c in chunks)
    assert " ".join(chunks).split() == text.split()


def test_split_chunks_hard_cuts_a_word_longer_than_a_chunk() -> None:
    text = "Start. " + "x" * 250 + " end."
    chunks = split_chunks(text, 100)
    assert all(len(c) <= 100 for c in chunks)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
