"""LoraTrainer on the real default model: tiny runs, real PEFT, real files.

The trainer wraps its model with PEFT in place, so it gets its own copy of
the base (loaded from the safetensors cache in a fraction of a second), never
the session's shared ``lm.model``.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

FACTS = [
    "The user adopted a beagle named Biscuit.",
    "Biscuit is three years old and loves carrots.",
    "The user works as a glassblower in Tacoma.",
    "The user plays the bassoon in a community orchestra on Thursdays.",
]
PROBE = "The user's dog is a beagle called Biscuit, and the user lives in Tacoma."


@pytest.fixture(scope="module")
def trainer(lm):
    from transformers import AutoModelForCausalLM

    from seal_agent.training import LoraSettings, LoraTrainer

    base = AutoModelForCausalLM.from_pretrained(lm.source)
    return LoraTrainer(base, lm.tokenizer, LoraSettings())


def _logits(model, tokenizer, text=PROBE):
    import torch

    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits


def _fast(**overrides):
    from seal_agent.training import TrainSettings

    # fp32 so results compare exactly; small batches so a few sequences make several steps
    base = {"epochs": 2, "lr": 1e-3, "batch_tokens": 64, "bf16": False, "seed": 0}
    return TrainSettings(**{**base, **overrides})


def _randomise(trainer, seed=1):
    """Give the adapter non-trivial weights (B non-zero) without training."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    trainer.reset({k: torch.randn(v.shape, generator=gen) * 0.02 for k, v in trainer.state().items()})


def test_loss_falls_and_stats_add_up(trainer):
    trainer.reset(None, seed=0)
    steps = []
    stats = trainer.train(FACTS, _fast(epochs=6), progress=lambda s, t: steps.append((s, t)))

    assert stats.epoch_losses[-1] < stats.epoch_losses[0] - 0.5, stats.epoch_losses
    assert stats.last_loss < stats.first_loss
    assert len(stats.losses) == stats.steps == len(steps) and steps[-1] == (stats.steps, stats.steps)
    lengths = [len(x) + 1 for x in trainer.tokenizer(FACTS)["input_ids"]]  # + EOS
    assert stats.tokens == 6 * sum(lengths)
    assert stats.padded_tokens >= stats.tokens
    assert not stats.bf16
    assert not trainer.model.training  # back in eval mode for scoring
    assert not any("forward" in m.__dict__ for m in trainer.model.modules())  # PEFT's forward again


def test_bf16_autocast_trains(trainer):
    """The bf16 path (chosen automatically where bf16 is faster) learns too; LoRA stays fp32."""
    import torch

    trainer.reset(None, seed=0)
    stats = trainer.train(FACTS, _fast(epochs=4, bf16=True))
    assert stats.bf16
    assert all(x == x for x in stats.losses)  # no NaN
    assert stats.epoch_losses[-1] < stats.epoch_losses[0]
    assert all(v.dtype == torch.float32 for v in trainer.state().values())


def test_same_seed_same_run(trainer):
    trainer.reset(None, seed=0)
    first = trainer.train(FACTS, _fast())
    trainer.reset(None, seed=0)
    second = trainer.train(FACTS, _fast())
    assert first.losses == second.losses


def test_padding_is_not_in_the_loss(trainer):
    import torch

    from seal_agent.training.batches import Rows

    _randomise(trainer)
    seqs = trainer._tokenize(FACTS, 256)
    layout = [[0, 1], [2], [3]]  # two sequences share a row, the others sit alone
    tight = max(sum(len(seqs[i]) for i in row) for row in layout)
    with torch.no_grad():
        loss_tight, n_tight = trainer._batch_loss(Rows.build(seqs, layout, tight, 0), bf16=False)
        loss_padded, n_padded = trainer._batch_loss(Rows.build(seqs, layout, tight + 40, 0), bf16=False)
    assert n_tight == n_padded == sum(len(s) - 1 for s in seqs)
    assert loss_padded.item() == pytest.approx(loss_tight.item(), abs=1e-4)


