"""A memory in the form the agent is asked about it: question/answer pairs.

The weights say a fact back only when they were trained on it *in the form
in which it is asked*: the user's question in the agent's own chat turn,
answered by a short sentence, with the loss on the answer alone (FINDINGS,
"Saying facts from the weights": 0/16 unseen paraphrases from the bare
statements, 14/16 with chat-format question/answer pairs).

This module turns one statement of the user's into such pairs, and holds the
one definition of "the weights said it":

* :func:`relation_pairs`: question templates per relation ("my sister lives
  in X", "I work as a X", "I have N X" ...), always safe;
* :func:`model_pairs`: pairs the model wrote itself (few-shot completion),
  person-corrected and kept only when they pass :func:`check_pair`: the
  answer's new words must stand in the user's own words;
* :func:`build_probes`: per answer key, *train* pairs (trained on) and
  *check* questions (never trained on; they decide what the weights hold);
* :func:`said`: a greedy answer holds the key (normalised, numbers and their
  words alike).

Pure functions on strings: no model, no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from seal_agent.text import content_words, is_degenerate, normalize, unsupported_terms

__all__ = [
    "FactPair",
    "FactProbes",
    "build_probes",
    "check_pair",
    "key_aliases",
    "model_pairs",
    "parse_model_pairs",
    "question_key",
    "relation_pairs",
    "said",
    "second_person",
]


@dataclass(frozen=True)
class FactPair:
    """One question the user may ask, the answer sentence, and its key (the span checked)."""

    question: str
    answer: str
    key: str
    origin: str = "template"  # template | model


@dataclass(frozen=True)
class FactProbes:
    """What one answer key of a statement trains on, and what checks it."""

    key: str
    train: tuple[FactPair, ...]
    check: tuple[FactPair, ...]

    @property
    def checkable(self) -> bool:
        return bool(self.check)


# -- person: the user says "my", the agent answers "your" ---------------------------
_SECOND = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "am": "are", "i'm": "you're", "im": "you're", "i've": "you've", "i'd": "you'd",
    "i'll": "you'll", "was": "was", "we": "you", "our": "your", "us": "you",
}
_FIRST = {
    "you": "I", "your": "my", "yours": "mine", "yourself": "myself", "you're": "I'm",
    "you've": "I've", "you'd": "I'd", "you'll": "I'll",
}
_WORD_RE = re.compile(r"[A-Za-z']+|[^A-Za-z']+")


def _swap(text: str, table: dict[str, str]) -> str:
    out = []
    prev_you = False
    for tok in _WORD_RE.findall(text):
        low = tok.lower().replace("\u2019", "'")
        rep = table.get(low)
        if rep is None:
            out.append(tok)
            if tok.strip():
                prev_you = False
            continue
        if low == "was" and table is _SECOND:
            rep = "were" if prev_you else "was"
        if low == "am" and table is _SECOND and not prev_you:
            rep = "am"
        at_start = not "".join(out).strip() or "".join(out).rstrip()[-1] in ".!?"
        if at_start and tok[0].isupper():
            rep = rep[0].upper() + rep[1:]
        elif not at_start and rep != "I":
            rep = rep[0].lower() + rep[1:]
        out.append(rep)
        prev_you = rep.lower() == "you"
    return "".join(out)


def second_person(text: str) -> str:
    """The user's own words as the agent says them back: "I work in Tacoma" -> "You work in Tacoma"."""
    return _swap(text, _SECOND)


def first_person(text: str) -> str:
    """A question the model wrote about "you" as the user asks it: "What is your job?" -> "What is my job?"."""
    return _swap(text, _FIRST)


# -- keys: the answer span that a greedy answer must hold ---------------------------
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")


def key_aliases(key: str, extra: Iterable[str] = ()) -> list[str]:
    """The key and its other spellings: digits and number words, ordinals, extra aliases."""
    out = [key, *extra]
    norm = normalize(key)
    for word in norm.split():
        m = _ORDINAL.match(word)
        if m:
            out.append(norm.replace(word, m.group(1)))
    if norm.isdigit() and int(norm) < len(_NUMBER_WORDS):
        out.append(_NUMBER_WORDS[int(norm)])
    elif norm in _NUMBER_WORDS:
        out.append(str(_NUMBER_WORDS.index(norm)))
    seen: dict[str, None] = {}
    for alias in out:
        if normalize(alias):
            seen.setdefault(normalize(alias), None)
    return list(seen)


