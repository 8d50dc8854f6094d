"""LoRA training for the inner loop: one base model, wrapped once, many candidates.

The reward loop trains a fresh temporary LoRA for every candidate self-edit
and scores it. Reloading or re-wrapping the base for each candidate would cost
more than the training itself, so :class:`LoraTrainer` wraps the base with
PEFT once and moves between candidates by copying the LoRA tensors
(:meth:`LoraTrainer.state` / :meth:`LoraTrainer.reset`).

Throughput comes from four choices, each measured on 2 CPU cores
(``benchmarks/inner_loop.py``; 2.9x the naive batch-1 loop there):

* Sequences are *packed*: several short self-edit lines share one row, their
  positions restart at 0 and a block-diagonal causal mask keeps them apart,
  so almost no compute is spent on padding. Padding that remains is never in
  the loss (SEAL's own code left it in; we do not copy that).
* The loss runs through the frozen output head in chunks with its gradient
  computed on the spot (``HeadLoss``), so the ``tokens x vocab`` logits
  (300 MB at 1,500 tokens) are never materialised, filled or soft-maxed whole.
* While training, each LoRA linear adds its update with one ``addmm`` instead
  of PEFT's separate scale and sum (:func:`_fused_lora_forward`).
* Matrix products run in bf16 only where this CPU multiplies bf16 faster than
  fp32: some do (AMD Zen 4: 2.3x), some do not (Xeon without AMX: 0.5x), so the
  default probes it once per process. LoRA weights and AdamW state stay fp32.
  On a GPU the trainer follows the base model's device: autocast there, bf16
  when the GPU supports it.

Fewer, larger batches raise tokens/s but take fewer optimizer steps: on ~40
self-edit lines, ``batch_tokens=256`` ran 14% slower than 2048 yet took 5x
the steps and ended 3 epochs at a far lower loss. Choose the budget for
learning, not for the throughput number.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from seal_agent.errors import AdapterNotFoundError, ConfigError, CorruptAdapterError, InputError
from seal_agent.types import FrozenModel

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_NAME",
    "ADAPTER_WEIGHTS",
    "LoraSettings",
    "LoraTrainer",
    "TrainExample",
    "TrainSettings",
    "TrainStats",
    "bf16_is_faster",
]

ADAPTER_NAME = "scratch"  # the one PEFT adapter every candidate is trained in
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # PEFT's own file names, so PEFT can load ours
ADAPTER_CONFIG = "adapter_config.json"
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# A packed row's slots cost 1 + length / (ROW_COST_WIDTHS x hidden) each: attention
# (and its mask) grows with the row. Measured on SmolLM2-135M (hidden 576): a
# 128-token row costs 13% more per slot than a 64-token row.
ROW_COST_WIDTHS = 0.75
HEAD_CHUNK = 128  # loss rows per head chunk: 128 x 49152 fp32 logits = 25 MB, reused


class LoraSettings(FrozenModel):
    """The adapter's shape: fixed for the trainer's lifetime (it is wrapped once)."""

    r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scale numerator: updates are scaled alpha / r.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(
        ALL_PROJECTIONS, min_length=1, description="Module names that get an adapter."
    )


class TrainSettings(FrozenModel):
    """One training run: a candidate's inner loop, or the adapter update."""

    epochs: int = Field(3, ge=1, le=1000)
    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Peak learning rate.")
    batch_tokens: int = Field(
        2048, ge=16, description="Token budget of one batch (rows x row length, padding included)."
    )
    max_seq_len: int = Field(256, ge=2, description="Longer sequences are truncated (EOS included).")
    warmup_steps: int | None = Field(None, ge=0, description="Linear warm-up steps; excludes warmup_fraction.")
    warmup_fraction: float | None = Field(
        None, ge=0.0, le=1.0, description="Warm-up as a fraction of all steps; default 0.1."
    )
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warm-up (towards zero at the end)."
    )
    grad_clip: float | None = Field(1.0, gt=0.0, description="Max global grad norm; None: no clipping.")
    weight_decay: float = Field(0.0, ge=0.0)
    bf16: bool | None = Field(
        None,
        description="bf16 autocast for the matrix products; None: on CPU only if it "
        "multiplies bf16 faster than fp32 (probed once per process), on CUDA if it supports bf16.",
    )
    seed: int | None = Field(0, description="Seeds batch order and dropout; None: not seeded.")

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainSettings:
        if self.warmup_steps is not None and self.warmup_fraction is not None:
            raise ConfigError("give warmup_steps or warmup_fraction, not both")
        return self

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps of a run of ``total_steps``."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        fraction = 0.1 if self.warmup_fraction is None else self.warmup_fraction
        return int(fraction * total_steps)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Linear warm-up, then cosine or linear decay; never exactly zero on a step taken."""
        warmup = self.warmup_for(total_steps)
        if step < warmup:
            return self.lr * (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)  # in [0, 1): the last step > 0
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.schedule == "linear":
            return self.lr * (1.0 - progress)
        return self.lr


@dataclass(frozen=True)
class TrainExample:
    """A (prompt, completion) pair: only the completion's tokens carry loss.

    Policy training teaches the self-edit writer *what to write after* a
    prompt; the few-shot prompt itself (hundreds of tokens, the same for every
    example) must not be learned. ``weight`` scales the example's token losses:
    1 for supervised fine-tuning, the group-relative advantage for GRPO
    (negative: make this completion less likely).
    """

    prompt: str
    completion: str
    weight: float = 1.0
    # Learn the *base* model's whole next-token distribution at each completion
    # token (self-distillation: the loss is the KL divergence from the base, so it
    # is zero until the adapter moves the base there), not the completion's tokens.
    # Replay uses it: it holds the base's behaviour without sharpening it.
    distill: bool = False


class TrainStats(FrozenModel):
    """What one :meth:`LoraTrainer.train` call did."""

    tokens: int = Field(description="Real (non-pad) tokens processed, summed over epochs.")
    padded_tokens: int = Field(description="Token slots processed, padding included.")
    steps: int
    seconds: float
    first_loss: float = Field(description="Mean token loss of the first step.")
    last_loss: float = Field(description="Mean token loss of the last step.")
    losses: list[float] = Field(description="Mean token loss of every step, in order.")
    epoch_losses: list[float] = Field(description="Token-weighted mean loss of each epoch.")
    bf16: bool = Field(description="Whether the matrix products ran in bf16.")


@functools.cache
def bf16_is_faster() -> bool:
    """Whether this CPU multiplies bf16 matrices clearly faster than fp32 ones.

    Measured, not guessed from CPU flags: AVX512-BF16 without AMX runs bf16
    products at half the fp32 speed, Zen 4 at twice it. Costs ~30 ms, once.
    """
    import torch

    a, b = torch.randn(512, 576), torch.randn(576, 1536)  # one MLP product of the 135M model

    def best(x: torch.Tensor, y: torch.Tensor) -> float:
        x @ y  # first call builds the kernel
        times = []
        for _ in range(3):
            start = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a.bfloat16(), b.bfloat16()) < 0.9 * best(a, b)  # 10% margin: autocast costs casts


def _bf16_default(device_type: str) -> bool:
    """bf16 autocast by default: on CPU where measured faster, on CUDA where supported."""
    if device_type == "cpu":
        return bf16_is_faster()
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return False  # mps: autocast to bf16 is not supported everywhere


class LoraTrainer:
    """One base model, wrapped with PEFT once, trained again and again.

    The base is modified in place (PEFT injects its LoRA layers), so give the
    trainer a model that nothing else uses for generation, or accept that the
    scratch adapter is active there too.
    """

    def __init__(self, model: Any, tokenizer: Any, lora: LoraSettings | None = None) -> None:
        from peft import LoraConfig, PeftModel, get_peft_model
        from peft.tuners.lora import Linear as LoraLinear

        if isinstance(model, PeftModel):
            raise ConfigError("LoraTrainer wraps a plain transformers model, got a PeftModel")
        self.lora = lora or LoraSettings()
        self.tokenizer = tokenizer
        self._config = LoraConfig(
            r=self.lora.r,
            lora_alpha=self.lora.alpha,  # type: ignore[arg-type]  # peft annotates int, takes float
            lora_dropout=self.lora.dropout,
            target_modules=list(self.lora.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        for param in model.parameters():
            param.requires_grad_(False)  # only LoRA trains; the base gets no grads, no optimizer state
        try:
            self._peft = get_peft_model(model, self._config, adapter_name=ADAPTER_NAME)
        except ValueError as exc:  # e.g. a target module the model does not have
            raise ConfigError(f"cannot wrap the model with LoRA: {exc}") from exc
        self._peft.eval()
        # Live LoRA tensors under PEFT's saved names ("...q_proj.lora_A.weight"), so a
        # state, a saved file and PEFT's own adapters share one key set.
        self._params: dict[str, torch.nn.Parameter] = {
            name.replace(f".{ADAPTER_NAME}.", "."): param
            for name, param in self._peft.named_parameters()
            if param.requires_grad
        }
        if not self._params:
            raise ConfigError(f"no LoRA parameters: no module matches {self.lora.target_modules}")
        # plain LoRA linears get a fused forward while training (see _fused_lora_forward)
        self._lora_layers = [m for m in self._peft.modules() if type(m) is LoraLinear]
        base = self._peft.get_base_model()
        self._decoder, self._head = _decoder_and_head(base)
        impl = getattr(base.config, "_attn_implementation", None) or "sdpa"
        if impl not in ("sdpa", "eager"):
            raise ConfigError(f"packed training needs sdpa or eager attention, the model uses {impl!r}")
        self._bool_mask = impl == "sdpa"  # eager adds the mask to the scores: it must be float
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._hidden = int(getattr(base.config, "hidden_size"))  # noqa: B009  # untyped config
        # the base's device decides where batches go and which autocast runs (cpu, cuda, mps)
        self.device = next(iter(self._params.values())).device

    # -- the adapter -----------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The PEFT-wrapped model with the scratch adapter active (for scoring)."""
        return self._peft

    @property
    def can_distill(self) -> bool:
        """Whether ``TrainExample.distill`` works here (a plain, bias-free output head)."""
        return self._head is not None

    @contextmanager
    def disabled(self) -> Iterator[Any]:
        """Run the base without the adapter: ``with trainer.disabled() as model: ...``."""
        with self._peft.disable_adapter():
            yield self._peft

    def state(self) -> dict[str, torch.Tensor]:
        """A detached fp32 CPU copy of the LoRA weights, keyed as PEFT saves them."""
        import torch

        return {k: p.detach().to("cpu", torch.float32, copy=True) for k, p in self._params.items()}

    def reset(self, state: dict[str, torch.Tensor] | None = None, *, seed: int | None = None) -> None:
        """Load ``state`` into the adapter, or re-initialise it (``None``).

        A fresh adapter is PEFT's own init: A uniform (Kaiming), B zero, so
        the adapter adds exactly nothing until it is trained.
        """
        import torch

        with torch.no_grad():
            if state is None:
                gen = torch.Generator().manual_seed(seed) if seed is not None else None
                for key, param in self._params.items():
                    if ".lora_A." not in key:
                        param.zero_()
                    elif param.device.type == "cpu":
                        torch.nn.init.kaiming_uniform_(param, a=math.sqrt(5), generator=gen)
                    else:  # a CPU generator draws on CPU: the same numbers on every device
                        draw = torch.empty(param.shape, dtype=param.dtype)
                        torch.nn.init.kaiming_uniform_(draw, a=math.sqrt(5), generator=gen)
                        param.copy_(draw)
                return
            missing = self._params.keys() - state.keys()
            extra = state.keys() - self._params.keys()
            if missing or extra:
                raise ConfigError(
                    f"state does not fit this adapter: {len(missing)} tensors missing "
                    f"(e.g. {sorted(missing)[:1]}), {len(extra)} unknown (e.g. {sorted(extra)[:1]})"
                )
            for key, param in self._params.items():
                if state[key].shape != param.shape:
                    raise ConfigError(f"{key}: shape {tuple(state[key].shape)}, adapter has {tuple(param.shape)}")
                param.copy_(state[key])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the adapter as PEFT does: ``adapter_model.safetensors`` + ``adapter_config.json``."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.state(), str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        self._config.save_pretrained(str(folder))  # writes adapter_config.json

    def load(self, path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
        """Read a saved adapter folder into a state for :meth:`reset` (no new adapter is made)."""
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(path)
        if not folder.is_dir():
            raise AdapterNotFoundError(f"no adapter folder at {folder}")
        try:
            config = json.loads((folder / ADAPTER_CONFIG).read_text())
            state = load_file(str(folder / ADAPTER_WEIGHTS))
        except (OSError, ValueError, SafetensorError) as exc:
            raise CorruptAdapterError(f"cannot read the adapter at {folder}: {exc}") from exc
        theirs = (config.get("r"), config.get("lora_alpha"), set(config.get("target_modules") or ()))
        ours = (self.lora.r, self.lora.alpha, set(self.lora.target_modules))
        if theirs != ours:
            raise ConfigError(f"adapter at {folder} has (r, alpha, targets) {theirs}, this trainer {ours}")
        if state.keys() != self._params.keys():
            raise CorruptAdapterError(f"adapter at {folder} holds other tensors than its config implies")
        return {k: v.to(torch.float32) for k, v in state.items()}

    # -- training --------------------------------------------------------------------
    def parameters(self) -> list[torch.nn.Parameter]:
        """The live LoRA tensors (the only trainable ones)."""
        return list(self._params.values())

    def train(
        self,
        sequences: Sequence[str] | Sequence[TrainExample],
        settings: TrainSettings | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TrainStats:
        """Train the current adapter on ``sequences`` (each one causal-LM example).

        A plain string is learned whole. A :class:`TrainExample` is learned on
        its completion only (its prompt's tokens are context, never targets),
        its token losses scaled by its weight; the loss is the weighted sum over
        all target tokens divided by their number (token-level, as TRL's GRPO).
        A ``distill`` example's completion tokens are learned as the base model's
        (adapter off) next-token distribution there, a KL term; the base's
        hidden states for them are computed once per call, before the first step.
        Starts from whatever the adapter holds: call :meth:`reset` first for a
        fresh candidate. ``progress(step, total_steps)`` follows every step.
        """
        import torch

        settings = settings or TrainSettings()
        started = time.perf_counter()
        device = self.device
        bf16 = _bf16_default(device.type) if settings.bf16 is None else settings.bf16

        # data: tokenize once, pack into rows once; rows are reshuffled into batches per epoch
        if sequences and not isinstance(sequences, str) and any(
            isinstance(x, TrainExample) for x in sequences
        ):
            seqs, masked, weights, soft = self._encode_examples(sequences, settings.max_seq_len)
            rows = self._pack(seqs, masked, weights, soft)
            if rows.soft is not None:
                rows.teacher = self._teacher_hidden(rows, settings.batch_tokens, bf16)
        else:  # the inner loop's path, unchanged: whole strings, unit weights
            rows = self._pack(self._tokenize(sequences, settings.max_seq_len))  # type: ignore[arg-type]
        n_rows, row_len = rows.ids.shape
        rows_per_batch = max(1, settings.batch_tokens // row_len)
        n_batches = math.ceil(n_rows / rows_per_batch)  # rows spread evenly: no runt batch
        total_steps = settings.epochs * n_batches

        params = list(self._params.values())
        # fused AdamW: one kernel for all 420 LoRA tensors instead of a Python loop over them
        optimizer = torch.optim.AdamW(
            params, lr=settings.lr, weight_decay=settings.weight_decay, fused=True
        )
        losses: list[torch.Tensor] = []  # kept as tensors: no sync per step
        targets_per_step: list[int] = []
        step = 0
        with torch.random.fork_rng(devices=[]):  # seeding must not disturb the caller's RNG
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            try:
                self._peft.train()
                self._fuse_lora(True)
                for _epoch in range(settings.epochs):
                    order = torch.randperm(n_rows)  # new batch mix every epoch (rows stay packed)
                    for batch_rows in torch.tensor_split(order, n_batches):
                        # schedule: set the lr of this step before it is taken
                        lr = settings.lr_at(step, total_steps)
                        for group in optimizer.param_groups:
                            group["lr"] = lr
                        # forward and loss; bf16 products under autocast, LoRA weights stay fp32
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                            loss, n_targets = self._batch_loss(rows.select(batch_rows).to(device), bf16)
                        loss.backward()  # grads reach only the LoRA tensors
                        if settings.grad_clip is not None:  # one global norm, no sync to Python
                            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip, foreach=True)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)  # frees the grads until the next backward
                        losses.append(loss.detach())
                        targets_per_step.append(n_targets)
                        step += 1
                        if progress is not None:
                            progress(step, total_steps)
            finally:
                self._fuse_lora(False)  # scoring runs PEFT's own forward
                self._peft.eval()  # scoring follows: no dropout there
                for param in params:
                    param.grad = None

        per_step = torch.stack(losses).tolist()  # the one sync of the run
        per_epoch = []
        for e in range(settings.epochs):
            chunk = slice(e * n_batches, (e + 1) * n_batches)
            counts = targets_per_step[chunk]
            per_epoch.append(sum(x * w for x, w in zip(per_step[chunk], counts, strict=True)) / sum(counts))
        return TrainStats(
            tokens=rows.tokens * settings.epochs,
            padded_tokens=n_rows * row_len * settings.epochs,
            steps=total_steps,
            seconds=time.perf_counter() - started,
            first_loss=per_step[0],
            last_loss=per_step[-1],
            losses=per_step,
            epoch_losses=per_epoch,
            bf16=bf16,
        )

    # -- pieces of the loop ----------------------------------------------------------------
    def _tokenize(self, sequences: Sequence[str], max_seq_len: int) -> list[list[int]]:
        """Token ids with EOS appended (the model learns where a fact ends), truncated."""
        # A wrong argument type is the calling code's bug, not bad input, so it stays a
        # builtin TypeError as in Python itself; the SealAgentError tree is for bad text,
        # settings and state. The callers are the SDK's own loops, never a user's text.
        # The check exists because one str type-checks as a Sequence[str].
        if isinstance(sequences, str):
            raise TypeError("sequences must be a list of strings, not one string")
        if not sequences:
            raise InputError("nothing to train on: no sequences")
        eos = self.tokenizer.eos_token_id
        # one batched call; special tokens (a BOS, if the model has one) as the model expects them
        ids = self.tokenizer(list(sequences), truncation=True, max_length=max_seq_len)["input_ids"]
        out = [(x + [eos])[:max_seq_len] for x in ids]
        out = [x for x in out if len(x) >= 2]  # a lone token predicts nothing
        if not out:
            raise InputError("nothing to train on: every sequence is empty")
        return out

    def _encode_examples(
        self, examples: Sequence[str | TrainExample], max_seq_len: int
    ) -> tuple[list[list[int]], list[int], list[float], list[bool] | None]:
        """Token ids, the number of leading prompt tokens (no loss), a weight per example,
        and which examples are distilled (None: none is).

        Prompt and completion are tokenized apart and joined, exactly the ids a
        sampler saw (prompt) and produced (completion). A too-long example loses
        tokens from the *start* of its prompt: the completion is what is learned.
        """
        if not examples:
            raise InputError("nothing to train on: no sequences")
        eos = self.tokenizer.eos_token_id
        seqs: list[list[int]] = []
        masked: list[int] = []
        weights: list[float] = []
        soft: list[bool] = []
        for ex in examples:
            if isinstance(ex, str):
                ex = TrainExample(prompt="", completion=ex)
            if not isinstance(ex, TrainExample):  # a caller's bug: TypeError (see _tokenize)
                raise TypeError(f"expected str or TrainExample, got {type(ex).__name__}")
            prompt = self.tokenizer(ex.prompt, add_special_tokens=False)["input_ids"] if ex.prompt else []
            completion = self.tokenizer(ex.completion, add_special_tokens=False)["input_ids"] + [eos]
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

    def _pack(
        self,
        seqs: list[list[int]],
        masked: list[int] | None = None,
        weights: list[float] | None = None,
        soft: list[bool] | None = None,
    ) -> _Rows:
        """Pack sequences into rows (first fit, longest first) at the cheapest row length."""
        longest = max(len(s) for s in seqs)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        shortest_row = _round_up(longest, 16)
        best: tuple[float, int, list[list[int]]] | None = None
        for row_len in range(shortest_row, max(2 * shortest_row, 128) + 1, 16):
            rows = _first_fit([len(seqs[i]) for i in order], row_len)
            # padding slots cost as much as real ones; longer rows cost more per slot
            cost = len(rows) * row_len * (1 + row_len / (ROW_COST_WIDTHS * self._hidden))
            if best is None or cost < best[0]:
                best = (cost, row_len, [[order[j] for j in row] for row in rows])
        assert best is not None
        _, row_len, layout = best
        return _Rows.build(seqs, layout, row_len, self._pad_id, masked=masked, weights=weights,
                           soft=soft)

    def _teacher_hidden(self, rows: _Rows, batch_tokens: int, bf16: bool) -> torch.Tensor:
        """The base model's (adapter off) last hidden states at every slot of ``rows``.

        Computed once per :meth:`train` call: the base is frozen, so they hold
        for every epoch. Only the distilled slots are read; the head turns them
        into the base's next-token distribution chunk by chunk (see HeadLoss).
        """
        import torch

        if self._head is None:
            raise ConfigError(
                "distilled examples need a plain output head (no bias or logit soft-capping); "
                "this model has another: train its replay as plain examples")
        n_rows, row_len = rows.ids.shape
        out = torch.zeros(n_rows, row_len, self._hidden)  # rows without a distilled slot stay 0
        wanted = rows.soft.any(dim=1).nonzero().squeeze(1)  # only rows that hold replay
        step = max(1, batch_tokens // row_len)
        with torch.no_grad(), self._peft.disable_adapter():
            for chunk in torch.split(wanted, step):
                batch = rows.select(chunk).to(self.device)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                    hidden = self._decoder(
                        input_ids=batch.ids, attention_mask=self._mask(batch), position_ids=batch.pos,
                        use_cache=False,
                    ).last_hidden_state
                out[chunk] = hidden.float().cpu()
        return out

    def _fuse_lora(self, on: bool) -> None:
        """Swap PEFT's LoRA forward for the fused one on every plain LoRA linear, or back."""
        for layer in self._lora_layers:
            if on:
                layer.forward = types.MethodType(_fused_lora_forward, layer)  # type: ignore[method-assign]
            else:
                layer.__dict__.pop("forward", None)  # the class's forward again

    def _mask(self, batch: _Rows) -> torch.Tensor:
        """Block-diagonal causal mask: a token sees earlier tokens of its own sequence only."""
        import torch

        length = batch.ids.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=batch.ids.device).tril()
        mask = (batch.seg[:, :, None] == batch.seg[:, None, :]) & causal
        mask = mask[:, None]  # (rows, 1, length, length): one mask for all heads
        if not self._bool_mask:
            mask = torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, torch.finfo(torch.float32).min)
        return mask

    def _batch_loss(self, batch: _Rows, bf16: bool) -> tuple[torch.Tensor, int]:
        """Mean next-token loss over a batch's real targets, and how many there were."""
        import torch

        n, length = batch.ids.shape
        mask = self._mask(batch)
        targets = batch.targets.reshape(-1)
        keep = (targets != -100).nonzero().squeeze(1)  # padding, sequence ends, prompts leave here
        token_weights = None if batch.weights is None else batch.weights.reshape(-1).index_select(0, keep)
        if self._head is None and token_weights is not None:  # unfused head, weighted: by hand
            logits = self._peft(
                input_ids=batch.ids, attention_mask=mask, position_ids=batch.pos, use_cache=False
            ).logits.float()
            ce = torch.nn.functional.cross_entropy(
                logits.reshape(n * length, -1).index_select(0, keep),
                targets.index_select(0, keep), reduction="none",
            )
            return (ce * token_weights).sum() / max(1, keep.numel()), int(keep.numel())
        if self._head is None:  # heads we cannot fuse (bias, soft-capping): the model's own loss
            labels = torch.full_like(batch.targets, -100)
            labels[:, 1:] = batch.targets[:, :-1]  # transformers shifts labels itself
            out = self._peft(input_ids=batch.ids, attention_mask=mask, position_ids=batch.pos, labels=labels, use_cache=False)
            return out.loss, int(keep.numel())
        hidden = self._decoder(
            input_ids=batch.ids, attention_mask=mask, position_ids=batch.pos, use_cache=False
        ).last_hidden_state
        hidden = hidden.reshape(n * length, -1).index_select(0, keep)
        weight = self._head.weight
        teacher = soft = None
        if batch.teacher is not None and batch.soft is not None:
            soft = batch.soft.reshape(-1).index_select(0, keep)
            teacher = batch.teacher.reshape(n * length, -1).index_select(0, keep)
        loss = _HeadLoss.apply(
            hidden, weight, targets.index_select(0, keep),
            torch.bfloat16 if bf16 else torch.float32, token_weights, teacher, soft,
        )
        return loss, int(keep.numel())


