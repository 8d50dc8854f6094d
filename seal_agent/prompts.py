"""Few-shot completion prompts for the self-edit writer.

At 135M parameters prompt *shape* matters more than wording (FINDINGS): a
chat-style instruction gave unusable output, a plain completion prompt with
two worked examples gave usable facts, rewrites and question-answer pairs.
Each prompt ends where the model should continue.  The examples are about a
fictional person so that nothing in them can leak into a real user's facts
(and the faithfulness check drops a line that names Ana or Lisbon unless the
user said so).
"""

from __future__ import annotations

from collections.abc import Sequence

from seal_agent.types import SelfEditFormat

__all__ = [
    "DIRECTIVE_PROMPT",
    "PASSAGE_DIRECTIVE_PROMPT",
    "PASSAGE_PROBE_PROMPT",
    "PASSAGE_PROMPTS",
    "PROBE_PROMPT",
    "PROMPTS",
    "memory_system_prompt",
]

_EX1 = "My sister Ana moved to Lisbon last spring to teach chemistry."
_EX2 = "I play the bassoon in a community orchestra on Tuesdays."

IMPLICATION_PROMPT = f"""Statement: {_EX1}
Facts about the user:
- The user has a sister named Ana.
- Ana lives in Lisbon.
- Ana moved to Lisbon last spring.
- Ana teaches chemistry.

Statement: {_EX2}
Facts about the user:
- The user plays the bassoon.
- The user plays in a community orchestra.
- The orchestra meets on Tuesdays.

Statement: {{source}}
Facts about the user:
-"""

REWRITE_PROMPT = f"""Statement: {_EX1}
Rewritten: The user's sister, Ana, has lived in Lisbon since last spring, where she teaches chemistry.

Statement: {_EX2}
Rewritten: Every Tuesday the user plays bassoon with a community orchestra.

Statement: {{source}}
Rewritten:"""

QA_PROMPT = f"""Statement: {_EX1}
Q: Where does the user's sister live?
A: Lisbon
Q: What does the user's sister Ana teach?
A: Chemistry

Statement: {_EX2}
Q: What instrument does the user play?
A: The bassoon
Q: On which day does the user's orchestra meet?
A: Tuesdays

Statement: {{source}}
Q:"""

# SEAL's few-shot domain lets the model choose its own update settings.  The
# same facts prompt, closed by a "Training:" line the model fills in from a
# bounded menu (consolidation.Directive); anything off the menu falls back.
DIRECTIVE_PROMPT = f"""Statement: {_EX1}
Facts about the user:
- The user has a sister named Ana.
- Ana lives in Lisbon.
- Ana teaches chemistry.
Training: epochs=3 lr=0.0003 data=facts,statement

Statement: {_EX2}
Facts about the user:
- The user plays the bassoon.
- The orchestra meets on Tuesdays.
Training: epochs=5 lr=0.0001 data=facts

Statement: {{source}}
Facts about the user:
-"""

PROMPTS: dict[SelfEditFormat, str] = {
    SelfEditFormat.IMPLICATION: IMPLICATION_PROMPT,
    SelfEditFormat.REWRITE: REWRITE_PROMPT,
    SelfEditFormat.QA: QA_PROMPT,
}

# Probes use the question-answer shape, decoded greedily (the most likely
# question is the most useful check), and are kept apart from the self-edits.
PROBE_PROMPT = QA_PROMPT


# -- passages (documents, SQuAD): SEAL's knowledge-incorporation setting -------------
# The same completion shapes about a passage instead of a person: SEAL's
# "implications", "rewrite" and "self-QA" prompts, as two worked examples.
# The example passages are invented, so the faithfulness check drops any line
# that carries their names into a real passage's self-edit.

_PX1 = (
    "The Varnholt Canal was dug between 1821 and 1834 to link the river Ember with the port of "
    "Saltmere. It is 62 kilometres long and has 14 locks."
)
_PX2 = (
    "Orinda Vale, a botanist at the University of Kessa, described the blue fern Pteris "
    "kessana in 1902 after finding it on the island of Mora."
)