def said(answer: str, key: str, aliases: Iterable[str] = ()) -> bool:
    """Whether a greedy answer holds the key (normalised, whole words; any alias counts)."""
    text = f" {_ORDINAL_SUB(normalize(answer.replace('-', ' ')))} "
    for alias in key_aliases(key, aliases):
        words = _ORDINAL_SUB(alias)
        if f" {words} " in text or f" {alias} " in text:
            return True
    return False


def _ORDINAL_SUB(norm: str) -> str:  # "9th" in an answer says "9"
    return " ".join(_ORDINAL.sub(r"\1", w) for w in norm.replace("-", " ").split())


# -- checking one pair against the user's words -------------------------------------
_FIRST_PERSON = {"i", "my", "me", "mine", "im", "myself", "we", "our", "us", "ours"}
_SECOND_PERSON = {"you", "your", "yours", "youre", "yourself"}


def check_pair(question: str, answer: str, key: str, source: str) -> str | None:
    """Why a pair must not be trained on, or None when it is fine.

    The answer's key must stand in the user's own words and in the answer; the
    question must not give the key away; nothing either says may name a
    person, place or number that the user never did; the user asks in the
    first person, the agent answers in the second.
    """
    q_words = normalize(question).split()
    a_norm = f" {normalize(answer)} "
    key_norm = normalize(key)
    if not key_norm or not q_words or not a_norm.strip():
        return "empty"
    if not question.rstrip().endswith("?") or len(q_words) > 20 or len(a_norm.split()) > 30:
        return "shape"
    if is_degenerate(question) or is_degenerate(answer):
        return "degenerate"
    if f" {key_norm} " not in f" {normalize(source)} ":
        return "key_not_in_source"
    if f" {key_norm} " not in a_norm:
        return "key_not_in_answer"
    if f" {key_norm} " in f" {' '.join(q_words)} ":
        return "question_gives_key"
    if _invented(question, source) or _invented(answer, source):
        return "unsupported"
    if not _FIRST_PERSON & set(q_words) or (_SECOND_PERSON - {"you"}) & set(q_words):
        return "person"
    if _FIRST_PERSON & set(a_norm.split()) or "user" in a_norm.split():
        return "person"
    return None


def _invented(text: str, source: str) -> list[str]:
    """Names and numbers the user never said (pronouns and question words are not names)."""
    words = normalize(source).split()
    return [t for t in unsupported_terms(text, source) if normalize(t) not in _PRONOUNS
            and not any(w.startswith(normalize(t)) for w in words)]  # "26" of "26th"


_PRONOUNS = _FIRST_PERSON | _SECOND_PERSON | {"ive", "id", "ill", "youve", "youd", "youll", "tell", "do", "whats", "wheres", "whos", "when", "in", "on", "last", "this", "next"}


# -- pairs the model wrote -----------------------------------------------------------
_PAIR_RE = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:Q:\s*)?(?P<q>[^|\n]+\?)\s*\|\s*(?:A:\s*)?(?P<a>[^|\n]+)$")


def parse_model_pairs(text: str) -> list[tuple[str, str]]:
    """``1. question? | answer sentence`` lines from a completion."""
    pairs = []
    for line in text.splitlines():
        m = _PAIR_RE.match(line)
        if m:
            pairs.append((m.group("q").strip(), m.group("a").strip()))
    return pairs


def model_pairs(text: str, source: str) -> tuple[list[FactPair], Counter[str]]:
    """The model's pairs, person-corrected, keyed, and checked; dropped ones counted by reason.

    The key is what the answer adds to the question: its words that the
    question lacks, as one contiguous run of the user's own words.
    """
    kept: list[FactPair] = []
    dropped: Counter[str] = Counter()
    for question, answer in parse_model_pairs(text):
        q_words = set(normalize(question).split())
        if _SECOND_PERSON & q_words and not _FIRST_PERSON & q_words:
            question = first_person(question)  # "What is your job?" asked as the user would
        if _FIRST_PERSON & set(normalize(answer).split()):
            answer = second_person(answer)
        key = _new_span(question, answer, source)
        if key is None:
            dropped["no_key"] += 1
            continue
        reason = check_pair(question, answer, key, source)
        if reason:
            dropped[reason] += 1
            continue
        kept.append(FactPair(question, answer, key, origin="model"))
    return kept, dropped


_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")


