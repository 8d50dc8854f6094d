"""Training text as packed rows: tokenize, pack, mask.

Several short sequences share one row: their positions restart at 0 and a
block-diagonal causal mask keeps them apart, so almost no compute is spent
on padding. Padding that remains is never in the loss (SEAL's own code left
it in; we do not copy that). A (prompt, completion) example keeps its
prompt as context only: its tokens are no targets.

Prompts in the agent's chat format all begin with the same tokens (the
system prompt and the user turn's header: 17 of a 29-token question on
SmolLM2). A row holds that prefix once, at its start, and each prompted
sequence in the row attends to it as if it were its own first tokens, at the
same positions (:func:`shared_prefix`). The prefix's hidden states depend only
on the prefix (causal attention), so this is the same computation as each
sequence alone, the prefix's gradient the sum of theirs; a 20-fact recall
batch needs 23% fewer slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from seal_agent.errors import InputError
from seal_agent.training.settings import TrainExample

if TYPE_CHECKING:
    import torch

__all__ = ["Rows", "block_mask", "encode_examples", "pack", "shared_prefix", "tokenize"]

# A packed row's slots cost 1 + length / (ROW_COST_WIDTHS x hidden) each: attention
# (and its mask) grows with the row. Measured on SmolLM2-135M (hidden 576): a
# 128-token row costs 13% more per slot than a 64-token row.
ROW_COST_WIDTHS = 0.75
# a shared prefix shorter than this is not worth its slot in every row
MIN_SHARED_PREFIX = 8
PREFIX_SEGMENT = -1  # the segment id of a row's shared prefix


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


def shared_prefix(seqs: list[list[int]], masked: list[int] | None) -> int:
    """How many leading tokens every prompted sequence shares, all of them context.

    The longest common prefix of the sequences with a prompt (``masked[i] > 0``),
    cut so that no token of it is a target (at most ``masked[i] - 1`` tokens); 0
    when fewer than two sequences have a prompt or the prefix is short.
    """
    if masked is None:
        return 0
    prompted = [i for i, m in enumerate(masked) if m > 0]
    if len(prompted) < 2:
        return 0
    first = seqs[prompted[0]]
    n = min(masked[i] - 1 for i in prompted)
    for i in prompted[1:]:
        other = seqs[i]
        k = 0
        while k < n and other[k] == first[k]:
            k += 1
        n = k
        if n < MIN_SHARED_PREFIX:
            return 0
    return n if n >= MIN_SHARED_PREFIX else 0


def pack(
    seqs: list[list[int]],
    pad_id: int,
    hidden: int,
    masked: list[int] | None = None,
    weights: list[float] | None = None,
    soft: list[bool] | None = None,
    *,
    share: bool = True,
) -> Rows:
    """Pack sequences into rows (first fit, longest first) at the cheapest row length.

    ``hidden``: the model's width, which sets how much longer rows cost per slot.
    ``share``: prompted sequences share their common prefix, once per row
    (:func:`shared_prefix`).
    """
    prefix = shared_prefix(seqs, masked) if share else 0
    sizes = [len(s) - _skip(masked, i, prefix) for i, s in enumerate(seqs)]
    longest = max(sizes)
    order = sorted(range(len(seqs)), key=lambda i: -sizes[i])
    shortest_row = round_up(longest + prefix, 16)
    best: tuple[float, int, list[list[int]]] | None = None
    for row_len in range(shortest_row, max(2 * shortest_row, 128) + 1, 16):
        rows = first_fit([sizes[i] for i in order], row_len - prefix)
        # padding slots cost as much as real ones; longer rows cost more per slot
        cost = len(rows) * row_len * (1 + row_len / (ROW_COST_WIDTHS * hidden))
        if best is None or cost < best[0]:
            best = (cost, row_len, [[order[j] for j in row] for row in rows])
    assert best is not None
    _, row_len, layout = best
    return Rows.build(seqs, layout, row_len, pad_id, masked=masked, weights=weights, soft=soft,
                      prefix=prefix)


def _skip(masked: list[int] | None, i: int, prefix: int) -> int:
    """How many leading tokens of sequence ``i`` the row's shared prefix holds for it."""
    return prefix if prefix and masked is not None and masked[i] > 0 else 0


