"""Scoring a model state on probe questions, with the memory *not* in context.

Two scorers, one interface (``score(model, probes) -> per-probe scores``):

* ``loglik``: the gold answer's mean per-token log-probability after the
  question, in the agent's own chat format.  One batched forward pass; smooth;
  it moves at 135M where greedy answers barely do (FINDINGS).
* ``quality``: greedy answers scored by SQuAD-style contains-answer and token
  F1 (the better of the two).  What a user sees, but nearly always 0 for a
  small model before training, so its rewards are mostly ties.

The reward of a candidate self-edit is ``mean(after) - mean(before)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from seal_agent.models.base import GenerationParams
from seal_agent.text import normalize
from seal_agent.types import Message

__all__ = [
    "LoglikScorer",
    "QualityScorer",
    "Scorer",
    "contains_answer",
    "make_scorer",
    "token_f1",
]

QA = tuple[str, str]  # (question, gold answer)


class Scorer(Protocol):
    name: str

    def score(self, model: Any, probes: Sequence[QA]) -> list[float]: ...


def contains_answer(prediction: str, gold: str) -> float:
    """1.0 if the normalised gold answer occurs in the normalised prediction."""
    g = normalize(gold)
    return float(bool(g) and f" {g} " in f" {normalize(prediction)} ")


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 after normalisation."""
    p, g = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


class _ChatFormat:
    """Questions formatted as the agent would see them, without memories."""

    def __init__(self, tokenizer: Any, system_prompt: str) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt

    def prompt(self, question: str) -> str:
        messages = [
            Message(role="system", content=self.system_prompt).model_dump(),
            Message(role="user", content=question).model_dump(),
        ]
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )


class LoglikScorer(_ChatFormat):
    name = "loglik"

    def score(self, model: Any, probes: Sequence[QA]) -> list[float]:
        import torch

        if not probes:
            return []
        tok = self.tokenizer
        rows, spans = [], []
        for question, answer in probes:
            prompt_ids = tok(self.prompt(question), add_special_tokens=False)["input_ids"]
            answer_ids = tok(answer.strip(), add_special_tokens=False)["input_ids"]
            rows.append(prompt_ids + answer_ids)
            spans.append((len(prompt_ids), len(prompt_ids) + len(answer_ids)))
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id
        device = next(model.parameters()).device  # cpu, or the GPU the trainer runs on
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        scores = []
        for i, (start, end) in enumerate(spans):
            targets = ids[i, start:end]
            # the token at position t is predicted by the logits at t - 1
            picked = logp[i, start - 1 : end - 1].gather(1, targets[:, None])[:, 0]
            scores.append(float(picked.mean()) if len(targets) else 0.0)
        return scores


class QualityScorer(_ChatFormat):
    name = "quality"

    def __init__(self, tokenizer: Any, system_prompt: str, max_new_tokens: int = 24) -> None:
        super().__init__(tokenizer, system_prompt)
        self.max_new_tokens = max_new_tokens

    def answers(self, model: Any, questions: Sequence[str]) -> list[str]:
        from seal_agent.models.transformers_lm import generate

        params = GenerationParams(max_new_tokens=self.max_new_tokens, stop=("\n",))
        context = int(getattr(model.config, "max_position_embeddings", 2048))
        return generate(model, self.tokenizer, [self.prompt(q) for q in questions], params, context)

    def score(self, model: Any, probes: Sequence[QA]) -> list[float]:
        if not probes:
            return []
        predictions = self.answers(model, [q for q, _ in probes])
        return [
            max(contains_answer(p, gold), token_f1(p, gold))
            for p, (_, gold) in zip(predictions, probes, strict=True)
        ]


def make_scorer(
    kind: Literal["loglik", "quality"], tokenizer: Any, system_prompt: str
) -> Scorer:
    if kind == "loglik":
        return LoglikScorer(tokenizer, system_prompt)
    return QualityScorer(tokenizer, system_prompt)