PASSAGE_IMPLICATION_PROMPT = f"""Passage: {_PX1}
Implications:
- The Varnholt Canal links the river Ember with Saltmere.
- Building the Varnholt Canal took 13 years.
- The canal was finished in 1834.
- The Varnholt Canal has 14 locks.

Passage: {_PX2}
Implications:
- Pteris kessana is a blue fern.
- Orinda Vale worked at the University of Kessa.
- Pteris kessana was found on the island of Mora.
- Pteris kessana was described in 1902.

Passage: {{source}}
Implications:
-"""

PASSAGE_REWRITE_PROMPT = f"""Passage: {_PX1}
Rewritten: Saltmere's port and the river Ember are joined by the 62-kilometre Varnholt Canal, built from 1821 to 1834, with 14 locks along the way.

Passage: {_PX2}
Rewritten: In 1902 the botanist Orinda Vale of the University of Kessa described a blue fern, Pteris kessana, which she had found on Mora.

Passage: {{source}}
Rewritten:"""

PASSAGE_QA_PROMPT = f"""Passage: {_PX1}
Q: Which port does the Varnholt Canal connect to the river Ember?
A: Saltmere
Q: How many locks does the Varnholt Canal have?
A: 14

Passage: {_PX2}
Q: Who described Pteris kessana?
A: Orinda Vale
Q: Where was Pteris kessana found?
A: On the island of Mora

Passage: {{source}}
Q:"""

PASSAGE_DIRECTIVE_PROMPT = f"""Passage: {_PX1}
Implications:
- The Varnholt Canal links the river Ember with Saltmere.
- The canal was finished in 1834.
Training: epochs=3 lr=0.0003 data=facts,statement

Passage: {_PX2}
Implications:
- Pteris kessana is a blue fern.
- Pteris kessana was found on the island of Mora.
Training: epochs=5 lr=0.0001 data=facts

Passage: {{source}}
Implications:
-"""

PASSAGE_PROMPTS: dict[SelfEditFormat, str] = {
    SelfEditFormat.IMPLICATION: PASSAGE_IMPLICATION_PROMPT,
    SelfEditFormat.REWRITE: PASSAGE_REWRITE_PROMPT,
    SelfEditFormat.QA: PASSAGE_QA_PROMPT,
    SelfEditFormat.DIRECTIVE: PASSAGE_DIRECTIVE_PROMPT,
}
PASSAGE_PROBE_PROMPT = PASSAGE_QA_PROMPT


# -- consolidation by behaviour (seal_agent/memorize.py) ------------------------------
# The model writes question/answer pairs about a statement of the user's: the
# form in which the agent will be asked (FINDINGS, "Saying facts from the
# weights"). The completion starts inside the first question, which is what
# stopped the model from leaving every line empty on dev.
FACT_QA_PROMPT = """Statement: My sister Ana moved to Lisbon last spring to teach chemistry.
Questions the user may ask later, each with a short answer:
1. Where does my sister live? | Your sister Ana lives in Lisbon.
2. What does my sister teach? | Your sister Ana teaches chemistry.
3. Which city did my sister move to? | Your sister moved to Lisbon.
4. What subject does Ana teach? | Ana teaches chemistry.
5. When did my sister move? | Your sister moved last spring.

Statement: Hi, I'm Tom. I have 2 kids and my dog is called Rex.
Questions the user may ask later, each with a short answer:
1. What is my name? | Your name is Tom.
2. How many kids do I have? | You have 2 kids.
3. What is my dog called? | Your dog is called Rex.
4. How many children do I have? | You have 2 children.
5. What's the name of my dog? | Your dog's name is Rex.

Statement: {source}
Questions the user may ask later, each with a short answer:
1. What"""

# Replay: the base model's own answers to these, trained beside the user's
# facts, keep the adapter from answering everything as if it were a user fact
# (FINDINGS: general answers 1/5 without replay and answer-only loss, 5/5 with).
_REPLAY_OPEN: tuple[str, ...] = (
    "Give me one tip for sleeping better.", "What is a verb?", "Write a short sentence about the sea.",
    "How do I boil an egg?", "Name a fruit that is red.", "What is 4 plus 4?",
    "Who wrote Romeo and Juliet?", "What is water made of?", "What is the opposite of big?",
    "Say hello in French.", "What animal says woof?", "What is a triangle?",
    "Tell me a greeting.", "What do you use to write?", "What do plants need to grow?",
    "Give me a synonym for happy.", "What is the plural of mouse?", "What is ice?",
    "How are you today?", "Suggest a name for a goldfish.", "What is the color of coal?",
    "Why do we need sleep?", "What is a library?", "How many sides does a square have?",
)
_COUNTRIES = ("Peru", "Kenya", "Sweden", "Poland", "Thailand", "Mexico", "Argentina", "Turkey",
              "India", "Cuba", "Chile", "Austria", "Belgium", "Finland", "Denmark", "Hungary",
              "Vietnam", "Nigeria", "Morocco", "Colombia")
