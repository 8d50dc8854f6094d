"""A user's answer that turns up in a general answer holds back only its own memory.

On the real default model: two facts are told, and the gate's general
questions get one more, which the dog's memory is sure to answer ("What is my
dog called?" is one of its train questions). The first adapter says "Biscuit"
there, a leak; consolidation must train once more without the dog's memory,
promote that adapter (the job is said from the weights), keep the dog's memory
retrievable, and record what leaked. Seeded; nothing here skips. (Statements
only at derivation and a smaller replay pool keep the two trainings short.)
"""

from __future__ import annotations

import pytest

from seal_agent import MemoryStatus

pytestmark = pytest.mark.slow

FACTS = {
    "dog": "My dog is called Biscuit, a beagle.",
    "job": "I work as a glassblower in Tacoma.",
}


def test_a_leaking_memory_is_trained_without_and_stays_retrievable(tmp_path, lm, embedder,
                                                                    monkeypatch):
    import seal_agent.memorize_gate as memorize_gate
    from seal_agent.agent import SealAgent
    from seal_agent.config import load_config

    # the base answers this one without the name; any adapter trained on the dog says it
    monkeypatch.setattr(memorize_gate, "GENERAL_CHECKS",
                        (("What is my dog called?", "dog"), *memorize_gate.GENERAL_CHECKS))
    config = load_config(home=tmp_path / "home", agent={"derive": "inline"},
                         selfedit={"samples_per_format": 0, "probes_per_interaction": 0},
                         consolidation={"model_pairs": False, "replay_general": 8})
    agent = SealAgent(config, lm=lm, embedder=embedder, user_id="kim")
    try:
        ids = {name: agent.remember(text).interaction_id for name, text in FACTS.items()}
        report = agent.consolidate()
        metrics = report.recall
        assert metrics is not None, report
        assert metrics["held_leaking"] == [ids["dog"]], metrics
        assert report.status == "promoted", report.reason
        assert metrics["leaked"] == [] and metrics["leaked_answers"] == []  # the state promoted
        assert metrics["verified_new"] >= 1  # the job, said from the weights

        # the dog's memory was never trained: it stays retrievable, the weights do not say it
        dog = agent.journal.self_edits(interaction_id=ids["dog"])
        assert dog and all(e.status is MemoryStatus.BUFFERED for e in dog)
        assert any("Biscuit" in m.text for m in agent.recall("What is my dog called?"))
        assert "Biscuit" not in agent.chat("What is my dog called?", retrieval=False).answer
        print("stage seconds", metrics["stage_seconds"], "seconds", metrics["seconds"])
    finally:
        agent.close()
