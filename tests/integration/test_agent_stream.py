"""Streaming, caller-held history and exchanges answered by another model,
with the real model, real Chroma and real SQLite."""

from __future__ import annotations

import pytest

from seal_agent import (
    DeriveStatus,
    EmptyInputError,
    GenerationParams,
    InputError,
    MemoryStatus,
    Message,
    SelfEditFormat,
)

pytestmark = pytest.mark.slow

SHORT = GenerationParams(max_new_tokens=24)


def test_stream_yields_the_answer_it_logs_once(make_agent):
    agent = make_agent(user_id="ana", agent={"derive": "off"})
    stream = agent.stream("Say hello to me.", session_id="s", params=SHORT)
    assert agent.journal.interactions(user_id="ana") == []  # nothing before iteration
    chunks = list(stream)
    assert len(chunks) > 1, "the answer must arrive in pieces"
    [turn] = agent.journal.interactions(user_id="ana")
    assert [m.role for m in turn.messages] == ["user", "assistant"]
    assert turn.messages[1].content == "".join(chunks) == stream.result.answer
    assert turn.metadata["stream"] is True and "closed_early" not in turn.metadata


def test_a_stream_closed_early_stops_decoding_and_logs_what_was_shown(make_agent):
    agent = make_agent(user_id="ana", agent={"derive": "off"})
    stream = agent.stream(
        "Tell me a long story about a lighthouse.", params=GenerationParams(max_new_tokens=200)
    )
    it = iter(stream)
    first = next(it)
    stream.close()
    [turn] = agent.journal.interactions(user_id="ana")
    assert turn.messages[1].content == first.strip()
    assert turn.metadata["closed_early"] is True
    # the model is free again at once (decoding was cancelled, the lock released)
    assert agent.chat("Hi", params=GenerationParams(max_new_tokens=4)).answer


def test_stream_refuses_bad_input_before_logging(make_agent):
    agent = make_agent(user_id="ana", agent={"derive": "off"})
    with pytest.raises(EmptyInputError):
        agent.stream("   ")
    assert agent.journal.interactions(user_id="ana") == []


def test_caller_history_replaces_the_journal_session(make_agent):
    agent = make_agent(user_id="ana", agent={"derive": "off"})
    agent.chat("My name is Ana.", session_id="s", params=SHORT)
    history = [
        Message(role="user", content="My name is Zed."),
        Message(role="assistant", content="Hello Zed."),
    ]
    result = agent.chat(
        "What is my name?", session_id="s", history=history,
        system_prompt="You are terse.", params=SHORT,
    )
    assert result.history_turns == 1  # the caller's turn, not the journal's
    with pytest.raises(InputError):
        agent.chat("hi", history=[Message(role="system", content="x")])
    # the caller's history is not logged again: only this session's two turns are
    assert len(agent.journal.interactions(user_id="ana", session_id="s")) == 2


def test_log_exchange_goes_through_derivation(make_agent):
    agent = make_agent(user_id="bo")
    logged = agent.log_exchange(
        "My dog Pepper is a greyhound.", "What a lovely dog!", metadata={"model": "hosted"}
    )
    assert logged.derive_status is DeriveStatus.DONE
    turn = agent.journal.get_interaction(logged.interaction_id)
    assert [m.content for m in turn.messages] == ["My dog Pepper is a greyhound.", "What a lovely dog!"]
    assert turn.metadata == {"source": "external", "model": "hosted"}
    formats = {e.format for e in agent.journal.self_edits(interaction_id=logged.interaction_id)}
    assert {SelfEditFormat.STATEMENT, SelfEditFormat.EXCHANGE} <= formats
    assert any("Pepper" in m.text for m in agent.recall("What is my dog called?"))
    # bad input: a typed error, nothing logged
    for message, answer in (("", "ok"), ("hello", "  ")):
        with pytest.raises(EmptyInputError):
            agent.log_exchange(message, answer)
    assert len(agent.journal.interactions(user_id="bo")) == 1


def test_an_open_turn_is_answered_later(make_agent):
    agent = make_agent(user_id="cy")
    opened = agent.log_exchange("I grow chillies on my balcony.")
    assert opened.derive_status is DeriveStatus.PENDING  # nothing to derive without an answer
    done = agent.answer_turn(opened.interaction_id, "Nice, which kinds?")
    assert done.derive_status is DeriveStatus.DONE
    with pytest.raises(InputError):
        agent.answer_turn(opened.interaction_id, "again")


def test_recall_can_include_consolidated_memories(make_agent):
    agent = make_agent(user_id="di")
    agent.remember("My passport number is X1234567.")
    assert agent.recall("passport number")
    # Every memory derived from it, not only the top_k a search returns.
    ids = [e.id for e in agent.journal.self_edits(user_id="di")]
    agent.journal.set_status(ids, MemoryStatus.CONSOLIDATED)
    agent.reconcile()
    assert agent.recall("passport number") == []
    again = agent.recall("passport number", include_consolidated=True)
    assert again
    assert {m.id for m in again} <= set(ids)
