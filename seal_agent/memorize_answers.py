"""What a model state says: greedy answers in the agent's chat format.

Recall-mode consolidation (memorize.py) judges a memory by what the trainer's
current state answers when asked as the agent would be asked: with nothing in
context (said from the weights) or with what stays retrievable (memory on).
The bare base model's answers to fixed prompts (replay, general questions)
never change for one model and decoding, so they are cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from seal_agent.models.base import GenerationParams
from seal_agent.prompts import memory_system_prompt
from seal_agent.types import Message

if TYPE_CHECKING:
    from seal_agent.consolidation import Consolidator

__all__ = ["ANSWER", "Answerer"]

ANSWER = GenerationParams(max_new_tokens=32)  # greedy: the key comes early in a short answer


class Answerer:
    """Asks the trainer's current state (or the bare base) questions, as the agent would."""

    def __init__(self, cons: Consolidator) -> None:
        self.cons = cons
        self.config = cons.config

    def prompt(self, question: str, memories: Sequence[str] = ()) -> str:
        """The agent's chat prompt for ``question``, with ``memories`` in its system prompt."""
        agent = self.config.agent
        system = memory_system_prompt(agent.system_prompt, agent.memory_header,
                                      agent.memory_footer, memories)
        messages = [Message(role="system", content=system).model_dump(),
                    Message(role="user", content=question).model_dump()]
        return str(self.cons.base.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True))

    def answers(self, prompts: Sequence[str], batch: int = 32) -> list[str]:
        """Greedy answers of the trainer's current state to ready-made prompts.

        Prompts of like length share a batch, so little of it is padding:
        1.6x the answers per second of batches of 16 in the order asked, the
        same answers (benchmarks/answer_speed.py).
        """
        from seal_agent.models.transformers_lm import generate

        tok = self.cons.base.tokenizer
        model = self.cons.trainer.model
        ctx = int(getattr(model.config, "max_position_embeddings", 2048))
        order = sorted(range(len(prompts)), key=lambda i: len(tok(
            prompts[i], add_special_tokens=False)["input_ids"]))
        out: dict[int, str] = {}
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            out.update(zip(idx, generate(model, tok, [prompts[i] for i in idx], ANSWER, ctx),
                           strict=True))
        return [out[i] for i in range(len(prompts))]

    def base_answers(self, prompts: Sequence[str]) -> list[str]:
        """The bare base model's greedy answers, cached in the model cache folder.

        The same model, prompts and decoding give the same answers: computing
        them once per memory home saves each run ~10 s of decoding.
        """
        key = hashlib.sha256(json.dumps(
            [self.config.model.name, str(self.cons.base.source), ANSWER.model_dump(), list(prompts)]
        ).encode()).hexdigest()[:16]
        path = self.config.model_cache_dir / f"base-answers-{key}.json"
        try:
            cached = json.loads(path.read_text())
            if isinstance(cached, list) and len(cached) == len(prompts):
                return [str(x) for x in cached]
        except (OSError, ValueError):
            pass
        self.cons.trainer.reset(None)
        answers = self.answers(prompts)
        try:  # a cache: written atomically, and a failure to write is no failure
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(answers))
            os.replace(tmp, path)
        except OSError:
            pass
        return answers
