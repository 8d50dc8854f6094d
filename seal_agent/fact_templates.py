"""Relation templates: the questions a statement answers, found by pattern, asked in turn.

Each relation ("my sister lives in X", "I work as a X", "I have N X" ...) is
a pattern whose ``key`` group is the answer span and five question
templates that ask for it. :func:`relation_pairs` cuts a statement into
clauses, names at most one relation per clause, and says the clause back in
the second person as the answer. Safe by construction: the key is a span of
the user's words, and every pair still passes :func:`check_pair`.

Pure functions on strings: no model, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from seal_agent.fact_check import FactPair, check_pair, second_person
from seal_agent.text import normalize

__all__ = ["AnswerForm", "relation_pairs"]

AnswerForm = Literal["clause", "short", "mixed"]


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
# the same five questions serve several relations
_CALLED_QS = ("What is my {rel} called?", "What is the name of my {rel}?", "What did I name my {rel}?",
              "What's my {rel}'s name?", "Do you remember what my {rel} is called?")
_WHO_QS = ("What is my {rel}'s name?", "What is my {rel} called?", "Who is my {rel}?",
           "What's the name of my {rel}?", "Do you know my {rel}'s name?")
_WHAT_QS = ("What {aux} {subj_q} {vbase}?", "Do you remember what {subj_q} {vpast}?",
            "What did I say {subj_q} {vpast}?", "What is it that {subj_q} {vpast}?",
            "Tell me what {subj_q} {vpast}?")
_FAMILY = (r"(?P<rel>brother|sister|mother|father|mom|mum|dad|wife|husband|partner|son|daughter|"
           r"(?:best )?friend|cousin|aunt|uncle|grandmother|grandfather|grandma|grandpa|boss)")

_RELATIONS: tuple[_Relation, ...] = (
    _rel(r"\bmy name is " + _SPAN + _END,
         *_NAME_QS),
    _rel(r"\b(?:my|our) (?P<rel>[a-z' ]{2,30}?) (?:is|are) (?:called|named) " + _SPAN + _END,
         *_CALLED_QS),
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
         *_WHO_QS),
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
         *_CALLED_QS),
    # a name given: "We named our goldfish Pickles", "Everyone calls me Bex"
    _rel(r"\b(?:I|we) (?:named|called) (?:my|our|the) (?P<rel>[a-z ]{2,30}?) (?P<key>(?-i:[A-Z][a-z]+))",
         *_CALLED_QS),
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
         *_WHO_QS),
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
         *_WHAT_QS),
    # a plain object of a few verbs: "I teach violin to kids"
    _rel(r"\b(?P<subj>I|we) (?:just |really |usually |mostly |often |still )?(?P<verb>teach|speak|drive|ride|study|"
         r"collect|grow|bake|brew|knit|paint|draw|wear|drink) (?:(?:a|an|the|my|our) )?"
         r"(?P<key>[a-z]+(?: [a-z]+)?)(?=\s*(?:[,;!?]|\.|$)|\s+(?:to|at|in|on|with|for|every|most|from|and)\b)",
         *_WHAT_QS),
    _rel(r"\bI (?:really )?(?:love|like|enjoy|prefer) " + _SPAN + _END,
         "What do I love?", "What do I enjoy?", "What do I like?",
         "What is something I love?", "What did I say I like?"),
    _rel(r"\bI(?:'m| am) (?P<key>(?-i:[A-Z][a-z]+))" + _END,
         *_NAME_QS),
)
_CLAUSE_RE = re.compile(r"(?<=[.!?;])" + _NOT_INITIAL + r"\s+|,\s+(?=(?:and|so|but)\b)|\s+and\s+(?=(?:I|my)\b)", re.IGNORECASE)



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