def _new_span(question: str, answer: str, source: str) -> str | None:
    """The run of the source's words that the answer adds to the question."""
    question, answer = _POSSESSIVE.sub("", question), _POSSESSIVE.sub("", answer)
    q_content = content_words(question)
    new = [w for w in normalize(answer).split() if w in content_words(answer) and w not in q_content]
    if not new:
        return None
    src = normalize(source).split()
    # the longest run of source words, all of them new in the answer, in source order
    best: list[str] = []
    i = 0
    while i < len(src):
        if src[i] in new:
            j = i
            while j < len(src) and src[j] in new:
                j += 1
            if j - i > len(best):
                best = src[i:j]
            i = j
        else:
            i += 1
    return " ".join(best) if best else None


# -- templates per relation ----------------------------------------------------------
# an initial's dot ("Ursula K. Le Guin") stays inside a key and a clause
_NOT_INITIAL = r"(?<!\b[A-Z]\.)"  # after a dot that does not close an initial
_SPAN = r"(?P<key>(?:[^,.;!?]|(?<=\b[A-Z])\.)+?)"
# a key ends at punctuation, a conjunction, or a trailing phrase ("... now", "... at the shipyard")
_END = (r"(?=\s*(?:[,;!?]|\." + _NOT_INITIAL + r"|\band\b|\bso\b|\bbut\b|\bbecause\b|$)|\s+(?:now|here|there|today|"
        r"these days|at|for|in|on|with|by|from|since|every|all|so far|one day|someday|soon|"
        r"(?:this|next|last) (?:year|month|week|spring|summer|autumn|fall|winter))\b)")
_DET = r"(?:(?:a|an|the)\s+)?"
# after "I"/"we" any word is the verb; after "my X" only a word that looks like one
_VERB = (r"(?P<verb>(?:(?<=\bI )|(?<=\bwe ))[a-z]+|[a-z]+(?:s|ed)|went|spent|met|got|grew|began|"
         r"bought|took|made|had|left|found|became|won|ran|drove|flew)")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"


@dataclass
class _Relation:
    pattern: re.Pattern[str]
    questions: Sequence[str]  # formatted with the match's groups
    key_group: str = "key"


def _rel(pattern: str, *questions: str) -> _Relation:
    return _Relation(re.compile(pattern, re.IGNORECASE), questions)


# Order matters: the first relation that matches a clause names its key.
_NAME_QS = ("What is my name?", "What am I called?", "Who am I?", "Do you remember my name?",
            "What name do I go by?")
_JOB_QS = ("What is my job?", "What do I do for a living?", "What do I work as?",
           "What is my profession?", "What is my occupation?")
_FAMILY = (r"(?P<rel>brother|sister|mother|father|mom|mum|dad|wife|husband|partner|son|daughter|"
           r"(?:best )?friend|cousin|aunt|uncle|grandmother|grandfather|grandma|grandpa|boss)")

