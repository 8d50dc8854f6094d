"""The buffer against the real embedded Chroma store: retrieval rules and
the repair of gaps a crash leaves between journal and buffer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seal_agent import InteractionKind, MemoryStatus, Message, Namespace, SelfEdit, SelfEditFormat

pytestmark = pytest.mark.slow


def _edit(interaction_id: str, ns: Namespace, text: str, n: int) -> SelfEdit:
    return SelfEdit(
        id=f"mem_test_{n}",
        interaction_id=interaction_id,
        namespace=ns,
        format=SelfEditFormat.IMPLICATION,
        text=text,
        author="test",
        created_at=datetime.now(UTC),
    )


def _seed(agent, texts, user="mo"):
    ns = Namespace(user_id=user)
    inter = agent.journal.log_interaction(ns, InteractionKind.DOCUMENT, [Message(role="user", content=" ".join(texts))])
    edits = [_edit(inter.id, ns, t, n) for n, t in enumerate(texts)]
    agent.journal.save_derivation(inter.id, edits, [], {})
    return inter, edits


def test_floor_dedup_and_status_filter(make_agent):
    agent = make_agent(agent={"derive": "off"})
    _, edits = _seed(agent, [
        "The user's dog is called Biscuit.",
        "The user's dog is called Biscuit!",  # same fact, same words
        "The user's dog is named Biscuit.",  # near-duplicate
        "The user likes quantum chromodynamics lectures.",
    ])
    agent.reconcile()  # indexes what the journal holds
    hits = agent.recall("what is my dog called", user_id="mo")
    texts = [h.text for h in hits]
    assert texts[0].startswith("The user's dog is")
    assert len([t for t in texts if "Biscuit" in t]) == 1, texts  # de-duplicated
    assert not any("chromodynamics" in t for t in texts)  # below the floor
    assert all(-1 <= h.score <= 1 for h in hits)
    # a consolidated memory leaves retrieval
    agent.journal.set_status([edits[0].id, edits[1].id, edits[2].id], MemoryStatus.CONSOLIDATED)
    agent.buffer.set_status([edits[0].id, edits[1].id, edits[2].id], MemoryStatus.CONSOLIDATED)
    assert not any("Biscuit" in h.text for h in agent.recall("what is my dog called", user_id="mo"))


def test_reconcile_repairs_both_directions(make_agent):
    agent = make_agent(agent={"derive": "off"})
    _ = agent.buffer  # opening the buffer reconciles once; start from a clean state
    _, edits = _seed(agent, ["The user's boat is named Marigold.", "The user sails on Lake Geneva."])
    assert agent.reconcile() == (2, 0)
    assert {e.id for e in edits} <= agent.buffer.ids()
    # a crash after the journal forgot a memory but before the buffer did: an orphan
    agent.journal.forget_self_edit(edits[0].id)
    assert edits[0].id in agent.buffer.ids()
    # retrieval never shows it (journal cross-check) and removes it on the way
    assert not any(h.id == edits[0].id for h in agent.recall("boat name", user_id="mo"))
    assert edits[0].id not in agent.buffer.ids()
    # a crash between the journal commit and the buffer write: unindexed rows
    _, more = _seed(agent, ["The user's kayak is yellow."])
    assert agent.reconcile() == (1, 0)
    assert more[0].id in agent.buffer.ids()
    # status drift (journal says consolidated, buffer still buffered) is repaired
    agent.journal.set_status([edits[1].id], MemoryStatus.CONSOLIDATED)
    agent.reconcile()
    assert not any(h.id == edits[1].id for h in agent.recall("where does the user sail", user_id="mo"))


def test_an_emptied_store_is_refilled_from_the_journal(make_agent):
    agent = make_agent(agent={"derive": "off"})
    _ = agent.buffer
    _, edits = _seed(agent, ["The user's boat is named Marigold.", "The user sails on Lake Geneva."])
    agent.reconcile()
    agent.buffer.delete(agent.buffer.ids())  # the store lost everything it had confirmed
    assert agent.buffer.ids() == set()
    report = agent.reprocess()
    assert report.reindexed == 2
    assert {e.id for e in edits} == agent.buffer.ids()


def test_a_collection_built_by_another_embedder_is_refused(make_agent, embedder, tmp_path):
    from seal_agent import ConfigError
    from seal_agent.buffer import Buffer, make_chroma_client
    from seal_agent.config import load_config

    cfg = load_config(home=tmp_path / "emb")
    Buffer(make_chroma_client(cfg), embedder, cfg.buffer)  # creates the collection

    class Other:
        name = "another-embedder"
        dimension = 8

        def embed(self, texts):
            return [[0.0] * 8 for _ in texts]

    with pytest.raises(ConfigError, match="new name"):
        Buffer(make_chroma_client(cfg), Other(), cfg.buffer)
