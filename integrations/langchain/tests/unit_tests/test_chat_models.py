"""ChatSealAgent without decoding: LangChain's standard unit suite, message
conversion and namespace resolution (pure logic; the journal is real SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_tests.unit_tests import ChatModelUnitTests
from seal_agent import InvalidNamespaceError, SealAgent

from langchain_seal_agent import (
    ChatSealAgent,
    MissingNamespaceError,
    ToolCallingNotSupportedError,
    UnsupportedMessageError,
)
from langchain_seal_agent._common import resolve_namespace, split_conversation, with_namespace

_HOME: dict[str, SealAgent] = {}


def _agent(tmp: Path | None = None) -> SealAgent:
    # Opening a home loads no model: the unit suite never decodes.
    if "a" not in _HOME:
        import tempfile

        _HOME["a"] = SealAgent.open(Path(tempfile.mkdtemp(prefix="lc-unit-")))
    return _HOME["a"]


class TestChatSealAgentUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatSealAgent]:
        return ChatSealAgent

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"agent": _agent(), "user_id": "unit"}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # A local model: no API key, no network timeout, no retries to configure.
        params = super().standard_chat_model_params
        for key in ("api_key", "timeout", "max_retries"):
            params.pop(key, None)
        return params

    @property
    def has_tool_calling(self) -> bool:
        # bind_tools is overridden only to raise a clearer error: the 135M model
        # cannot call tools, so every tool-calling test is skipped by the suite.
        return False


def test_bind_tools_says_why_it_cannot():
    model = ChatSealAgent(agent=_agent(), user_id="u")
    with pytest.raises(ToolCallingNotSupportedError, match="cannot call tools"):
        model.bind_tools([])
    with pytest.raises(NotImplementedError):
        model.with_structured_output({"title": "x", "type": "object", "properties": {}})


def test_unknown_constructor_arguments_are_refused():
    with pytest.raises(ValueError, match="user"):
        ChatSealAgent(agent=_agent(), user="maya")


def test_split_conversation():
    system, history, text = split_conversation([
        SystemMessage("Be brief."),
        HumanMessage("hi"),
        AIMessage("hello"),
        SystemMessage("Be kind."),
        ChatMessage(role="user", content="again"),
        AIMessage([{"type": "text", "text": "sure"}]),
        HumanMessage([{"type": "text", "text": "What is "}, "my name?"], name="maya"),
    ])
    assert system == "Be brief.\n\nBe kind."
    assert [(m.role, m.content) for m in history] == [
        ("user", "hi"), ("assistant", "hello"), ("user", "again"), ("assistant", "sure"),
    ]
    assert text == "What is my name?"


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [HumanMessage("hi"), AIMessage("hello")],  # must end with the user's message
        [ToolMessage("42", tool_call_id="t1"), HumanMessage("and?")],
        [AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]), HumanMessage("x")],
        [HumanMessage([{"type": "image_url", "image_url": {"url": "data:,"}}])],
        [ChatMessage(role="tool", content="x")],
    ],
)
def test_unsupported_conversations_raise_before_anything(messages):
    with pytest.raises(UnsupportedMessageError):
        split_conversation(messages)


def test_namespace_resolution():
    defaults = {"user_id": None, "agent_id": "default", "session_id": "default"}
    with pytest.raises(MissingNamespaceError, match="configurable"):
        resolve_namespace(defaults, {}, "X")
    ns = resolve_namespace(defaults, {"user_id": "maya", "session_id": "tue"}, "X")
    assert ns == {"user_id": "maya", "agent_id": "default", "session_id": "tue"}
    with pytest.raises(InvalidNamespaceError):
        resolve_namespace(defaults, {"user_id": "../etc"}, "X")
    # explicit keyword arguments win over configurable
    config = {"configurable": {"user_id": "cfg", "session_id": "s1", "other": 1}}
    assert with_namespace(config, {"user_id": "kw"}) == {"user_id": "kw", "session_id": "s1"}
    assert with_namespace(None, {}) == {}


def test_missing_namespace_is_an_error_before_logging():
    agent = _agent()
    before = len(agent.journal.interactions())
    model = ChatSealAgent(agent=agent)  # no user_id anywhere
    with pytest.raises(MissingNamespaceError):
        model.invoke("hello")
    assert len(agent.journal.interactions()) == before