_RELATIONS: tuple[_Relation, ...] = (
    _rel(r"\bmy name is " + _SPAN + _END,
         *_NAME_QS),
    _rel(r"\b(?:my|our) (?P<rel>[a-z' ]{2,30}?) (?:is|are) (?:called|named) " + _SPAN + _END,
         "What is my {rel} called?", "What is the name of my {rel}?", "What did I name my {rel}?",
         "What's my {rel}'s name?", "Do you remember what my {rel} is called?"),
    _rel(r"\bI (?:adopted|have|got|own|bought) " + _DET + r"(?P<rel>[a-z ]{2,30}?) (?:called|named) "
         + _SPAN + _END,
         "What is my {rel} called?", "What is the name of my {rel}?", "What did I name my {rel}?",
         "What's my {rel}'s name?", "What is my pet called?"),
    _rel(r"\bmy " + _FAMILY + r"(?: (?P<who>(?-i:[A-Z][a-z]+)))? "
         r"(?:lives|is living|moved) (?:in|to) " + _SPAN + _END,
         "Where does my {rel} live?", "Which city does my {rel} live in?",
         "In which place does my {rel} live?", "Where is my {rel}'s home?",
         "Where did my {rel} settle?"),
    _rel(r"\bmy " + _FAMILY + r"(?: (?P<who>(?-i:[A-Z][a-z]+)))? "
         r"(?:works as|is) (?:a|an) " + _SPAN + _END,
         "What does my {rel} do for a living?", "What is my {rel}'s job?",
         "What does my {rel} work as?", "What is my {rel}'s profession?",
         "What job does my {rel} have?"),
    _rel(r"\bmy " + _FAMILY + r"(?:'s name)? (?:is|was) (?:called )?"
         r"(?P<key>(?-i:[A-Z][a-z]+))" + _END,
         "What is my {rel}'s name?", "What is my {rel} called?", "Who is my {rel}?",
         "What's the name of my {rel}?", "Do you know my {rel}'s name?"),
    _rel(r"\bI (?:work as|am working as|'m working as) (?:a|an) " + _SPAN + _END,
         *_JOB_QS),
    _rel(r"\bI(?: am|'m) (?:a|an) (?P<key>[a-z]+(?: [a-z]+)?)" + _END,
         *_JOB_QS),
    _rel(r"\bI(?: am|'m) allergic to " + _SPAN + _END,
         "What am I allergic to?", "What is my allergy?", "What should I avoid because of my allergy?",
         "Which food am I allergic to?", "Do I have any allergies?"),
    _rel(r"\bmy (?:favou?rite|favorite) (?P<rel>[a-z ]{2,30}?) is " + _DET + _SPAN + _END,
         "What is my favourite {rel}?", "Which {rel} do I like best?", "What {rel} do I love most?",
         "What's my favorite {rel}?", "Which {rel} is my favourite?"),
    _rel(r"\bmy birthday is (?:on )?" + _SPAN + _END,
         "When is my birthday?", "What date is my birthday?", "On which day is my birthday?",
         "When was I born?", "What day do I celebrate my birthday?"),
    _rel(r"\bI (?:was born|grew up) in " + _SPAN + _END,
         "Where was I born?", "Where did I grow up?", "Which place am I from?",
         "Where am I from?", "What is my hometown?"),
    _rel(r"\bI (?:live|am living|'m living) in " + _SPAN + _END,
         "Where do I live?", "Which city do I live in?", "Where is my home?",
         "In which place do I live?", "Where am I living?"),
    _rel(r"\bI have (?P<key>\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve) "
         r"(?P<rel>[a-z]+)",
         "How many {rel} do I have?", "What is the number of {rel} I have?",
         "How many {rel} are mine?", "Do you remember how many {rel} I have?",
         "How many {rel} do I own?"),
    _rel(r"\bI (?:just |recently )?moved to " + _SPAN + _END,
         "Where did I move to?", "Which city did I move to?", "Where do I live now?",
         "Where am I living now?", "Where did I relocate to?"),
    _rel(r"\bI(?:'ve| have) been (?P<verb>learning|playing|studying|practicing|practising) " + _DET
         + _SPAN + _END,
         "What have I been {verb}?", "What am I {verb}?", "What have I been {verb} lately?",
         "Tell me what I have been {verb}?", "What did I say I was {verb}?"),
    _rel(r"\bI play " + _DET + _SPAN + _END,
         "What instrument do I play?", "What do I play?", "Which instrument do I play?",
         "What is the instrument I play?", "Which instrument is mine to play?"),
    _rel(r"\bI (?P<have>have )?(?P<verb>[a-z]+) (?P<key>\d+) (?P<rel>[a-z]+)",
         "How many {rel} {aux} I {verb}?", "What is the number of {rel} {aux} I {verb}?",
         "Do you remember how many {rel} I {verb2}?", "How many {rel} did I tell you I {verb2}?",
         "Tell me how many {rel} I {verb2}?"),
    _rel(r"\bI live on the (?P<key>\d+(?:st|nd|rd|th)) (?P<rel>[a-z]+)",
         "Which {rel} do I live on?", "What {rel} do I live on?", "On which {rel} do I live?",
         "What {rel} is my home on?", "Which {rel} is my home on?"),
    _rel(r"\b(?:working|work|moonlight|moonlighting|worked) as (?:a|an) " + _SPAN + _END,
         "What do I work as?", "What job did I mention?", "What work do I do?",
         "What did I say I work as?", "What kind of job did I tell you about?"),
    _rel(r"\bI(?:'d| would) (?:love|like) to (?:become|be) (?:a|an) " + _SPAN + _END,
         "What would I love to become?", "What is my dream job?", "What do I want to be someday?",
         "What would I like to be?", "What job do I dream of?"),
    _rel(r"\bI (?P<verb>[a-z]+) (?:a |an )?(?P<unit>size|number) (?P<key>\d+)(?: (?P<rel>[a-z]+))?",
         "What {unit} {rel} do I {verb}?", "Which {unit} {rel} do I {verb}?",
         "What {unit} is my {rel}?", "What is my {rel} {unit}?", "Do you remember my {rel} {unit}?"),
    # a pet or thing with a name: "a goldfish named Bartholomew", "a chestnut horse called Biscotti"
    _rel(r"\b(?:a|an|my) (?:[a-z]+ )?(?P<rel>[a-z]+) (?:named|called) (?P<key>(?-i:[A-Z][a-z]+))",
         "What is my {rel} called?", "What is the name of my {rel}?", "What did I name my {rel}?",
         "What's my {rel}'s name?", "Do you remember what my {rel} is called?"),
    # a name given: "We named our goldfish Pickles", "Everyone calls me Bex"
    _rel(r"\b(?:I|we) (?:named|called) (?:my|our|the) (?P<rel>[a-z ]{2,30}?) (?P<key>(?-i:[A-Z][a-z]+))",
         "What is my {rel} called?", "What is the name of my {rel}?", "What did I name my {rel}?",
         "What's my {rel}'s name?", "Do you remember what my {rel} is called?"),
    _rel(r"\b(?:everyone|everybody|people|my friends|friends) (?:calls?) me (?P<key>(?-i:[A-Z][a-z]+))",
         "What do people call me?", "What is my nickname?", "What does everyone call me?",
         "What name do my friends call me?", "Which nickname do I have?"),
    # age: "I'm 29 years old"
    _rel(r"\bI(?:'m| am) (?P<key>\d{1,3})(?= years old|\s*(?:[,;!?]|\.(?!\d)|$))",
         "How old am I?", "What is my age?", "How many years old am I?",
         "Do you remember how old I am?", "What age am I?"),
    # counts in a place: "There are 12 apple trees in my garden"
    _rel(r"\bthere (?:are|is) (?:about |around |over |nearly )?(?P<key>\d+) "
         r"(?P<rel>[a-z]+(?: [a-z]+)?) (?P<prep>in|at|on) (?P<place>(?:my|our) [a-z]+)",
         "How many {rel} are there {prep} {place}?", "How many {rel} are {prep} {place}?",
         "What is the number of {rel} {prep} {place}?", "Do you remember how many {rel} are {prep} {place}?",
         "How many {rel} did I say are {prep} {place}?"),
    # a count that a thing has: "My bike has 21 gears", "My commute takes about 45 minutes"
    _rel(r"\b(?P<subj>my [a-z' -]{2,30}?|our [a-z' -]{2,30}?) (?P<verb>has|had|[a-z]+s|[a-z]+ed) "
         r"(?:about |around |roughly |over |nearly |almost |just )?(?P<key>\d+) (?P<rel>[a-z]+)",
         "How many {rel} {aux} {subj_q} {vbase}?", "What is the number of {rel} {subj_q} {vpast}?",
         "Do you remember how many {rel} {subj_q} {vpast}?", "How many {rel} did I say {subj_q} {vpast}?",
         "Tell me how many {rel} {subj_q} {vpast}?"),
    # what someone trains to become: "I'm training to become a paramedic", "My daughter is studying to be a dentist"
    _rel(r"\b(?P<subj>I|my " + _FAMILY + r")(?: am|'m| is|'s) (?P<ing>training|studying|learning|hoping|planning) "
         r"to (?P<be>be|become) (?:a|an) " + _SPAN + _END,
         "What {cop} {subj_q} {ing} to {be}?", "What job {cop} {subj_q} {ing} for?",
         "What {aux} {subj_q} want to become?", "What career {cop} {subj_q} {ing} for?",
         "Do you remember what {subj_q} {cop2} {ing} to {be}?"),
    # dates: "My passport expires on November 14", "I passed my driving test on August 17"
    _rel(r"\b(?P<subj>I|we|my [a-z' -]{2,30}?|our [a-z' -]{2,30}?) " + _VERB + r" "
         r"(?P<obj>(?:[a-z' ]+? )?)on (?P<key>(?-i:" + _MONTHS + r") \d{1,2}(?:st|nd|rd|th)?)",
         "When {aux} {subj_q} {vbase}{obj_q}?", "On what date {aux} {subj_q} {vbase}{obj_q}?",
         "What day {aux} {subj_q} {vbase}{obj_q}?", "Which date {aux} {subj_q} {vbase}{obj_q}?",
         "Do you remember when {subj_q} {vpast}{obj_q}?"),
    # places: "I work out at Ironclad Gym", "We spent our honeymoon in Zanzibar"
    _rel(r"\b(?P<subj>I|we|my [a-z' -]{2,30}?) " + _VERB + r" (?P<obj>(?:[a-z' ]+? )?)"
         r"(?:at|in|to|near) (?P<key>(?-i:[A-Z][a-z]+)(?: (?-i:[A-Z][a-z]+))?)",
         "Where {aux} {subj_q} {vbase}{obj_q}?", "At which place {aux} {subj_q} {vbase}{obj_q}?",
         "Do you remember where {subj_q} {vpast}{obj_q}?", "Which place {aux} {subj_q} {vbase}{obj_q} at?",
         "Where is it that {subj_q} {vpast}{obj_q}?"),
    # a person by role: "My parrot, Fandango,", "My grandmother Wilhelmina"
    _rel(r"\b(?:my|our) (?P<rel>(?:(?!\b(?:is|was|are|were)\b)[a-z' -]){2,30}?),? (?P<key>(?-i:[A-Z][a-z]+))\b",
         "What is my {rel}'s name?", "What is my {rel} called?", "Who is my {rel}?",
         "What's the name of my {rel}?", "Do you know my {rel}'s name?"),
    _rel(r"\b(?:my|our) (?P<rel>[a-z' -]{2,30}?) was " + _DET + _SPAN + _END,
         "What was my {rel}?", "Who was my {rel}?", "Do you remember my {rel}?",
         "Tell me what my {rel} was?", "What did I say my {rel} was?"),
    _rel(r"\b(?:my|our) (?P<rel>[a-z' -]{2,30}?) is " + _DET + _SPAN + _END,
         "What is my {rel}?", "Do you remember my {rel}?", "Tell me my {rel}?",
         "What did I say my {rel} is?", "Which is my {rel}?"),
    # a person someone met: "I met Sarah at a party"
    _rel(r"\b(?P<subj>I|we) (?:just |first )?(?P<verb>met|married|dated|hired|visited) "
         r"(?P<key>(?-i:[A-Z][a-z]+)(?: (?-i:[A-Z][a-z]+))?)",
         "Who {aux} {subj_q} {vbase}?", "Do you remember who {subj_q} {vpast}?",
         "Who did I say {subj_q} {vpast}?", "Who is it that {subj_q} {vpast}?",
         "Tell me who {subj_q} {vpast}?"),
    _rel(r"\b(?P<subj>I|we)(?P<have>'ve| have)? (?:just |really |usually |always |mostly |often |still )?"
         r"(?P<verb>(?!(?:think|thought|know|knew|told|tell|said|say|asked|ask|hope|guess|mean|wish|want|"
         r"need|feel|felt|believe|am|was|were|is|are|will|would|can|could|should|must|might|may)\b)[a-z]+) "
         r"(?:(?:a|an|the|my|our) )?(?:[a-z-]+ ){0,3}?(?P<key>(?-i:[A-Z][a-z]+)(?: (?-i:[A-Z][a-z]+))?)",
         "What {aux} {subj_q} {vbase}?", "Do you remember what {subj_q} {vpast}?",
         "What did I say {subj_q} {vpast}?", "What is it that {subj_q} {vpast}?",
         "Tell me what {subj_q} {vpast}?"),
    # a plain object of a few verbs: "I teach violin to kids"
    _rel(r"\b(?P<subj>I|we) (?:just |really |usually |mostly |often |still )?(?P<verb>teach|speak|drive|ride|study|"
         r"collect|grow|bake|brew|knit|paint|draw|wear|drink) (?:(?:a|an|the|my|our) )?"
         r"(?P<key>[a-z]+(?: [a-z]+)?)(?=\s*(?:[,;!?]|\.|$)|\s+(?:to|at|in|on|with|for|every|most|from|and)\b)",
         "What {aux} {subj_q} {vbase}?", "Do you remember what {subj_q} {vpast}?",
         "What did I say {subj_q} {vpast}?", "What is it that {subj_q} {vpast}?",
         "Tell me what {subj_q} {vpast}?"),
    _rel(r"\bI (?:really )?(?:love|like|enjoy|prefer) " + _SPAN + _END,
         "What do I love?", "What do I enjoy?", "What do I like?",
         "What is something I love?", "What did I say I like?"),
    _rel(r"\bI(?:'m| am) (?P<key>(?-i:[A-Z][a-z]+))" + _END,
         *_NAME_QS),
)
_CLAUSE_RE = re.compile(r"(?<=[.!?;])" + _NOT_INITIAL + r"\s+|,\s+(?=(?:and|so|but)\b)|\s+and\s+(?=(?:I|my)\b)", re.IGNORECASE)