def test_packed_loss_equals_each_sequence_alone(trainer):
    """Packing (shared rows, restarted positions, block mask) changes nothing about the loss."""
    import torch

    from seal_agent.training.batches import Rows

    _randomise(trainer)
    seqs = trainer._tokenize(FACTS, 256)
    rows = Rows.build(seqs, [[0, 1, 2], [3]], 64, 0)  # three sequences share the first row
    total, count = 0.0, 0
    with torch.no_grad():
        packed, n = trainer._batch_loss(rows, bf16=False)
        for seq in seqs:  # the reference: transformers' own loss, one sequence per call
            ids = torch.tensor([seq])
            total += trainer.model(input_ids=ids, labels=ids).loss.item() * (len(seq) - 1)
            count += len(seq) - 1
    assert n == count
    assert packed.item() == pytest.approx(total / count, abs=1e-4)

    # the same loss through the fused LoRA forward that train() swaps in ...
    trainer._fuse_lora(True)
    try:
        with torch.no_grad():
            fused, _ = trainer._batch_loss(rows, bf16=False)
    finally:
        trainer._fuse_lora(False)
    # float32 sums in another order differ by a few parts in a million (1.8e-5 of 5.68 seen
    # in CI); a wrong mask or position moves the loss by far more than that
    assert fused.item() == pytest.approx(packed.item(), rel=1e-5)
    # ... and through transformers' own loss, the fallback for heads we cannot fuse
    decoder, head = trainer._decoder, trainer._head
    trainer._decoder = trainer._head = None
    try:
        with torch.no_grad():
            plain, _ = trainer._batch_loss(rows, bf16=False)
    finally:
        trainer._decoder, trainer._head = decoder, head
    assert plain.item() == pytest.approx(packed.item(), rel=1e-5)


def test_fresh_adapter_is_a_no_op(trainer):
    import torch

    _randomise(trainer)
    trainer.reset(None)
    with_adapter = _logits(trainer.model, trainer.tokenizer)
    with trainer.disabled() as base:
        without = _logits(base, trainer.tokenizer)
    torch.testing.assert_close(with_adapter, without, atol=1e-5, rtol=0)
    assert all(not v.any() for k, v in trainer.state().items() if ".lora_B." in k)


def test_state_round_trip_restores_the_logits(trainer):
    import torch

    _randomise(trainer)
    state = trainer.state()
    before = _logits(trainer.model, trainer.tokenizer)
    trainer.reset(None)
    assert not torch.equal(_logits(trainer.model, trainer.tokenizer), before)
    trainer.reset(state)
    assert torch.equal(_logits(trainer.model, trainer.tokenizer), before)
    # state() is a copy: changing the adapter later does not reach it
    trainer.reset(None)
    assert any(v.any() for k, v in state.items() if ".lora_B." in k)


def test_save_load_round_trip(trainer, tmp_path):
    import torch
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    from seal_agent.errors import AdapterNotFoundError
    from seal_agent.training import ADAPTER_NAME

    _randomise(trainer, seed=3)
    state = trainer.state()
    before = _logits(trainer.model, trainer.tokenizer)
    trainer.save(tmp_path / "adapter")

    assert {p.name for p in (tmp_path / "adapter").iterdir()} == {
        "adapter_model.safetensors",
        "adapter_config.json",
    }
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["lora_alpha"] == 32 and config["peft_type"] == "LORA"
    # PEFT's own key names, so PeftModel.from_pretrained reads the folder too
    peft_keys = get_peft_model_state_dict(trainer.model, adapter_name=ADAPTER_NAME).keys()
    assert load_file(str(tmp_path / "adapter" / "adapter_model.safetensors")).keys() == peft_keys

    trainer.reset(None)
    loaded = trainer.load(tmp_path / "adapter")
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    trainer.reset(loaded)
    assert torch.equal(_logits(trainer.model, trainer.tokenizer), before)

    with pytest.raises(AdapterNotFoundError):
        trainer.load(tmp_path / "missing")


def test_training_leaves_the_base_untouched(trainer):
    import torch

    base = trainer.model.get_base_model()
    watched = {
        name: p.detach().clone()
        for name, p in base.named_parameters()
        if "lora_" not in name and any(k in name for k in ("embed_tokens", "layers.0.", "layers.29.", "norm"))
    }
    assert len(watched) > 10
    trainer.reset(None, seed=0)
    trainer.train(FACTS, _fast(epochs=1))
    current = dict(base.named_parameters())
    for name, before in watched.items():
        assert torch.equal(current[name], before), name
        assert not current[name].requires_grad
    assert all(p.grad is None for p in trainer.model.parameters())