# -- packing ------------------------------------------------------------------------------
def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _first_fit(lengths: list[int], row_len: int) -> list[list[int]]:
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


class _Rows:
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
    ) -> _Rows:
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

    def select(self, rows: Any) -> _Rows:
        ids, pos, seg, targets = (t.index_select(0, rows) for t in (self.ids, self.pos, self.seg, self.targets))
        weights = None if self.weights is None else self.weights.index_select(0, rows)
        out = _Rows(ids, pos, seg, targets, tokens=0, weights=weights)
        out.soft = None if self.soft is None else self.soft.index_select(0, rows)
        out.teacher = None if self.teacher is None else self.teacher.index_select(0, rows)
        return out

    def to(self, device: Any) -> _Rows:
        """These rows on ``device`` (themselves on CPU: packing happens there)."""
        if device.type == "cpu":
            return self
        ids, pos, seg, targets = (t.to(device) for t in (self.ids, self.pos, self.seg, self.targets))
        weights = None if self.weights is None else self.weights.to(device)
        out = _Rows(ids, pos, seg, targets, tokens=self.tokens, weights=weights)
        out.soft = None if self.soft is None else self.soft.to(device)
        out.teacher = None if self.teacher is None else self.teacher.to(device)
        return out


# -- the LoRA layers while training ---------------------------------------------------------
def _fused_lora_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """PEFT's LoRA forward, ``base(x) + scale * B(A(x))``, with the scale and the sum in one addmm.

    PEFT multiplies and adds as two more passes over the output (and one more
    backward); folding them into ``addmm`` made whole training steps ~10%
    faster. Used only while training, on plain LoRA linears, adapter active.
    """
    import torch

    result = self.base_layer(x, *args, **kwargs)
    down = self.lora_A[ADAPTER_NAME](self.lora_dropout[ADAPTER_NAME](x))
    up = self.lora_B[ADAPTER_NAME].weight
    flat = torch.addmm(
        result.reshape(-1, result.shape[-1]),
        down.reshape(-1, down.shape[-1]),
        up.T,
        alpha=self.scaling[ADAPTER_NAME],
    )
    return flat.view(result.shape)


