"""Text hygiene shared by every stage: input checks, and the defences a
135M model's output needs (repetition loops, empty lines, invented names).

Pure functions, no heavy imports: they are unit-tested with plain strings.
"""

from __future__ import annotations

import re
import string
import unicodedata

from seal_agent.errors import EmptyInputError, InvalidTextError

__all__ = [
    "clean_input",
    "content_words",
    "drop_questions",
    "negation_mismatch",
    "support",
    "is_degenerate",
    "normalize",
    "split_chunks",
    "StreamTrimmer",
    "trim_repetition",
    "unsupported_terms",
]

# C0/C1 control characters other than tab and newline.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_input(text: object, what: str = "message") -> str:
    """Check and normalise text handed to the SDK.

    Policy (documented in docs/configuration.md): non-strings and text that is
    not valid UTF-8 are refused with :class:`InvalidTextError`; CR LF becomes
    LF; other control characters are removed; Unicode is NFC-normalised;
    text that is empty after that is refused with :class:`EmptyInputError`.
    Length is checked by the caller, who knows the model's context window.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidTextError(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if not isinstance(text, str):
        raise InvalidTextError(f"{what} must be text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTextError(
            f"{what} is not valid UTF-8 (lone surrogate at position {exc.start}); "
            "decode your input with errors='replace' or fix its encoding"
        ) from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_RE.sub("", text)
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise EmptyInputError(f"{what} is empty (or only white space / control characters)")
    return text


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, one space."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def trim_repetition(text: str) -> str:
    """Cut a generation at the first sentence or line it repeats ("peanuts. peanuts.")."""
    pieces = re.split(r"(?<=[.!?\n])\s*", text.strip())
    seen: set[str] = set()
    kept: list[str] = []
    for piece in pieces:
        key = normalize(piece)
        if not key:
            continue
        if key in seen:
            break
        seen.add(key)
        kept.append(piece.strip())
    out = " ".join(kept) if "\n" not in text else "\n".join(kept)
    return out.strip() or text.strip()


_PIECE_END = re.compile(r"(?<=[.!?\n])\s*")


class StreamTrimmer:
    """The streaming counterpart of :func:`trim_repetition` and stop strings.

    Feed it the raw text a model decodes, piece by piece; it returns only what
    is safe to show: text that no later token can take back.  It holds back a
    tail that could still become a stop string, a sentence still being written
    that so far repeats the start of an earlier one, and trailing white space.
    What it has shown is therefore always the start of the final answer, and
    ``shown`` (everything returned) is the answer to log: a streamed answer and
    the logged one are the same text.  ``done`` turns true once a stop string
    or a repeated sentence ended the answer; decoding can stop there.
    """

    def __init__(self, stops: tuple[str, ...] | list[str] = ()) -> None:
        self.stops = tuple(s for s in stops if s)
        self.raw = ""
        self.shown = ""
        self.done = False

    def feed(self, text: str) -> str:
        self.raw += text
        return self._advance(final=False)

    def finish(self) -> str:
        """The rest of the answer once decoding ended."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        if self.done:
            return ""
        text, stopped = self.raw, False
        for stop in self.stops:
            idx = text.find(stop)
            if idx >= 0:
                text, stopped = text[:idx], True
        if not (final or stopped):
            text = text[: len(text) - self._partial_stop(text)]
        text, repeated = _unrepeated(text, complete=final or stopped)
        candidate = text.strip()
        if stopped or repeated:
            self.done = True
        if not candidate.startswith(self.shown):
            # Normalisation can, rarely, re-judge text already shown: keep what
            # was shown (it is what the reader saw) and end the answer there.
            self.done = True
            return ""
        new, self.shown = candidate[len(self.shown) :], candidate
        return new

    def _partial_stop(self, text: str) -> int:
        """Length of the longest tail of ``text`` that begins a stop string."""
        longest = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:k]):
                    longest = k
                    break
        return longest


def _unrepeated(text: str, *, complete: bool) -> tuple[str, bool]:
    """Cut ``text`` before its first repeated sentence or line.

    Returns (kept text, whether a repeat was found).  Unless ``complete``, the
    last sentence is still being written: it is held back while it could turn
    into a repeat of an earlier one.
    """
    pieces: list[tuple[int, str, bool]] = []  # (start, text, ended by . ! ? or newline)
    pos = 0
    for match in _PIECE_END.finditer(text):
        if match.end() > pos:
            pieces.append((pos, text[pos : match.start()], True))
            pos = match.end()
    if pos < len(text):
        pieces.append((pos, text[pos:], complete))
    seen: set[str] = set()
    for start, piece, ended in pieces:
        key = normalize(piece)
        if not key:
            continue
        if ended and key in seen:
            return text[:start], True
        if not ended and any(k.startswith(key) for k in seen):
            return text[:start], False  # may still become a repeat: hold it back
        seen.add(key)
    return text, False


