"""The callback handler's logic with LangChain's scripted fake chat model.

The fake stands for "any chat model" (what is under test is what the handler
logs); tests/integration_tests/test_callbacks.py runs it with a real model and
real derivation.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from seal_agent import SealAgent

from langchain_seal_agent import MissingNamespaceError, SealAgentCallbackHandler


@pytest.fixture
def agent(tmp_path):
    with SealAgent.open(tmp_path / "home", agent={"derive": "off"}) as a:
        yield a


def _fake(*replies: Any) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(replies))


def test_logs_the_exchange_with_the_namespace_from_metadata(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    model = _fake(AIMessage("Noted: you live in Lyon."))
    model.invoke(
        [SystemMessage("You are kind."), HumanMessage("I live in Lyon.")],
        config={"callbacks": [handler], "metadata": {"session_id": "web-1"}},
    )
    [turn] = agent.journal.interactions(user_id="maya")
    assert turn.namespace.session_id == "web-1"
    assert [(m.role, m.content) for m in turn.messages] == [
        ("user", "I live in Lyon."), ("assistant", "Noted: you live in Lyon."),
    ]
    assert turn.metadata["source"] == "callback"
    assert handler.logged == [turn.id]


def test_streamed_answers_are_logged_once(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    model = _fake(AIMessage("one two three"))
    chunks = list(model.stream("count", config={"callbacks": [handler]}))
    assert len(chunks) > 1
    [turn] = agent.journal.interactions(user_id="maya")
    assert turn.messages[1].content == "one two three"


def test_a_failed_generation_logs_nothing(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    model = _fake()  # no reply left: the model raises
    with pytest.raises(StopIteration):
        model.invoke("I live in Lyon.", config={"callbacks": [handler]})
    assert agent.journal.interactions() == []
    assert handler._runs == {}  # nothing left pending either


def test_tool_calls_and_empty_answers_are_skipped(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    call = AIMessage("", tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "c1"}])
    _fake(call).invoke("look it up", config={"callbacks": [handler]})
    FakeListChatModel(responses=["  "]).invoke("hello", config={"callbacks": [handler]})
    assert agent.journal.interactions() == []


def test_missing_user_id_warns_or_raises(agent, caplog):
    quiet = SealAgentCallbackHandler(agent)
    _fake(AIMessage("ok")).invoke("hi", config={"callbacks": [quiet]})  # the app's call goes on
    assert isinstance(quiet.failures[-1], MissingNamespaceError)
    assert "user_id" in caplog.text
    loud = SealAgentCallbackHandler(agent, raise_error=True)
    with pytest.raises(MissingNamespaceError):
        _fake(AIMessage("ok")).invoke("hi", config={"callbacks": [loud]})
    assert agent.journal.interactions() == []


def test_batch_logs_each_prompt(agent):
    handler = SealAgentCallbackHandler(agent, user_id="maya")
    model = FakeListChatModel(responses=["A", "B"])
    model.batch(["first", "second"], config={"callbacks": [handler]})
    turns = agent.journal.interactions(user_id="maya")
    assert sorted(t.messages[0].content for t in turns) == ["first", "second"]