# -- the loss through the frozen head -------------------------------------------------------
def _decoder_and_head(base: Any) -> tuple[Any, Any]:
    """The decoder stack and the output head, when the head is a plain bias-free linear."""
    config = base.config
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    head = base.get_output_embeddings()
    plain = (
        decoder is not None
        and head is not None
        and getattr(head, "bias", None) is None
        and not getattr(config, "final_logit_softcapping", None)
        and getattr(config, "logit_scale", None) in (None, 1, 1.0)
    )
    return (decoder, head) if plain else (None, None)


def _make_head_loss() -> Any:
    import torch

    class HeadLoss(torch.autograd.Function):
        """Mean cross-entropy of ``hidden @ weight.T`` with the gradient made in the forward.

        The head is frozen, so the only gradient needed is d loss / d hidden,
        which is (softmax - onehot) @ weight / n. Computing it chunk by chunk
        while the chunk's logits are at hand means the full ``n x vocab``
        logits, their fp32 copy, their zero-filled gradient and the
        log-softmax backward (together ~30% of a step) never happen.
        """

        @staticmethod
        def forward(
            ctx: Any, hidden: Any, weight: Any, targets: Any, dtype: Any, token_weights: Any = None,
            teacher: Any = None, soft: Any = None,
        ) -> Any:
            """``teacher``/``soft``: the base's hidden states and which rows learn its
            distribution p. Such a row's loss is KL(p || q) = sum p (log p - log q), and
            its gradient (softmax - p) @ weight, where a token row has (softmax - onehot)."""
            n = targets.numel()
            w = weight.detach().to(dtype)  # frozen: a bf16 copy when bf16, else the weight itself
            # one logits buffer for every chunk and no temporaries of its size: fresh large
            # allocations cost page faults, measured at a fifth of a step's time on this VM
            device = hidden.device
            logits = torch.empty(min(n, HEAD_CHUNK), w.shape[0], dtype=torch.float32, device=device)
            grad = torch.empty(hidden.shape, dtype=torch.float32, device=device)
            total = torch.zeros((), dtype=torch.float32, device=device)
            # the base's distribution in fp32 whatever the product's dtype: it is the target
            w_teacher = None if soft is None else weight.detach().float()
            with torch.autocast(device.type, enabled=False):  # dtypes are chosen here, not by autocast
                for start in range(0, n, HEAD_CHUNK):
                    h = hidden[start : start + HEAD_CHUNK].detach()
                    t = targets[start : start + HEAD_CHUNK, None]
                    z = logits[: len(t)]
                    if dtype == torch.float32:
                        torch.mm(h.float(), w.T, out=z)
                    else:
                        z.copy_(h.to(dtype) @ w.T)  # bf16 product, fp32 softmax
                    picked = z.gather(1, t)  # the target's logit
                    rows = None
                    if soft is not None:
                        rows = soft[start : start + len(t)].nonzero().squeeze(1)
                        if rows.numel() and w_teacher is not None:  # the base's p at the distilled rows
                            zt = teacher[rows + start].to(device=device, dtype=torch.float32) @ w_teacher.T
                            logp = torch.log_softmax(zt, dim=1)
                            p = logp.exp()
                            # KL(p || q) = lse(z) - p.z + p.log p: "picked" stands for p.z - p.log p
                            picked[rows] = (p * z[rows]).sum(1, keepdim=True) - (p * logp).sum(1, keepdim=True)
                        else:
                            rows = None
                    top = z.amax(1, keepdim=True)
                    z.sub_(top).exp_()  # shifted: exp cannot overflow
                    norm = z.sum(1, keepdim=True)
                    nll = norm.log() + top - picked  # log-sum-exp minus the target logit
                    z.div_(norm)  # the softmax ...
                    z.scatter_add_(1, t, torch.full_like(picked, -1.0))  # ... minus the one-hot target
                    if rows is not None:  # ... or minus p, at the distilled rows
                        z[rows] = z[rows].scatter_add_(1, t[rows], torch.ones_like(picked[rows])) - p
                    if token_weights is None:
                        total += nll.sum()
                    else:  # weighted loss: each row's loss and gradient scale by its weight
                        w_rows = token_weights[start : start + len(t), None]
                        total += (nll * w_rows).sum()
                        z.mul_(w_rows)
                    g = grad[start : start + len(t)]
                    if dtype == torch.float32:
                        torch.mm(z, w, out=g)
                    else:
                        g.copy_(z.to(dtype) @ w)
            ctx.save_for_backward(grad.div_(n))
            ctx.hidden_dtype = hidden.dtype
            return total / n

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> Any:
            (grad,) = ctx.saved_tensors
            return (grad * grad_out).to(ctx.hidden_dtype), None, None, None, None, None, None

    return HeadLoss


class _LazyHeadLoss:
    """Builds the autograd Function on first use, so importing this module stays torch-free."""

    _fn: Any = None

    @classmethod
    def apply(cls, *args: Any) -> Any:
        if cls._fn is None:
            cls._fn = _make_head_loss()
        return cls._fn.apply(*args)


_HeadLoss = _LazyHeadLoss
