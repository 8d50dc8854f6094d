"""Training text as packed rows: tokenize, pack, mask.

Several short sequences share one row: their positions restart at 0 and a
block-diagonal causal mask keeps them apart, so almost no compute is spent
on padding. Padding that remains is never in the loss (SEAL's own code left
it in; we do not copy that). A (prompt, completion) example keeps its
prompt as context only: its tokens are no targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from seal_agent.errors import InputError
from seal_agent.training.settings import TrainExample

if TYPE_CHECKING:
    import torch

__all__ = ["Rows", "block_mask", "encode_examples", "pack", "tokenize"]

# A packed row's slots cost 1 + length / (ROW_COST_WIDTHS x hidden) each: attention
# (and its mask) grows with the row. Measured on SmolLM2-135M (hidden 576): a
# 128-token row costs 13% more per slot than a 64-token row.
ROW_COST_WIDTHS = 0.75


def tokenize(tokenizer: Any, sequences: Sequence[str], max_seq_len: int) -> list[list[int]]:
    """Token ids with EOS appended (the model learns where a fact ends), truncated."""
    # A wrong argument type is the calling code's bug, not bad input, so it stays a
    # builtin TypeError as in Python itself; the SealAgentError tree is for bad text,
    # settings and state. The callers are the SDK's own loops, never a user's text.
    # The check exists because one str type-checks as a Sequence[str].
    if isinstance(sequences, str):
        raise TypeError("sequences must be a list of strings, not one string")
    if not sequences:
        raise InputError("nothing to train on: no sequences")
    eos = tokenizer.eos_token_id
    # one batched call; special tokens (a BOS, if the model has one) as the model expects them
    ids = tokenizer(list(sequences), truncation=True, max_length=max_seq_len)["input_ids"]
    out = [(x + [eos])[:max_seq_len] for x in ids]
    out = [x for x in out if len(x) >= 2]  # a lone token predicts nothing
    if not out:
        raise InputError("nothing to train on: every sequence is empty")
    return out


def encode_examples(
    tokenizer: Any, examples: Sequence[str | TrainExample], max_seq_len: int
) -> tuple[list[list[int]], list[int], list[float], list[bool] | None]:
    """Token ids, the number of leading prompt tokens (no loss), a weight per example,
    and which examples are distilled (None: none is).

    Prompt and completion are tokenized apart and joined, exactly the ids a
    sampler saw (prompt) and produced (completion). A too-long example loses
    tokens from the *start* of its prompt: the completion is what is learned.
    """
    if not examples:
        raise InputError("nothing to train on: no sequences")
    eos = tokenizer.eos_token_id
    seqs: list[list[int]] = []
    masked: list[int] = []
    weights: list[float] = []
    soft: list[bool] = []
    for ex in examples:
        if isinstance(ex, str):
            ex = TrainExample(prompt="", completion=ex)
        if not isinstance(ex, TrainExample):  # a caller's bug: TypeError (see tokenize)
            raise TypeError(f"expected str or TrainExample, got {type(ex).__name__}")
        prompt = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"] if ex.prompt else []
        completion = tokenizer(ex.completion, add_special_tokens=False)["input_ids"] + [eos]
        completion = completion[: max_seq_len - 1]  # room for one token of context at least
        prompt = prompt[max(0, len(prompt) + len(completion) - max_seq_len) :]
        ids = prompt + completion
        if len(ids) < 2 or (not prompt and len(completion) < 2):
            continue  # predicts nothing
        seqs.append(ids)
        masked.append(len(prompt))
        weights.append(float(ex.weight))
        soft.append(ex.distill)
    if not seqs:
        raise InputError("nothing to train on: every example is empty")
    return seqs, masked, weights, (soft if any(soft) else None)


def pack(
    seqs: list[list[int]],
    pad_id: int,
    hidden: int,
    masked: list[int] | None = None,
    weights: list[float] | None = None,
    soft: list[bool] | None = None,
) -> Rows:
    """Pack sequences into rows (first fit, longest first) at the cheapest row length.

    ``hidden``: the model's width, which sets how much longer rows cost per slot.
    """
    longest = max(len(s) for s in seqs)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    shortest_row = round_up(longest, 16)
    best: tuple[float, int, list[list[int]]] | None = None
    for row_len in range(shortest_row, max(2 * shortest_row, 128) + 1, 16):
        rows = first_fit([len(seqs[i]) for i in order], row_len)
        # padding slots cost as much as real ones; longer rows cost more per slot
        cost = len(rows) * row_len * (1 + row_len / (ROW_COST_WIDTHS * hidden))
        if best is None or cost < best[0]:
            best = (cost, row_len, [[order[j] for j in row] for row in rows])
    assert best is not None
    _, row_len, layout = best
    return Rows.build(seqs, layout, row_len, pad_id, masked=masked, weights=weights, soft=soft)


def block_mask(batch: Rows, as_bool: bool) -> torch.Tensor:
    """Block-diagonal causal mask: a token sees earlier tokens of its own sequence only.

    ``as_bool``: sdpa takes a boolean mask; eager attention adds the mask to
    the scores, so it gets a float one (0 or the most negative float).
    """
    import torch

    length = batch.ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=batch.ids.device).tril()
    mask: torch.Tensor = (batch.seg[:, :, None] == batch.seg[:, None, :]) & causal
    mask = mask[:, None]  # (rows, 1, length, length): one mask for all heads
    if not as_bool:
        mask = torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, torch.finfo(torch.float32).min)
    return mask


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def first_fit(lengths: list[int], row_len: int) -> list[list[int]]:
    """Indices into ``lengths`` grouped into rows of at most ``row_len`` tokens."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i, n in enumerate(lengths):
        for r, room in enumerate(free):
            if n <= room:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(row_len - n)
    return rows


