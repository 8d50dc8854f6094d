"""Policy training on the real default model: completion-only loss, a tiny round end to
end that is killed and resumed, policy adapters on the loaded base, `consolidate --policy`,
and the policy CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seal_agent.cli import app

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

PASSAGES = [
    {"id": "canal", "context": "The Ember Canal was dug between 1821 and 1834. It is 62 kilometres long "
     "and has 14 locks. It links the river Ember with the port of Saltmere.",
     "questions": [{"question": "How many locks does the Ember Canal have?", "answer": "14"},
                   {"question": "Which port does the Ember Canal reach?", "answer": "Saltmere"}]},
    {"id": "fern", "context": "The botanist Orinda Vale described the blue fern Pteris kessana in 1902 "
     "after finding it on the island of Mora.",
     "questions": [{"question": "Who described Pteris kessana?", "answer": "Orinda Vale"},
                   {"question": "Where was Pteris kessana found?", "answer": "the island of Mora"}]},
    {"id": "bridge", "context": "The Kessa Bridge opened in 1957. It spans 410 metres over the Tarn "
     "estuary and carries a railway line and two road lanes.",
     "questions": [{"question": "When did the Kessa Bridge open?", "answer": "1957"}]},
    {"id": "empty", "context": "A context without questions is skipped and counted.", "questions": []},
]

# Tiny budgets: a round is 2 contexts x 2 samples, 1 held-apart context, one optimiser step.
TOML = """
[selfedit]
max_new_tokens = 32
check_support = false   # keep lines the 135M model embroiders: the round must have data
[consolidation]
inner_epochs = 1
[policy]
contexts = 2
select_contexts = 1
k = 2
rounds = 1
epochs = 1
batch_tokens = 16384    # every example in one batch: one optimiser step
"""


@pytest.fixture(scope="module")
def trainer(lm):
    from transformers import AutoModelForCausalLM

    from seal_agent.training import LoraSettings, LoraTrainer

    return LoraTrainer(AutoModelForCausalLM.from_pretrained(lm.source), lm.tokenizer, LoraSettings())


def test_completion_only_loss_masks_the_prompt(trainer):
    import torch

    from seal_agent.training import TrainExample
    from seal_agent.training.batches import Rows

    tok = trainer.tokenizer
    prompt = "Passage: The Ember Canal has 14 locks.\nImplications:\n-"
    completion = " The canal has 14 locks."
    seqs, masked, weights, _soft = trainer._encode_examples([TrainExample(prompt, completion)], 256)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert seqs[0] == prompt_ids + completion_ids and masked == [len(prompt_ids)]
    length = len(seqs[0]) + 5
    rows = Rows.build(seqs, [[0]], length, 0, masked=masked, weights=weights)
    targets = rows.targets[0]
    kept = (targets != -100).nonzero().squeeze(1).tolist()
    # exactly the completion's tokens (EOS included) are targets, predicted from the position before
    assert kept == list(range(len(prompt_ids) - 1, len(seqs[0]) - 1))
    assert targets[kept].tolist() == completion_ids

    trainer.reset(None, seed=0)  # B = 0: the adapter adds nothing, so this is the base model
    loss, n = trainer._batch_loss(rows, bf16=False)
    with torch.inference_mode():
        logits = trainer.model(input_ids=torch.tensor([seqs[0]])).logits[0].float()
    start = len(prompt_ids)
    manual = torch.nn.functional.cross_entropy(logits[start - 1 : -1], torch.tensor(seqs[0][start:]))
    assert n == len(completion_ids)
    assert float(loss.detach()) == pytest.approx(float(manual), rel=1e-4)

    # a weight scales loss (and gradient): GRPO's negative advantages push a completion down
    seqs, masked, *_ = trainer._encode_examples([TrainExample(prompt, completion, -0.5)], 256)
    weighted = Rows.build(seqs, [[0]], length, 0, masked=masked, weights=[-0.5])
    wloss, _ = trainer._batch_loss(weighted, bf16=False)
    assert float(wloss.detach()) == pytest.approx(-0.5 * float(manual), rel=1e-4)

    # training on the pair moves the completion's likelihood up (one step, from the base)
    stats = trainer.train([TrainExample(prompt, completion)] * 4, _one_step())
    assert stats.steps == 1
    after, _ = trainer._batch_loss(rows, bf16=False)
    assert float(after.detach()) < float(manual)


def _one_step():
    from seal_agent.training import TrainSettings

    return TrainSettings(epochs=1, lr=1e-3, batch_tokens=4096, bf16=False, seed=0)


def _home(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(TOML)
    episodes = tmp_path / "passages.json"
    episodes.write_text(json.dumps(PASSAGES))
    return home, episodes


def test_tiny_round_end_to_end_killed_and_resumed(tmp_path, lm):
    """A real `seal-agent policy train` is killed after its first context; the rerun resumes."""
    from seal_agent.adapters import AdapterStore
    from seal_agent.config import load_config
    from seal_agent.journal import Journal
    from seal_agent.policy import DEPLOYMENT, PolicyStore
    from seal_agent.policy.episodes import load_episodes
    from seal_agent.policy.rounds import PolicyTrainer

    home, episodes_file = _home(tmp_path)
    env = {**os.environ, "SEAL_AGENT_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seal_agent", "policy", "train", "--source", str(episodes_file),
         "--method", "rest-em"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    runs = home / "policy-runs"
    deadline = time.time() + 900  # ~30 s on an idle 2-core machine; generous for a loaded one
    first: str | None = None
    try:
        while time.time() < deadline and proc.poll() is None:
            logs = list(runs.glob("*/events.jsonl")) if runs.is_dir() else []
            lines = logs[0].read_text().splitlines() if logs else []
            if any('"kind": "sample"' in line for line in lines):
                first = next(line for line in lines if '"kind": "sample"' in line)
                break
            time.sleep(0.2)
        died = proc.poll() is not None
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-run: the second context is being sampled
        output = proc.communicate()[0].decode()
    assert first is not None and not died, output[-2000:] or "timeout"

    config = load_config(home=home)
    journal = Journal(config.journal_path)
    store = PolicyStore(AdapterStore(config.adapters_dir, journal))
    episodes = load_episodes(str(episodes_file), n=3, seed=config.policy.seed)
    assert episodes.skipped_no_probes == 1
    events: list[str] = []
    report = PolicyTrainer(config, store, lm, scope=DEPLOYMENT,
                           progress=lambda e: events.append(e.stage)).train(episodes)

    assert report.resumed and events[0] == "resume"
    log = [json.loads(x) for x in (report.folder / "events.jsonl").read_text().splitlines()]
    samples = [e for e in log if e["kind"] == "sample"]
    assert json.loads(first) == samples[0]  # the killed run's context was kept, not redone
    assert sorted(e["context"] for e in samples) == sorted({e["context"] for e in samples})
    assert len(samples) == 2 and all(len(e["samples"]) == 2 for e in samples)
    (result,) = report.rounds
    assert result.samples == 4 and result.contexts == 2
    if result.positive == 0:
        assert "no sample earned a positive reward" in result.reason and not result.promoted
        journal.close()
        return
    update = next(e for e in log if e["kind"] == "update")
    assert update["steps"] == 1 and update["examples"] == result.examples >= 1
    assert (report.folder / "round-01" / "candidate" / "adapter_model.safetensors").is_file()
    assert {e["policy"] for e in log if e["kind"] == "select"} == {"base", f"{report.run_id}:r1"}
    usable = {e["policy"]: sum(1 for x in e["samples"] if x["items"]) for e in log if e["kind"] == "select"}
    better = result.select_candidate > result.select_current
    no_emptier = usable[f"{report.run_id}:r1"] >= usable["base"]
    assert result.promoted == (better and no_emptier)
    active = store.active(DEPLOYMENT)
    journal.close()
    if result.promoted:
        assert active is not None and active.metrics["round"] == 1 and active.metrics["method"] == "rest-em"
        assert active.metrics["select_candidate"] == result.select_candidate
    else:
        assert active is None
        assert ("does not beat" if not better else "fewer usable self-edits") in result.reason
    # the run is closed: the same command would start a new one
    assert log[-1]["kind"] == "finished"


def _randomised_policy(lm, config, store, seed):
    """A policy adapter whose weights are non-zero (so it changes what the model writes)."""
    import torch
    from transformers import AutoModelForCausalLM

    from seal_agent.training import LoraSettings, LoraTrainer

    pc = config.policy
    trainer = LoraTrainer(AutoModelForCausalLM.from_pretrained(lm.source), lm.tokenizer,
                          LoraSettings(r=pc.lora_r, alpha=pc.lora_alpha))
    gen = torch.Generator().manual_seed(seed)
    trainer.reset({k: torch.randn(v.shape, generator=gen) * 0.05 for k, v in trainer.state().items()})
    return store.promote(trainer.save, config={}, metrics={"method": "test", "round": seed})


def test_policy_adapter_on_the_loaded_base_and_consolidate_with_it(make_agent, lm, tmp_path):
    from seal_agent.errors import CorruptAdapterError
    from seal_agent.models.base import GenerationParams
    from seal_agent.policy import PolicyStore, policy_writer

    agent = make_agent(user_id="maya", consolidation={"mode": "loglik"})  # candidates table
    agent.remember("My sister Ines lives in Reykjavik and works as a glassblower.",
                   probes=[("Where does my sister live?", "Reykjavik")])
    store = PolicyStore(agent.adapters)
    v1 = _randomised_policy(lm, agent.config, store, 1)

    writer = policy_writer(agent.lm, agent.config, None, style="user", journal=agent.journal)
    assert writer.lm.name.endswith("+policy:v0001") and writer.style == "user"
    prompt = [writer.prompt(writer.config.formats[0], "My sister Ines lives in Reykjavik.")]
    greedy = GenerationParams(max_new_tokens=12)
    assert writer.lm.complete(prompt, greedy) != agent.lm.complete(prompt, greedy)
    assert agent.lm.complete(prompt, greedy) == agent.lm.complete(prompt, greedy)  # base untouched

    report = agent.consolidate(k=1, dry_run=True, policy_version="active")
    assert report.candidates_tried == 1
    authors = {r[0] for r in agent.journal.execute("SELECT policy FROM candidates")}
    assert authors == {writer.lm.name}

    # the CLI: list, show, rollback across two versions
    _randomised_policy(lm, agent.config, store, 2)
    cli = CliRunner()
    home = ["--home", str(agent.config.home)]
    out = cli.invoke(app, ["policy", "list", *home])
    assert out.exit_code == 0 and "v0002" in out.output and "v0001" in out.output
    out = cli.invoke(app, ["policy", "show", "2", *home])
    assert out.exit_code == 0 and "checksums verify" in out.output
    out = cli.invoke(app, ["policy", "rollback", *home])
    assert out.exit_code == 0 and "v0001 is active" in out.output
    assert store.active().id == v1.id

    # a corrupted version is refused; asked for by number it is an error
    weights = v1.path / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptAdapterError):
        agent.consolidate(k=1, dry_run=True, policy_version=1)
    out = cli.invoke(app, ["policy", "rollback", "--to", "1", *home])
    assert out.exit_code == 1 and "CorruptAdapterError" in out.output