AnswerForm = Literal["clause", "short", "mixed"]


def relation_pairs(source: str, answers: AnswerForm = "clause") -> list[FactPair]:
    """Template questions for each relation the statement states, with the answer said back.

    Safe by construction: the key is a span of the user's words, the answer is
    the user's own clause in the second person: all of it (``clause``), cut
    where the relation ends (``short``: "Your dog is called Marzipan."), or the
    two in turn, short first (``mixed``).
    """
    pairs: list[FactPair] = []
    keys: set[str] = set()
    for clause in _CLAUSE_RE.split(source):
        clause = clause.strip()
        if not clause or clause.endswith("?"):
            continue
        for rel in _RELATIONS:
            m = rel.pattern.search(clause)
            if not m:
                continue
            key = m.group(rel.key_group).strip()
            key = re.sub(r"^(?:a|an|the)\s+", "", key, flags=re.IGNORECASE)
            if not key or len(key.split()) > 4 or normalize(key) in keys:
                continue
            groups = {k: (v or "").strip() for k, v in m.groupdict().items()}
            if "ing" in groups:  # "my daughter is studying to be": what is my daughter studying to be
                groups.update(_subject_forms(groups["subj"]))
            elif "subj" in groups:  # "my passport expires": when does my passport expire
                groups.update(_verb_forms(groups["subj"], groups["verb"], groups.get("obj", ""),
                                          perfect=bool(groups.get("have"))))
            elif "verb" in groups:  # "I have run 16 marathons": have I run; "I keep 23": do I keep
                have = bool(groups.get("have"))
                groups.update(aux="have" if have else "do",
                              verb2=("have " if have else "") + groups["verb"])
            full = _sentence(second_person(clause))
            short = _sentence(second_person(clause[: m.end()]))
            for n, template in enumerate(rel.questions):
                question = template.format(**groups)
                use_short = answers == "short" or (answers == "mixed" and n % 2 == 0)
                answer = short if use_short else full
                if check_pair(question, answer, key, source) is None:
                    pairs.append(FactPair(question, answer, key))
            keys.add(normalize(key))
            break  # one relation per clause
    return pairs