def test_distilled_examples_pull_towards_the_base(trainer):
    """Replay as self-distillation: at the base the KL is zero, and an adapter that moved
    away (random B) is pulled back towards the base's logits on the distilled text."""
    from seal_agent.training import TrainExample

    assert trainer.can_distill
    examples = [TrainExample(prompt="Question: what is the capital of France?\nAnswer:",
                             completion=" Paris is the capital of France.", distill=True),
                TrainExample(prompt="", completion=PROBE, distill=True)]
    trainer.reset(None, seed=0)
    at_base = trainer.train(examples, _fast(epochs=1))
    # zero up to fp32 rounding over a 49k vocabulary (each of its terms is ~10)
    assert abs(at_base.first_loss) < 1e-3 and abs(at_base.last_loss) < 1e-3

    with trainer.disabled() as model:
        base = _logits(model, trainer.tokenizer)
    _randomise(trainer)
    moved = (_logits(trainer.model, trainer.tokenizer) - base).abs().mean()
    # a small lr: Adam's first steps are lr-sized whatever the gradient, and a KL of 0.015
    # on two examples is easily overshot (3e-4 and 1e-3 rise before they fall)
    stats = trainer.train(examples, _fast(epochs=6, lr=1e-4))
    back = (_logits(trainer.model, trainer.tokenizer) - base).abs().mean()
    assert stats.epoch_losses[-1] < 0.6 * stats.epoch_losses[0] and stats.first_loss > 1e-3
    assert back < 0.7 * moved, (float(moved), float(back))


def test_settings_are_validated():
    from pydantic import ValidationError

    from seal_agent.training import TrainSettings

    with pytest.raises(ValidationError, match="not both"):
        TrainSettings(warmup_steps=2, warmup_fraction=0.1)
    with pytest.raises(ValidationError):
        TrainSettings(lr=0)
    with pytest.raises(ValidationError):
        TrainSettings(epochs=0)
    cosine = TrainSettings(lr=1.0, warmup_steps=2)
    lrs = [cosine.lr_at(s, 10) for s in range(10)]
    assert lrs[0] < lrs[1] < lrs[2] == 1.0  # warm-up, then the peak
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False)) and lrs[-1] > 0


def test_a_shared_prefix_changes_neither_loss_nor_gradients(trainer, lm):
    """Chat examples share their system prompt's tokens once per row: the same loss, the
    same LoRA gradients, the same distillation targets as each example with its own copy."""

    from seal_agent.training import TrainExample
    from seal_agent.training.batches import pack, shared_prefix

    def chat(question: str) -> str:
        messages = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."},
                    {"role": "user", "content": question}]
        return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    examples = [
        TrainExample(prompt=chat("What is my dog called?"), completion="Your dog is called Biscuit."),
        TrainExample(prompt=chat("Where do I work?"), completion="You work in Tacoma."),
        TrainExample(prompt=chat("How many legs does a spider have?"), completion="Eight.", distill=True),
        "I play the bassoon in a community orchestra.",  # no prompt: it never sees the prefix
    ]
    _randomise(trainer)
    seqs, masked, weights, soft = trainer._encode_examples(examples, 256)
    assert shared_prefix(seqs, masked) >= 8
    results = []
    for share in (False, True):
        rows = pack(seqs, trainer._pad_id, trainer._hidden, masked, weights, soft, share=share)
        rows.teacher = trainer._teacher_hidden(rows, 512, bf16=False)
        loss, n = trainer._batch_loss(rows, bf16=False)
        loss.backward()
        grads = [p.grad.clone() for p in trainer.parameters()]
        for p in trainer.parameters():
            p.grad = None
        results.append((loss.item(), n, grads, rows.ids.numel()))
    (plain, n_plain, g_plain, slots_plain), (shared, n_shared, g_shared, slots_shared) = results
    assert n_shared == n_plain  # the same targets
    assert slots_shared < slots_plain  # fewer slots computed
    assert shared == pytest.approx(plain, rel=1e-5)
    biggest = max(g.abs().max().item() for g in g_plain)
    for a, b in zip(g_plain, g_shared, strict=True):
        assert (a - b).abs().max().item() <= 1e-4 * biggest
