"""SealAgentRetriever against a buffer filled by real derivation."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests
from seal_agent import MemoryStatus, SealAgent

from langchain_seal_agent import MissingNamespaceError, SealAgentRetriever
from tests._shared import make_agent

pytestmark = pytest.mark.slow

FACTS = [
    "My beagle Biscuit loves the beach.",
    "Biscuit the beagle is three years old.",
    "My dog Biscuit sleeps on a blue cushion.",
    "Biscuit, my beagle, is afraid of thunder.",
]


@functools.cache
def seeded() -> SealAgent:
    """Four facts about one dog, derived by the real model (statements are always kept)."""
    agent = make_agent(
        Path(tempfile.mkdtemp(prefix="lc-retriever-")),
        agent={"derive": "inline"},
        selfedit={"formats": ["implication"], "max_new_tokens": 32, "probes_per_interaction": 0},
    )
    for fact in FACTS:
        agent.remember(fact, user_id="maya")
    return agent


class TestSealAgentRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[SealAgentRetriever]:
        return SealAgentRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"agent": seeded(), "user_id": "maya", "min_similarity": 0.0}

    @property
    def retriever_query_example(self) -> str:
        return "Tell me about my dog Biscuit"


def test_documents_carry_ids_and_scores():
    docs = SealAgentRetriever(agent=seeded(), user_id="maya", k=3).invoke("my dog's name")
    assert docs and all(d.id == d.metadata["id"] for d in docs)
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert all(d.metadata["status"] == "buffered" for d in docs)
    assert any("Biscuit" in d.page_content for d in docs)


def test_namespace_from_configurable_and_isolation():
    retriever = SealAgentRetriever(agent=seeded())
    with pytest.raises(MissingNamespaceError):
        retriever.invoke("dog")
    assert retriever.invoke("dog", config={"configurable": {"user_id": "maya"}})
    assert retriever.invoke("Biscuit the beagle", config={"configurable": {"user_id": "ben"}}) == []


def test_include_consolidated(tmp_path):
    agent = make_agent(tmp_path / "h", agent={"derive": "inline"},
                       selfedit={"formats": ["implication"], "probes_per_interaction": 0})
    agent.remember("My locker code is 4417.", user_id="ana")
    ids = [m.id for m in agent.recall("locker code", user_id="ana")]
    agent.journal.set_status(ids, MemoryStatus.CONSOLIDATED)
    agent.reconcile()
    assert SealAgentRetriever(agent=agent, user_id="ana").invoke("locker code") == []
    docs = SealAgentRetriever(agent=agent, user_id="ana", include_consolidated=True).invoke(
        "locker code"
    )
    assert {d.id for d in docs} == set(ids)
    assert {d.metadata["status"] for d in docs} == {"consolidated"}
    agent.close()