_OPPOSITES = ("tall", "soft", "early", "heavy", "loud", "happy", "rich", "thick", "sweet", "clean",
              "strong", "near", "brave", "wide", "sharp", "quiet")
_ANIMALS = ("a horse", "an ant", "a cow", "a duck", "a snake", "a chicken", "a frog")
_THINGS = ("a tomato", "chocolate", "a carrot", "a cherry", "the moon", "an orange", "charcoal")
_SUMS = ((7, 2), (5, 3), (8, 1), (4, 4), (6, 3), (9, 2))
# The quiz-like half: short factual questions of the kinds the gate asks, taken
# in turn from each kind, none of the gate's or the benchmark's own (a unit
# test holds this). Measured on dev, 20 facts in one adapter (general
# questions the base gets right, kept): 18/24 with the 24 open prompts alone,
# 20/24 with 24 quiz prompts added, 19/24 with 64 added (and 50% more time).
_QUIZ_KINDS = (
    tuple(f"What is the capital of {c}?" for c in _COUNTRIES),
    tuple(f"What is the opposite of {w}?" for w in _OPPOSITES),
    tuple(f"How many legs does {a} have?" for a in _ANIMALS),
    tuple(f"What color is {t}?" for t in _THINGS),
    tuple(f"What is {a} plus {b}?" for a, b in _SUMS),
    ("What do you call a young sheep?", "What sound does a cat make?", "Where do penguins live?",
     "What do caterpillars turn into?", "What is the tallest animal?",
     "What is the largest animal on Earth?", "What do we call frozen rain?",
     "What is the closest planet to the Sun?"),
)
_QUIZ = tuple(q for i in range(max(map(len, _QUIZ_KINDS))) for kind in _QUIZ_KINDS
              for q in kind[i : i + 1])
REPLAY_PROMPTS: tuple[str, ...] = (*_REPLAY_OPEN, *_QUIZ)


# The gate's general-ability check: questions the default base model answers
# right (greedy, its chat format; chosen from 40 easy ones on 2026-12-03),
# with the word a right answer holds. None of them is in REPLAY_PROMPTS (they
# would be trained on) nor in the personal-facts benchmark's general set (that
# one measures what the gate does not see).
GENERAL_CHECKS: tuple[tuple[str, str], ...] = (
    ("How many legs does a dog have?", "4"),
    ("What is the capital of England?", "London"),
    ("How many seconds are in a minute?", "60"),
    ("What do cows drink?", "water"),
    ("What is the opposite of day?", "night"),
    ("What is the capital of Russia?", "Moscow"),
    ("What do bees live in?", "hive"),
    ("What is the capital of China?", "Beijing"),
    ("What color are most leaves in summer?", "green"),
    ("What is the opposite of fast?", "slow"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the opposite of wet?", "dry"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Australia?", "Canberra"),
    ("What is the opposite of young?", "old"),
    ("What is the capital of Greece?", "Athens"),
    ("What is the opposite of open?", "closed"),
    ("What is the main language spoken in Brazil?", "Portuguese"),
    ("What is the largest planet in the solar system?", "Jupiter"),
    ("Who was the first person to walk on the Moon?", "Armstrong"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What is the opposite of full?", "empty"),
    ("What is the capital of Norway?", "Oslo"),
    ("What is the opposite of north?", "south"),
)


def memory_system_prompt(base: str, header: str, footer: str, texts: Sequence[str]) -> str:
    """The agent's system message with retrieved memories (one definition, agent and gate)."""
    if not texts:
        return base
    lines = "\n".join(f"- {t}" for t in texts)
    return f"{base}\n\n{header}\n{lines}\n{footer}"