def is_degenerate(text: str, *, min_chars: int = 3) -> bool:
    """True for output not worth keeping: too short, or one token looping."""
    stripped = text.strip()
    if len(normalize(stripped)) < min_chars:
        return True
    words = normalize(stripped).split()
    # A loop: few distinct words in a long line ("the the the ...", "yes no yes no ...").
    if len(words) >= 6 and len(set(words)) / len(words) <= 1 / 3:
        return True
    return bool(re.search(r"(.{2,30}?)\1{3,}", stripped))


_STOP = {
    "user", "users", "assistant", "they", "their", "them", "he", "she", "his", "her",
    "i", "me", "my", "mine", "we", "our", "you", "your", "it", "its", "is", "am", "are",
    "was", "were", "be", "been", "has", "have", "had", "do", "does", "did", "and", "or",
    "of", "to", "in", "on", "at", "for", "with", "by", "from", "as", "that", "this",
    "what", "which", "who", "whom", "where", "when", "how", "why", "a", "an", "the",
    "not", "no", "so", "but", "if", "than", "then", "there", "also", "very", "named",
    "called", "name", "s", "about",
}


def content_words(text: str) -> set[str]:
    return {w for w in normalize(text).split() if w not in _STOP}


_TERM_RE = re.compile(r"\b(?:[A-Z][\w'-]*|\d[\d.,:/-]*)")
_POSSESSIVE_RE = re.compile(r"(?<=\w)['\u2019]s\b")


def unsupported_terms(line: str, source: str) -> list[str]:
    """Names and numbers in ``line`` that never occur in ``source``.

    The cheap faithfulness check from FINDINGS: a small model invents people
    ("the user's brother is called Sami") and numbers; a line that names
    something its source never mentions is not trained on or stored.
    Sentence-initial capitals that are ordinary words in the source pass.
    """
    # A possessive names the same person: "Maria's" is supported by "Maria".
    src_norm = f" {normalize(_POSSESSIVE_RE.sub('', source))} "
    missing = []
    for raw in _TERM_RE.findall(line):
        term = raw.rstrip(".,:/-")
        key = normalize(_POSSESSIVE_RE.sub("", term))
        if not key or key in _STOP or key in {"user", "q", "a"}:
            continue
        if f" {key} " not in src_norm:
            missing.append(term)
    return missing


_NEGATIONS = {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without"}


def negation_mismatch(line: str, source: str) -> bool:
    """True when ``line`` negates and its source does not (or the reverse).

    Catches the small model's contradictions ("the user has no allergies to
    peanuts" from "I'm allergic to peanuts") that a names-and-numbers check
    lets through.
    """

    def negates(text: str) -> bool:
        words = set(text.lower().replace("n't", " not").replace("n’t", " not").split())
        return bool({w.strip(string.punctuation) for w in words} & _NEGATIONS)

    sentences = [x for x in re.split(r"(?<=[.!?;])\s+|\n+|,\s+(?:so|but)\s+", source) if x.strip()]
    if not sentences:
        return False
    # Compare with the source sentence the line draws on most, not the whole
    # source: "I don't eat meat" must not make "the user has a dog" suspect.
    words = content_words(line)
    closest = max(sentences, key=lambda x: len(words & content_words(x)))
    return negates(line) != negates(closest)


def support(line: str, source: str) -> float:
    """Share of the line's content words that occur in the source (1.0 if none)."""
    words = content_words(line)
    if not words:
        return 1.0
    return len(words & content_words(source)) / len(words)


def drop_questions(text: str) -> str:
    """The declarative part of a user's message: questions state no facts."""
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    return " ".join(s for s in sentences if s.strip() and not s.strip().endswith("?")).strip()


def split_chunks(text: str, max_chars: int) -> list[str]:
    """Split a document into paragraph/sentence chunks of at most ~max_chars."""
    if len(text) <= max_chars:
        return [text]
    sentences = re.split(r"(?<=[.!?])\s+|\n{2,}", text)
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence:
            continue
        while len(sentence) > max_chars:  # one enormous sentence: cut between words
            if current:
                chunks.append(current)
                current = ""
            cut = max(sentence.rfind(" ", 0, max_chars + 1), sentence.rfind("\n", 0, max_chars + 1))
            if cut <= 0:  # a single word longer than a chunk: hard cut
                cut = max_chars
            chunks.append(sentence[:cut].rstrip())
            sentence = sentence[cut:].lstrip()
        if current and len(current) + 1 + len(sentence) > max_chars:
            chunks.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        chunks.append(current)
    return chunks