def block_mask(batch: Rows, as_bool: bool) -> torch.Tensor:
    """Block-diagonal causal mask: a token sees earlier tokens of its own sequence only,
    and a sequence that shares the row's prefix sees that too.

    ``as_bool``: sdpa takes a boolean mask; eager attention adds the mask to
    the scores, so it gets a float one (0 or the most negative float).
    """
    import torch

    length = batch.ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=batch.ids.device).tril()
    mask: torch.Tensor = (batch.seg[:, :, None] == batch.seg[:, None, :]) & causal
    if batch.reach is not None:  # the prefix is at the row's start: earlier than every reader
        mask |= batch.reach[:, :, None] & (batch.seg == PREFIX_SEGMENT)[:, None, :]
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
        self.reach: Any = None  # per slot: it sees the row's shared prefix; None: no row has one

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
        prefix: int = 0,
    ) -> Rows:
        """``masked[i]``: leading tokens of sequence i that are context only (a prompt);
        ``weights[i]``: the loss weight of its targets; ``soft[i]``: its targets are
        distilled; ``prefix``: the leading tokens every prompted sequence shares, held
        once at the start of each row (0: none; see :func:`shared_prefix`)."""
        import torch

        shape = (len(layout), row_len)
        ids = torch.full(shape, pad_id, dtype=torch.long)
        pos = torch.zeros(shape, dtype=torch.long)
        seg = torch.zeros(shape, dtype=torch.long)
        targets = torch.full(shape, -100, dtype=torch.long)
        tw = torch.zeros(shape, dtype=torch.float32) if weights is not None else None
        sm = torch.zeros(shape, dtype=torch.bool) if soft is not None else None
        reach = torch.zeros(shape, dtype=torch.bool) if prefix else None
        shared = torch.tensor(seqs[next(i for i, m in enumerate(masked or []) if m > 0)][:prefix]) \
            if prefix else None
        for r, row in enumerate(layout):
            start = 0
            if shared is not None:  # the prefix once; it predicts nothing (it is all prompt)
                ids[r, :prefix] = shared
                pos[r, :prefix] = torch.arange(prefix)
                seg[r, :prefix] = PREFIX_SEGMENT
                start = prefix
            for s, i in enumerate(row):
                skip = _skip(masked, i, prefix)
                seq = torch.tensor(seqs[i])
                end = start + len(seq) - skip
                ids[r, start:end] = seq[skip:]
                pos[r, start:end] = torch.arange(skip, len(seq))  # positions as if alone
                seg[r, start:end] = s
                targets[r, start : end - 1] = seq[skip + 1 :]  # the last token has no target
                if masked is not None and masked[i] > 1:
                    # position t predicts token t + 1: prompt tokens 1..m-1 are no targets; the
                    # last prompt position predicts the first completion token and stays
                    targets[r, start : start + masked[i] - 1 - skip] = -100
                if reach is not None and skip:
                    reach[r, start:end] = True
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
        out.reach = reach
        return out

    def select(self, rows: Any) -> Rows:
        ids, pos, seg, targets = (t.index_select(0, rows) for t in (self.ids, self.pos, self.seg, self.targets))
        weights = None if self.weights is None else self.weights.index_select(0, rows)
        out = Rows(ids, pos, seg, targets, tokens=0, weights=weights)
        out.soft = None if self.soft is None else self.soft.index_select(0, rows)
        out.teacher = None if self.teacher is None else self.teacher.index_select(0, rows)
        out.reach = None if self.reach is None else self.reach.index_select(0, rows)
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
        out.reach = None if self.reach is None else self.reach.to(device)
        return out