class Rows:
    """Packed rows as tensors: token ids, positions, segment ids and shifted targets."""

    def __init__(
        self, ids: Any, pos: Any, seg: Any, targets: Any, tokens: int, weights: Any = None
    ) -> None:
        self.ids, self.pos, self.seg, self.targets, self.tokens = ids, pos, seg, targets, tokens
        self.weights = weights  # per-target loss weight; None: all 1 (the plain path)
        self.soft: Any = None  # per slot: its target is the base's distribution; None: no slot is
        self.teacher: Any = None  # the base's hidden state per slot (rows, length, hidden)

    @classmethod
    def build(
        cls,
        seqs: list[list[int]],
        layout: list[list[int]],
        row_len: int,
        pad_id: int,
        *,
        masked: list[int] | None = None,
        weights: list[float] | None = None,
        soft: list[bool] | None = None,
    ) -> Rows:
        """``masked[i]``: leading tokens of sequence i that are context only (a prompt);
        ``weights[i]``: the loss weight of its targets; ``soft[i]``: its targets are
        distilled."""
        import torch

        shape = (len(layout), row_len)
        ids = torch.full(shape, pad_id, dtype=torch.long)
        pos = torch.zeros(shape, dtype=torch.long)
        seg = torch.zeros(shape, dtype=torch.long)
        targets = torch.full(shape, -100, dtype=torch.long)
        tw = torch.zeros(shape, dtype=torch.float32) if weights is not None else None
        sm = torch.zeros(shape, dtype=torch.bool) if soft is not None else None
        for r, row in enumerate(layout):
            start = 0
            for s, i in enumerate(row):
                seq = torch.tensor(seqs[i])
                end = start + len(seq)
                ids[r, start:end] = seq
                pos[r, start:end] = torch.arange(len(seq))  # each sequence starts at position 0
                seg[r, start:end] = s
                targets[r, start : end - 1] = seq[1:]  # the last token has no target in its sequence
                if masked is not None and masked[i] > 1:
                    # position t predicts token t + 1: prompt tokens 1..m-1 are no targets; the
                    # last prompt position predicts the first completion token and stays
                    targets[r, start : start + masked[i] - 1] = -100
                if tw is not None:
                    tw[r, start:end] = weights[i]  # type: ignore[index]
                if sm is not None and soft[i]:  # type: ignore[index]
                    sm[r, start:end] = True
                start = end
            # the tail padding is a segment of its own: it attends to itself (no empty softmax
            # row, hence no NaN that could leak into the LoRA grads) and has no targets
            pos[r, start:] = torch.arange(row_len - start)
            seg[r, start:] = len(row)
        out = cls(ids, pos, seg, targets, sum(len(s) for s in seqs), tw)
        out.soft = sm
        return out

    def select(self, rows: Any) -> Rows:
        ids, pos, seg, targets = (t.index_select(0, rows) for t in (self.ids, self.pos, self.seg, self.targets))
        weights = None if self.weights is None else self.weights.index_select(0, rows)
        out = Rows(ids, pos, seg, targets, tokens=0, weights=weights)
        out.soft = None if self.soft is None else self.soft.index_select(0, rows)
        out.teacher = None if self.teacher is None else self.teacher.index_select(0, rows)
        return out

    def to(self, device: Any) -> Rows:
        """These rows on ``device`` (themselves on CPU: packing happens there)."""
        if device.type == "cpu":
            return self
        ids, pos, seg, targets = (t.to(device) for t in (self.ids, self.pos, self.seg, self.targets))
        weights = None if self.weights is None else self.weights.to(device)
        out = Rows(ids, pos, seg, targets, tokens=self.tokens, weights=weights)
        out.soft = None if self.soft is None else self.soft.to(device)
        out.teacher = None if self.teacher is None else self.teacher.to(device)
        return out

