"""The journal-backed message history (real SQLite; derivation off, so no model)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from seal_agent import EmptyInputError, SealAgent

from langchain_seal_agent import SealAgentChatMessageHistory, UnsupportedMessageError


@pytest.fixture
def agent(tmp_path):
    with SealAgent.open(tmp_path / "home", agent={"derive": "off"}) as a:
        yield a


def test_round_trip_and_sessions_apart(agent):
    h = SealAgentChatMessageHistory("s1", user_id="maya", agent=agent)
    h.add_messages([HumanMessage("I have a beagle."), AIMessage("Lovely!")])
    h.add_user_message("Her name is Biscuit.")
    h.add_ai_message("Cute name.")
    assert [(type(m).__name__, m.content) for m in h.messages] == [
        ("HumanMessage", "I have a beagle."), ("AIMessage", "Lovely!"),
        ("HumanMessage", "Her name is Biscuit."), ("AIMessage", "Cute name."),
    ]
    turns = agent.journal.interactions(user_id="maya", session_id="s1")
    assert len(turns) == 2 and all(len(t.messages) == 2 for t in turns)
    other = SealAgentChatMessageHistory("s2", user_id="maya", agent=agent)
    assert other.messages == []
    assert SealAgentChatMessageHistory("s1", user_id="ben", agent=agent).messages == []


def test_bad_messages_log_nothing(agent):
    h = SealAgentChatMessageHistory("s1", user_id="maya", agent=agent)
    for bad in (
        [HumanMessage("fine"), ToolMessage("42", tool_call_id="t")],
        [HumanMessage("fine"), AIMessage("   ")],
        [SystemMessage("be brief"), HumanMessage("hi")],
        [AIMessage("an answer to nothing")],
    ):
        with pytest.raises((UnsupportedMessageError, EmptyInputError)):
            h.add_messages(bad)
    assert h.messages == []
    assert agent.journal.interactions() == []


def test_an_answer_already_logged_by_the_model_is_not_logged_twice(agent):
    h = SealAgentChatMessageHistory("s1", user_id="maya", agent=agent)
    logged = agent.log_exchange("hi", "hello", user_id="maya", session_id="s1")
    answer = AIMessage("hello", response_metadata={"seal_agent": {"interaction_id": logged.interaction_id}})
    h.add_messages([HumanMessage("hi"), answer])
    assert len(agent.journal.interactions(user_id="maya")) == 1
    # the same metadata from another session's history is logged there
    SealAgentChatMessageHistory("s2", user_id="maya", agent=agent).add_messages(
        [HumanMessage("hi"), answer]
    )
    assert len(agent.journal.interactions(user_id="maya")) == 2


def test_clear_forgets_the_session_only(agent):
    a = SealAgentChatMessageHistory("s1", user_id="maya", agent=agent)
    b = SealAgentChatMessageHistory("s2", user_id="maya", agent=agent)
    a.add_messages([HumanMessage("one"), AIMessage("1")])
    b.add_messages([HumanMessage("two"), AIMessage("2")])
    a.clear()
    assert a.messages == [] and len(b.messages) == 2
