"""The LoRA trainer: one base model, wrapped with PEFT once, many candidates trained on it.

The reward loop trains a fresh temporary LoRA for every candidate self-edit
and scores it. Reloading or re-wrapping the base for each candidate would
cost more than the training itself, so :class:`LoraTrainer` wraps the base
once and moves between candidates by copying the LoRA tensors
(:meth:`LoraTrainer.state` / :meth:`LoraTrainer.reset`). It also saves and
loads adapters in PEFT's own file layout.

One :meth:`LoraTrainer.train` call reads top to bottom: pack the examples
into rows (:mod:`~seal_agent.training.batches`), then per step set the
scheduled learning rate, take the loss (through the frozen head,
:mod:`~seal_agent.training.head_loss`), clip, step.
"""

from __future__ import annotations

import json
import math
import os
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seal_agent.errors import AdapterNotFoundError, ConfigError, CorruptAdapterError
from seal_agent.training.batches import Rows, block_mask, encode_examples, pack, tokenize
from seal_agent.training.head_loss import HeadLoss, decoder_and_head
from seal_agent.training.settings import (
    ADAPTER_CONFIG,
    ADAPTER_NAME,
    ADAPTER_WEIGHTS,
    LoraSettings,
    TrainExample,
    TrainSettings,
    TrainStats,
)
from seal_agent.training.speed import bf16_default, fused_lora_forward

if TYPE_CHECKING:
    import torch

