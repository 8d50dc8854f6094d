"""Consolidation with the real model: real LoRA training (kept tiny), real
adapters on disk, real SQLite and Chroma."""

from __future__ import annotations

import json

import pytest

from seal_agent import ConsolidationBusyError, MemoryStatus
from seal_agent.runs import RunStore

pytestmark = pytest.mark.slow

# Few candidates, few epochs: seconds per interaction on 2 cores.
# The SEAL loop on the gold-answer log-likelihood (mode "loglik"); recall mode: test_memorize.py
FAST = {"mode": "loglik", "k": 2, "inner_epochs": 2, "update_epochs": 3, "inner_lr": 1e-3,
        "update_lr": 1e-3}


def _remember(agent, user="ana"):
    agent.remember("My dog is a beagle called Biscuit.", user_id=user,
                   probes=[("What is my dog called?", "Biscuit")])
    agent.remember("I work as a glassblower in Tacoma.", user_id=user,
                   probes=[("What is my job?", "glassblower")])


def test_empty_buffer_is_a_clear_no_op(make_agent):
    agent = make_agent(consolidation=FAST)
    report = agent.consolidate(user_id="nobody")
    assert report.status == "empty" and report.run_id is None
    assert "nothing to consolidate" in report.reason


def test_consolidation_end_to_end(make_agent, caplog):
    agent = make_agent(consolidation={**FAST, "min_recall_gain": -1e9})  # promote whatever wins
    _remember(agent)
    events = []
    report = agent.consolidate(user_id="ana", progress=events.append)

    # the loop ran on real generations and real training
    assert report.candidates_tried == 4
    assert all(c.tokens > 0 or c.reward is None for r in report.interactions for c in r.candidates)
    assert {e.stage for e in events} >= {"probes", "candidates", "train", "score"}
    rows = agent.journal.execute("SELECT reward, chosen, prompt, completion FROM candidates")
    assert len(rows) == 4  # every (prompt, candidate, directive, reward) is kept
    assert all(r["prompt"] and r["completion"] is not None for r in rows)
    assert sum(r["chosen"] for r in rows) == report.chosen

    # min_recall_gain = -1e9 and a seeded run: a candidate always wins, so promotion is checked
    assert report.chosen > 0, report.reason

    assert report.status == "promoted", report.reason
    assert report.recall_after is not None and report.recall_before is not None
    version = agent.adapters.active("ana", "default")
    assert version is not None and version.version == 1
    agent.adapters.verify(version)
    manifest = json.loads((version.path / "manifest.json").read_text())
    assert manifest["config"]["consolidation"]["k"] == 2
    assert "recall_after" in manifest["metrics"]

    # drained: the chosen interactions' memories left retrieval, journal says consolidated
    chosen_ids = [r.interaction_id for r in report.interactions if r.outcome == "chosen"]
    for iid in chosen_ids:
        statuses = {e.status for e in agent.journal.self_edits(interaction_id=iid) if e.retrievable}
        assert statuses == {MemoryStatus.CONSOLIDATED}
    assert not any(h.interaction_id in chosen_ids for h in agent.recall("dog beagle Biscuit job glassblower", user_id="ana"))

    # the next turn answers through the adapter, with retrieval off; another user never does
    turn = agent.chat("What is my dog called?", user_id="ana", session_id="w", retrieval=False)
    assert turn.adapter == version.id
    other = agent.chat("What is my dog called?", user_id="ben", session_id="w", retrieval=False)
    assert other.adapter is None
    base = agent.chat("What is my dog called?", user_id="ana", session_id="b", retrieval=False, weights=False)
    assert base.adapter is None

    # status and the run record
    run = RunStore(agent.journal).last_run("ana", "default")
    assert run["status"] == "promoted" and run["metrics"]["candidates_tried"] == 4

    # a corrupted adapter on disk is refused by the next process, which says so
    weights = version.path / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    return_home = agent.config.home
    agent.close()
    fresh = make_agent(home=return_home, consolidation=FAST)
    import logging

    with caplog.at_level(logging.WARNING, logger="seal_agent"):
        refused = fresh.chat("What is my dog called?", user_id="ana", session_id="x", retrieval=False)
    assert refused.adapter is None  # v0001 was the only version: the base model answers
    assert any("v0001 failed its checksum" in r.getMessage() for r in caplog.records)
    assert fresh.adapters.loadable("ana", "default")[0] is None


def test_gate_refuses_an_update_that_breaks_retention(make_agent):
    agent = make_agent(consolidation={**FAST, "min_recall_gain": -1e9})
    agent.remember("My dog is a beagle called Biscuit.", user_id="cy",
                   probes=[("What is my dog called?", "Biscuit")])
    first = agent.consolidate(user_id="cy")
    assert first.status == "promoted", first.reason  # min_recall_gain = -1e9: a winner is certain
    v1 = agent.adapters.active("cy", "default")
    # A destructive update: no replay, a huge learning rate for many epochs.
    agent.config.consolidation.replay = 0
    agent.config.consolidation.update_lr = 1e-2
    agent.config.consolidation.update_epochs = 20
    agent.config.consolidation.max_retention_drop = 0.05
    # more sampled candidates: with 2, the self-edit gate has dropped both (a fresh-clone CI
    # run, 2026-12-04: 0 tokens trained, nothing_to_promote), and the gate was never reached
    agent.config.consolidation.k = 4
    agent.remember("I work as a glassblower in Tacoma.", user_id="cy",
                   probes=[("What is my job?", "glassblower")])
    second = agent.consolidate(user_id="cy")
    assert second.retention_probes >= 1
    assert second.status != "nothing_to_promote", second.reason
    assert second.status == "gate_rejected", second.reason
    assert "retention" in second.reason
    assert second.retention_after < second.retention_before - 0.05
    assert agent.adapters.active("cy", "default").id == v1.id  # the old adapter stays
    glass = [e for e in agent.journal.self_edits(user_id="cy") if "glassblower" in e.text]
    assert glass and all(e.status is MemoryStatus.BUFFERED for e in glass)


def test_one_consolidation_per_namespace(make_agent):
    import threading

    # The lock is taken before anything is read or trained, so an empty namespace shows it:
    # no derivation, no training (the loop itself is tested above).
    agent = make_agent(consolidation=FAST, agent={"derive": "off"})
    held, release = threading.Event(), threading.Event()

    def other_run() -> None:  # another consolidation of the same namespace
        with agent.adapters.lock("dee", "default"):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(30)
        with pytest.raises(ConsolidationBusyError):
            agent.consolidate(user_id="dee")
        # another namespace is never blocked
        assert agent.consolidate(user_id="dan").status == "empty"
    finally:
        release.set()
        thread.join()
    # free again once the other run ended
    assert agent.consolidate(user_id="dee").status == "empty"


def test_dry_run_promotes_nothing(make_agent):
    agent = make_agent(consolidation={**FAST, "k": 1, "min_recall_gain": -1e9})
    _remember(agent, user="eve")
    report = agent.consolidate(user_id="eve", dry_run=True)
    assert report.status == "dry_run"
    assert agent.adapters.active("eve", "default") is None
    assert all(e.status is MemoryStatus.BUFFERED for e in agent.journal.self_edits(user_id="eve"))