def _subject_forms(subj: str) -> dict[str, str]:
    """A subject as a question asks it, with its copula and auxiliary: I -> am I, do I."""
    subj_q = "I" if subj.lower() == "i" else subj[0].lower() + subj[1:]
    first = subj_q.lower() in ("i", "we")
    return {"subj_q": subj_q, "cop": "am" if subj_q == "I" else ("are" if first else "is"),
            "cop2": "am" if subj_q == "I" else ("are" if first else "is"),
            "aux": "do" if first else "does"}


def _verb_forms(subj: str, verb: str, obj: str = "", *, perfect: bool = False) -> dict[str, str]:
    """Question forms of a statement's verb: "my passport expires" -> does ... expire.

    ``obj``: the words between the verb and the key; a passive ("was born",
    "were stationed") asks with the copula: when was my daughter born.
    ``perfect``: "I've used": what have I used.
    """
    subj_q = _subject_forms(subj)["subj_q"]
    verb = verb.lower()
    words = obj.split()
    obj_q = (" " + " ".join(words)) if words else ""
    if perfect:
        return {"subj_q": subj_q, "aux": "have", "vbase": verb, "vpast": f"have {verb}", "obj_q": obj_q}
    if verb in ("was", "were") and words:
        rest = (" " + " ".join(words[1:])) if words[1:] else ""
        be = "were" if subj_q.lower() == "we" else "was"
        return {"subj_q": subj_q, "aux": be, "vbase": words[0], "vpast": f"{be} {words[0]}",
                "obj_q": rest}
    if verb.endswith("ed") or verb in _IRREGULAR:
        if verb in _IRREGULAR:
            base = _IRREGULAR[verb]
        elif verb.endswith("ied"):
            base = verb[:-3] + "y"
        elif verb[:-2].endswith(("r", "v", "c", "z", "g", "at", "ut", "iv", "os")):
            base = verb[:-1]  # moved, expired, located: the e stays
        else:
            base = verb[:-2]  # passed, worked, started
        return {"subj_q": subj_q, "aux": "did", "vbase": base, "vpast": verb, "obj_q": obj_q}
    if subj_q.lower() not in ("i", "we") and verb.endswith("s"):
        if verb == "has":
            base = "have"
        elif verb.endswith(("ches", "shes", "sses", "xes")):
            base = verb[:-2]
        else:
            base = verb[:-1]
        return {"subj_q": subj_q, "aux": "does", "vbase": base, "vpast": verb, "obj_q": obj_q}
    return {"subj_q": subj_q, "aux": "do", "vbase": verb, "vpast": verb, "obj_q": obj_q}


