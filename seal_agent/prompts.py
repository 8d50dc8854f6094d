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

from seal_agent.types import SelfEditFormat

__all__ = ["DIRECTIVE_PROMPT", "PROBE_PROMPT", "PROMPTS"]

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
