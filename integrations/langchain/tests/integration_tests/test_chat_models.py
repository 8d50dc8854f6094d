"""ChatSealAgent with the real default model: LangChain's standard integration
suite, then what is ours: memory in the prompt, logging, the namespace."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_tests.integration_tests import ChatModelIntegrationTests
from seal_agent import EmptyInputError, InputTooLongError

from langchain_seal_agent import (
    ChatSealAgent,
    MissingNamespaceError,
    SealAgentChatMessageHistory,
    UnsupportedMessageError,
)
from tests._shared import make_agent, suite_agent

pytestmark = pytest.mark.slow


class TestChatSealAgentIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatSealAgent]:
        return ChatSealAgent

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"agent": suite_agent(), "user_id": "suite", "max_tokens": 16}

    @property
    def has_tool_calling(self) -> bool:
        # The 135M default model cannot call tools: bind_tools raises
        # ToolCallingNotSupportedError; the suite skips its tool tests.
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False


@pytest.fixture
def agent(tmp_path):
    a = make_agent(tmp_path / "home", agent={"derive": "inline", "max_new_tokens": 24})
    yield a
    a.close()


def test_a_remembered_fact_is_retrieved_into_the_prompt_of_a_new_session(agent):
    agent.remember("My sister Ines lives in Reykjavik.", user_id="maya")
    model = ChatSealAgent(agent=agent, user_id="maya")
    reply = model.invoke(
        "Where does my sister live?", config={"configurable": {"session_id": "new"}}
    )
    meta = reply.response_metadata["seal_agent"]
    assert meta["session_id"] == "new"
    retrieved = [agent.journal.get_self_edit(i).text for i in meta["memories"]]
    assert any("Reykjavik" in t for t in retrieved)
    # logged once, in that session, with the answer the caller got
    [turn] = agent.journal.interactions(user_id="maya", session_id="new")
    assert turn.messages[-1].content == reply.content
    assert reply.usage_metadata["input_tokens"] == turn.metadata["prompt_tokens"]


def test_stream_is_token_by_token_and_logged_once(agent):
    model = ChatSealAgent(agent=agent, user_id="bo", retrieval=False)
    chunks = list(model.stream("Say hello.", config={"configurable": {"session_id": "s"}}))
    text = "".join(c.content for c in chunks)
    assert len(chunks) > 2
    assert chunks[-1].chunk_position == "last"
    [turn] = agent.journal.interactions(user_id="bo")
    assert turn.messages[-1].content == text
    assert turn.metadata["stream"] is True


async def test_async_calls_use_the_configurable_namespace(tmp_path):
    # namespaces from the run config are the point: no derivation needed
    agent = make_agent(tmp_path / "home", agent={"derive": "off", "max_new_tokens": 8})
    model = ChatSealAgent(agent=agent, retrieval=False, max_tokens=8)
    await model.ainvoke("Hi", config={"configurable": {"user_id": "cy", "session_id": "a"}})
    async for _ in model.astream("Hey", config={"configurable": {"user_id": "cy", "session_id": "b"}}):
        pass
    results = await model.abatch(
        ["One", "Two"], config={"configurable": {"user_id": "di", "session_id": "c"}}
    )
    assert len(results) == 2
    assert {t.namespace.session_id for t in agent.journal.interactions(user_id="cy")} == {"a", "b"}
    assert len(agent.journal.interactions(user_id="di", session_id="c")) == 2
    agent.close()


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ("   ", EmptyInputError),
        ([HumanMessage("hi"), AIMessage("hello")], UnsupportedMessageError),
        ([HumanMessage("x"), ToolMessage("42", tool_call_id="t")], UnsupportedMessageError),
        ("word " * 10_000, InputTooLongError),
    ],
)
def test_bad_input_raises_and_logs_nothing(agent, messages, error):
    model = ChatSealAgent(agent=agent, user_id="ed")
    with pytest.raises(error):
        model.invoke(messages)
    with pytest.raises(error):
        list(model.stream(messages))
    assert agent.journal.interactions(user_id="ed") == []


def test_missing_namespace_in_config_raises_and_logs_nothing(agent):
    model = ChatSealAgent(agent=agent)
    with pytest.raises(MissingNamespaceError):
        model.invoke("hi", config={"configurable": {"session_id": "s"}})
    assert agent.journal.interactions() == []


def test_runnable_with_message_history_logs_each_turn_once(agent):
    prompt = ChatPromptTemplate.from_messages([
        SystemMessage("You are a helpful assistant. Answer briefly."),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ])
    chain = RunnableWithMessageHistory(
        prompt | ChatSealAgent(agent=agent, retrieval=False, max_tokens=12),
        lambda session_id: _history(agent, session_id),
        input_messages_key="question",
        history_messages_key="history",
    )
    config = {"configurable": {"session_id": "m1", "user_id": "fay"}}
    chain.invoke({"question": "My favourite colour is teal."}, config=config)
    for _ in chain.stream({"question": "And I like jazz."}, config=config):
        pass
    turns = agent.journal.interactions(user_id="fay", session_id="m1")
    assert [t.messages[0].content for t in turns] == [
        "My favourite colour is teal.", "And I like jazz.",
    ]
    second = turns[1]
    assert second.metadata["source"] == "langchain"  # logged by the model, not again by the history


def _history(agent: Any, session_id: str) -> BaseChatMessageHistory:
    return SealAgentChatMessageHistory(session_id, user_id="fay", agent=agent)