__all__ = ["LoraTrainer"]


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
        # plain LoRA linears get a fused forward while training (see fused_lora_forward)
        self._lora_layers = [m for m in self._peft.modules() if type(m) is LoraLinear]
        base = self._peft.get_base_model()
        self._decoder, self._head = decoder_and_head(base)
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
        bf16 = bf16_default(self.device.type) if settings.bf16 is None else settings.bf16
        # data: tokenize once, pack into rows once; rows are reshuffled into batches per epoch
        rows = self._rows(sequences, settings, bf16)
        n_rows, row_len = rows.ids.shape
        rows_per_batch = max(1, settings.batch_tokens // row_len)
        n_batches = math.ceil(n_rows / rows_per_batch)  # rows spread evenly: no runt batch
        losses, targets_per_step = self._steps(rows, n_batches, settings, bf16, progress)
        per_step = torch.stack(losses).tolist()  # the one sync of the run
        return TrainStats(
            tokens=rows.tokens * settings.epochs,
            padded_tokens=n_rows * row_len * settings.epochs,
            steps=settings.epochs * n_batches,
            seconds=time.perf_counter() - started,
            first_loss=per_step[0],
            last_loss=per_step[-1],
            losses=per_step,
            epoch_losses=_epoch_means(per_step, targets_per_step, n_batches),
            bf16=bf16,
        )

    # -- pieces of the loop ----------------------------------------------------------------
    def _rows(
        self, sequences: Sequence[str] | Sequence[TrainExample], settings: TrainSettings, bf16: bool
    ) -> Rows:
        """The training data as packed rows, the base's hidden states with them for distillation."""
        if sequences and not isinstance(sequences, str) and any(
            isinstance(x, TrainExample) for x in sequences
        ):
            seqs, masked, weights, soft = self._encode_examples(sequences, settings.max_seq_len)
            rows = pack(seqs, self._pad_id, self._hidden, masked, weights, soft)
            if rows.soft is not None:
                rows.teacher = self._teacher_hidden(rows, settings.batch_tokens, bf16)
            return rows
        # the inner loop's path, unchanged: whole strings, unit weights
        return pack(self._tokenize(sequences, settings.max_seq_len), self._pad_id, self._hidden)  # type: ignore[arg-type]

    def _steps(
        self,
        rows: Rows,
        n_batches: int,
        settings: TrainSettings,
        bf16: bool,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[list[torch.Tensor], list[int]]:
        """Every epoch's steps over ``rows``; each step's loss (a tensor: no sync) and target count."""
        import torch

        total_steps = settings.epochs * n_batches
        params = list(self._params.values())
        # fused AdamW: one kernel for all 420 LoRA tensors instead of a Python loop over them
        optimizer = torch.optim.AdamW(
            params, lr=settings.lr, weight_decay=settings.weight_decay, fused=True
        )
        losses: list[torch.Tensor] = []  # kept as tensors: no sync per step
        targets_per_step: list[int] = []
        with torch.random.fork_rng(devices=[]):  # seeding must not disturb the caller's RNG
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            try:
                self._peft.train()
                self._fuse_lora(True)
                for _epoch in range(settings.epochs):
                    order = torch.randperm(rows.ids.shape[0])  # new batch mix every epoch (rows stay packed)
                    for batch_rows in torch.tensor_split(order, n_batches):
                        # schedule: set the lr of this step before it is taken
                        lr = settings.lr_at(len(losses), total_steps)
                        loss, n_targets = self._step(optimizer, rows.select(batch_rows), lr, settings, bf16)
                        losses.append(loss)
                        targets_per_step.append(n_targets)
                        if progress is not None:
                            progress(len(losses), total_steps)
            finally:
                self._fuse_lora(False)  # scoring runs PEFT's own forward
                self._peft.eval()  # scoring follows: no dropout there
                for param in params:
                    param.grad = None
        return losses, targets_per_step

    def _step(
        self, optimizer: Any, batch: Rows, lr: float, settings: TrainSettings, bf16: bool
    ) -> tuple[torch.Tensor, int]:
        """One optimizer step on ``batch``: its detached loss and its number of targets."""
        import torch

        for group in optimizer.param_groups:
            group["lr"] = lr
        # forward and loss; bf16 products under autocast, LoRA weights stay fp32
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, n_targets = self._batch_loss(batch.to(self.device), bf16)
        loss.backward()  # type: ignore[no-untyped-call]  # grads reach only the LoRA tensors
        if settings.grad_clip is not None:  # one global norm, no sync to Python
            torch.nn.utils.clip_grad_norm_(self.parameters(), settings.grad_clip, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # frees the grads until the next backward
        return loss.detach(), n_targets

    def _tokenize(self, sequences: Sequence[str], max_seq_len: int) -> list[list[int]]:
        """Token ids with EOS appended, truncated (see :func:`~seal_agent.training.batches.tokenize`)."""
        return tokenize(self.tokenizer, sequences, max_seq_len)

    def _encode_examples(
        self, examples: Sequence[str | TrainExample], max_seq_len: int
    ) -> tuple[list[list[int]], list[int], list[float], list[bool] | None]:
        """Examples as ids, prompt lengths, weights, distill flags (see ``batches.encode_examples``)."""
        return encode_examples(self.tokenizer, examples, max_seq_len)

    def _teacher_hidden(self, rows: Rows, batch_tokens: int, bf16: bool) -> torch.Tensor:
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
                        input_ids=batch.ids, attention_mask=block_mask(batch, self._bool_mask),
                        position_ids=batch.pos, use_cache=False,
                    ).last_hidden_state
                out[chunk] = hidden.float().cpu()
        return out

    def _fuse_lora(self, on: bool) -> None:
        """Swap PEFT's LoRA forward for the fused one on every plain LoRA linear, or back."""
        for layer in self._lora_layers:
            if on:
                layer.forward = types.MethodType(fused_lora_forward, layer)  # type: ignore[method-assign]
            else:
                layer.__dict__.pop("forward", None)  # the class's forward again

    def _batch_loss(self, batch: Rows, bf16: bool) -> tuple[torch.Tensor, int]:
        """Mean next-token loss over a batch's real targets, and how many there were."""
        import torch

        n, length = batch.ids.shape
        mask = block_mask(batch, self._bool_mask)
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
        loss = HeadLoss.apply(
            hidden, weight, targets.index_select(0, keep),
            torch.bfloat16 if bf16 else torch.float32, token_weights, teacher, soft,
        )
        return loss, int(keep.numel())


def _epoch_means(per_step: list[float], targets_per_step: list[int], n_batches: int) -> list[float]:
    """Each epoch's loss: its steps' mean losses weighted by their target counts."""
    per_epoch = []
    for e in range(len(per_step) // n_batches):
        chunk = slice(e * n_batches, (e + 1) * n_batches)
        counts = targets_per_step[chunk]
        per_epoch.append(sum(x * w for x, w in zip(per_step[chunk], counts, strict=True)) / sum(counts))
    return per_epoch
