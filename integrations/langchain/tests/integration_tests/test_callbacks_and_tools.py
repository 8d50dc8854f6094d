"""The callback handler and the memory tools with the real model and derivation.

The "hosted" model here is a local stand-in: a plain LangChain chat model on
the same SmolLM2 weights, with no memory of its own (see StandIn).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict
from seal_agent import GenerationParams, Message, SelfEditFormat

from langchain_seal_agent import ChatSealAgent, SealAgentCallbackHandler, create_memory_tools
from tests._shared import make_agent, models

pytestmark = pytest.mark.slow


class StandIn(BaseChatModel):
    """Any chat model: the real 135M model, no seal-agent memory."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    lm: Any
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "stand-in"

    def _generate(self, messages: list[BaseMessage], stop: Any = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kw: Any) -> ChatResult:
        if self.fail:
            raise RuntimeError("the hosted model is down")
        role = {"human": "user", "ai": "assistant", "system": "system"}
        converted = [Message(role=role[m.type], content=m.text) for m in messages]
        text = self.lm.chat(converted, GenerationParams(max_new_tokens=16))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


@pytest.fixture
def agent(tmp_path):
    a = make_agent(tmp_path / "home", agent={"derive": "inline", "max_new_tokens": 24})
    yield a
    a.close()


def test_a_hosted_models_conversation_becomes_local_memory(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    hosted = StandIn(lm=models()[0])
    answer = hosted.invoke(
        "I'm allergic to peanuts.",
        config={"callbacks": [handler], "metadata": {"session_id": "web"}},
    )
    [turn] = agent.journal.interactions(user_id="maya")
    assert turn.messages[1].content == answer.content
    assert turn.metadata["source"] == "callback"
    edits = agent.journal.self_edits(interaction_id=turn.id)
    assert SelfEditFormat.STATEMENT in {e.format for e in edits}
    # the local model, in a new session, gets the fact in its prompt
    local = ChatSealAgent(agent=agent, user_id="maya", max_tokens=12)
    reply = local.invoke("What am I allergic to?", config={"configurable": {"session_id": "app"}})
    retrieved = [agent.journal.get_self_edit(i).text
                 for i in reply.response_metadata["seal_agent"]["memories"]]
    assert any("peanut" in t.lower() for t in retrieved)


def test_a_failed_hosted_generation_logs_nothing(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    with pytest.raises(RuntimeError):
        StandIn(lm=models()[0], fail=True).invoke("I live in Lyon.", config={"callbacks": [handler]})
    assert agent.journal.interactions() == []


def test_chat_seal_agent_runs_are_not_logged_twice(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    ChatSealAgent(agent=agent, user_id="maya", max_tokens=8).invoke(
        "Hi", config={"callbacks": [handler]}
    )
    assert len(agent.journal.interactions(user_id="maya")) == 1


def test_memory_tools(agent):
    search, remember, forget = create_memory_tools(agent, user_id="maya")
    assert remember.invoke({"fact": "My bike is a red Peugeot."}).startswith("Remembered")
    found = search.invoke({"query": "What bike do I ride?"})
    assert "Peugeot" in found
    memory_id = found.split("]")[0].lstrip("[")
    # another user's tools cannot touch it
    _, _, other_forget = create_memory_tools(agent, user_id="ben")
    assert "no memory" in other_forget.invoke({"memory_id": memory_id})
    assert forget.invoke({"memory_id": memory_id}) == f"Forgot {memory_id}."
    assert memory_id not in search.invoke({"query": "What bike do I ride?"})
    # bad input comes back to the calling model as the tool's answer
    assert "EmptyInputError" in remember.invoke({"fact": "  "})
    # namespace per call from configurable
    s2, r2, _ = create_memory_tools(agent)
    r2.invoke({"fact": "I swim on Mondays."}, config={"configurable": {"user_id": "cy"}})
    assert "swim" in s2.invoke({"query": "swimming"}, config={"configurable": {"user_id": "cy"}})
