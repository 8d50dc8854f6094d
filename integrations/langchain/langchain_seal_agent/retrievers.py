"""SealAgentRetriever: the namespace's memories as LangChain Documents."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field
from seal_agent import SealAgent

from langchain_seal_agent._common import open_home, resolve_namespace, with_namespace

__all__ = ["SealAgentRetriever"]


class SealAgentRetriever(BaseRetriever):
    """Search a (user, agent) pair's memories: journal-checked buffer hits, best first.

    Each Document's ``id`` and ``metadata["id"]`` is the memory (self-edit)
    id, and ``metadata`` carries its cosine ``score``, ``format``, ``status``
    and source ``interaction_id``.  The namespace comes from the constructor,
    per call as keyword arguments, or from ``configurable`` (``user_id`` is
    required somewhere).  ``include_consolidated`` also searches memories that
    were already trained into the adapter.

    Example:
        ```python
        retriever = SealAgentRetriever(agent=agent, user_id="maya", k=3)
        retriever.invoke("allergies")
        ```
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    agent: SealAgent | None = Field(default=None, exclude=True)
    home: str | None = None
    user_id: str | None = None
    agent_id: str = "default"
    k: int = Field(4, ge=1, le=100)
    min_similarity: float | None = None
    """Cosine-similarity floor (None: the agent's ``buffer.min_similarity``)."""
    include_consolidated: bool = False

    @property
    def seal_agent(self) -> SealAgent:
        if self.agent is None:
            self.agent = open_home(self.home)
        return self.agent

    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        return super().invoke(input, config, **with_namespace(config, kwargs))

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        return await super().ainvoke(input, config, **with_namespace(config, kwargs))

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,  # accepted from configurable; memories span sessions
        include_consolidated: bool | None = None,
    ) -> list[Document]:
        ns = resolve_namespace(
            {"user_id": self.user_id, "agent_id": self.agent_id},
            {"user_id": user_id, "agent_id": agent_id},
            "SealAgentRetriever",
        )
        memories = self.seal_agent.recall(
            query,
            user_id=ns["user_id"],
            agent_id=ns["agent_id"],
            top_k=k or self.k,
            min_similarity=self.min_similarity,
            include_consolidated=(
                self.include_consolidated if include_consolidated is None else include_consolidated
            ),
        )
        return [
            Document(
                id=m.id,
                page_content=m.text,
                metadata={
                    "id": m.id,
                    "score": m.score,
                    "format": m.format.value,
                    "status": m.status.value,
                    "interaction_id": m.interaction_id,
                    "user_id": ns["user_id"],
                    "agent_id": ns["agent_id"],
                },
            )
            for m in memories
        ]
