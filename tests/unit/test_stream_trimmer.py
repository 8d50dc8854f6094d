"""StreamTrimmer: streamed text is always the start of the final answer."""

from __future__ import annotations

import pytest

from seal_agent.text import StreamTrimmer


def _run(chunks: list[str], stops: tuple[str, ...] = ()) -> tuple[list[str], StreamTrimmer]:
    trimmer = StreamTrimmer(stops)
    shown = [trimmer.feed(c) for c in chunks]
    shown.append(trimmer.finish())
    return shown, trimmer


def test_plain_text_streams_through_and_is_stripped():
    shown, t = _run(["  Hel", "lo", " there", ".\n"])
    assert "".join(shown) == t.shown == "Hello there."
    assert shown[:2] == ["Hel", "lo"]  # token by token, not held to the end
    assert not t.done


def test_a_repeated_sentence_is_never_shown_and_ends_the_answer():
    shown, t = _run(["Biscuit", " is your dog.", " Biscuit", " is your", " dog.", " More"])
    assert t.shown == "Biscuit is your dog."
    assert "".join(shown) == t.shown
    assert t.done


def test_a_sentence_that_only_starts_like_an_earlier_one_is_shown_once_it_differs():
    shown, t = _run(["Dog. Cat. Do", "gs bark."])
    assert shown[0] == "Dog. Cat."  # "Do" could still become "Dog.": held back
    assert t.shown == "Dog. Cat. Dogs bark."


def test_stop_strings_cut_and_a_partial_stop_is_held_back():
    shown, t = _run(["Hello wor", "ld. Obs", "ervation: 42"], stops=("Observation",))
    assert shown == ["Hello wor", "ld.", "", ""]
    assert t.shown == "Hello world." and t.done
    # a tail that only looked like a stop string is released at the end
    shown, t = _run(["All good. Obs"], stops=("Observation",))
    assert "".join(shown) == t.shown == "All good. Obs"


@pytest.mark.parametrize(
    "chunks",
    [
        ["a", "b", "c"],
        ["One. ", "Two. ", "One. ", "Three."],
        ["x\n", "y\n", "x\n"],
        ["The the the", " the."],
    ],
)
def test_what_is_shown_is_always_a_prefix_of_the_final_text(chunks):
    trimmer = StreamTrimmer()
    so_far = ""
    for chunk in chunks:
        so_far += trimmer.feed(chunk)
        assert trimmer.shown == so_far
    so_far += trimmer.finish()
    assert so_far == trimmer.shown