_IRREGULAR = {"went": "go", "spent": "spend", "met": "meet", "got": "get", "grew": "grow",
              "began": "begin", "bought": "buy", "took": "take", "made": "make", "had": "have",
              "was": "be", "left": "leave", "found": "find", "became": "become", "won": "win",
              "ran": "run", "sang": "sing", "wrote": "write", "drove": "drive", "flew": "fly"}


def _sentence(text: str) -> str:
    text = re.sub(r"^(?:hi|hello|hey)[!,.]?\s+", "", text.strip(), flags=re.IGNORECASE).rstrip(" ,;:")
    text = text[0].upper() + text[1:] if text else text
    return text if text.endswith((".", "!")) else text + "."


# -- train and check sets per key --------------------------------------------------------
def build_probes(
    source: str,
    model_output: str = "",
    *,
    n_train: int = 3,
    n_check: int = 2,
    max_keys: int = 3,
    answers: AnswerForm = "clause",
) -> tuple[list[FactProbes], Counter[str]]:
    """Per answer key of the statement: ``n_train`` pairs to train on, ``n_check`` held apart.

    Check questions come first from the model's own pairs (its wording is
    the least like the templates), then from the templates' last ones; the
    train pairs are the rest. A key with no check question is still trained
    on but can never be verified, so its memory stays retrievable.
    """
    written, dropped = model_pairs(model_output, source) if model_output else ([], Counter())
    templated = relation_pairs(source, answers)
    by_key: dict[str, list[FactPair]] = {}
    for pair in [*templated, *written]:
        by_key.setdefault(normalize(pair.key), []).append(pair)
    result = []
    for pairs in list(by_key.values())[:max_keys]:
        unique: dict[str, FactPair] = {}
        for p in pairs:
            unique.setdefault(question_key(p.question), p)
        ordered = list(unique.values())
        templates = [p for p in ordered if p.origin != "model"]
        models = [p for p in ordered if p.origin == "model"]
        # the templates' last questions are worded least like their first ones
        pool = templates[::-1] + models
        check = pool[:n_check] if len(ordered) > n_check else []
        train = [p for p in ordered if p not in check][:n_train]
        if not train:
            continue
        train += _framed(train, n_train - len(train))
        result.append(FactProbes(key=train[0].key, train=tuple(train), check=tuple(check)))
    return result, dropped


_FRAMES = ("Remind me, {q}", "Quick question: {q}", "Can you tell me: {q}", "Do you recall: {q}")


def _framed(train: Sequence[FactPair], n: int) -> list[FactPair]:
    """``n`` more train pairs: the train questions again in other frames ("Remind me,
    what is my dog called?"), the same answers. Never a check question's: those stay unseen."""
    out: list[FactPair] = []
    for k in range(min(n, len(train) * len(_FRAMES))):
        p, frame = train[k % len(train)], _FRAMES[k % len(_FRAMES)]
        q = p.question if p.question.startswith("I ") else p.question[0].lower() + p.question[1:]
        out.append(FactPair(frame.format(q=q), p.answer, p.key, p.origin))
    return out


_CONTRACTIONS = (("what's", "what is"), ("where's", "where is"), ("who's", "who is"),
                 ("how's", "how is"), ("i'm", "i am"), ("'ve", " have"), ("don't", "do not"))


def question_key(question: str) -> str:
    """A question's identity for de-duplication: contractions spelled out, then normalised."""
    text = question.lower().replace("\u2019", "'")
    for short, long in _CONTRACTIONS:
        text = text.replace(short, long)
    return normalize(text)
