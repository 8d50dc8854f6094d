"""The remote backend against a real OpenAI-compatible server: the project's own
`seal-agent serve` app, run by uvicorn on a loopback port with the session's
packaged model, talked to by a second `SealAgent` whose `model.backend` is
`openai`, over real httpx.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from seal_agent.config import load_config
from seal_agent.errors import BackendCapabilityError, BackendUnavailableError
from seal_agent.models.base import GenerationParams
from seal_agent.models.remote import RemoteLM

MODEL = "smollm2-135m-instruct"
KEY = "remote-key-0123456789abcdef"
TENANT = "acme"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str  # the API root, as model.base_url takes it
    agent: Any  # the server's own agent (its journal holds what it was asked)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, lm: Any, embedder: Any) -> Iterator[Server]:
    import uvicorn

    from seal_agent.agent import SealAgent
    from seal_agent.serve.app import create_app

    cfg = load_config(
        home=tmp_path_factory.mktemp("remote-server") / "home",
        agent={"derive": "off", "max_new_tokens": 16},
        serve={"api_keys": {KEY: TENANT}},
    )
    agent = SealAgent(cfg, lm=lm, embedder=embedder)
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(agent), host="127.0.0.1", port=port,
                                       log_level="warning"))
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}/v1", agent)
    uv.should_exit = True
    thread.join(30)
    agent.close()


def _remote_config(home: Path, url: str, **model: Any) -> Any:
    return load_config(
        home=home,
        model={"backend": "openai", "base_url": url, "api_key": KEY, "timeout": 60,
               "max_retries": 0, **model},
        agent={"derive": "off", "max_new_tokens": 16},
    )


@pytest.fixture
def remote_agent(tmp_path: Path, server: Server, embedder: Any) -> Iterator[Any]:
    from seal_agent.agent import SealAgent

    agent = SealAgent(_remote_config(tmp_path / "client", server.url), embedder=embedder,
                      user_id="maya")
    yield agent
    agent.close()


def _served_answers(server: Server) -> list[str]:
    turns = server.agent.journal.interactions(user_id="default", agent_id=TENANT)
    return [t.messages[-1].content for t in turns if t.messages[-1].role == "assistant"]


def test_a_chat_turn_through_the_server_is_logged_here(remote_agent: Any, server: Server,
                                                       lm: Any) -> None:
    assert isinstance(remote_agent.lm, RemoteLM)
    # the server lists max_model_len, as vLLM does: prompts are sized by the served window
    assert remote_agent.lm.context_length == lm.context_length
    result = remote_agent.chat("What is the capital of France?")
    assert result.answer.strip()
    logged = remote_agent.journal.interactions(user_id="maya")
    assert len(logged) == 1
    assert [m.role for m in logged[0].messages] == ["user", "assistant"]
    assert logged[0].messages[-1].content == result.answer
    assert logged[0].metadata["model"] == MODEL
    # the answer is the served model's: the server logged the same text for its tenant
    assert result.answer in _served_answers(server)


def test_a_streamed_turn_arrives_in_pieces_and_is_logged_once(remote_agent: Any) -> None:
    stream = remote_agent.stream("Name three colours.")
    pieces = list(stream)
    assert len(pieces) > 1, "the server's SSE events arrive one by one"
    assert stream.result is not None and stream.result.answer == "".join(pieces)
    logged = remote_agent.journal.interactions(user_id="maya")
    assert len(logged) == 1 and logged[0].metadata.get("stream") is True
    assert logged[0].messages[-1].content == stream.result.answer


def test_completion_falls_back_to_chat_where_the_server_has_no_completions(
    remote_agent: Any, server: Server
) -> None:
    lm = remote_agent.lm
    before = len(_served_answers(server))
    out = lm.complete(["Q: What colour is the sky on a clear day?\nA:"],
                      GenerationParams(max_new_tokens=8))
    assert len(out) == 1 and out[0]
    assert lm._completions is False  # `seal-agent serve` answered 404 on /completions
    assert len(_served_answers(server)) == before + 1  # ... and the prompt came as one chat turn


def test_consolidating_without_a_trainer_is_a_typed_error(remote_agent: Any) -> None:
    remote_agent.remember("My sister Ines lives in Reykjavik.")
    with pytest.raises(BackendCapabilityError, match="model.trainer") as info:
        remote_agent.consolidate()
    assert info.value.capability == "consolidate"
    assert remote_agent.journal.interactions(user_id="maya"), "the memory was still logged"


def test_a_trainer_source_resolves_to_the_same_local_base(tmp_path: Path, server: Server,
                                                          embedder: Any, lm: Any) -> None:
    from seal_agent.agent import SealAgent
    from seal_agent.consolidation import Consolidator
    from seal_agent.models import trainable_base

    cfg = _remote_config(tmp_path / "client", server.url, trainer=MODEL, max_context=1024)
    agent = SealAgent(cfg, embedder=embedder)
    try:
        base = trainable_base(agent.lm)
        assert base is agent.lm.trainer and base.source == lm.source and base.device == "cpu"
        text = "Ines moved to Bergen in 2024."
        assert agent.lm.count_tokens(text) == lm.count_tokens(text)  # the base's own tokenizer
        cons = Consolidator(cfg, agent.journal, policy=agent.lm)  # builds; nothing is trained
        assert cons.base is base and cons.policy is agent.lm
    finally:
        agent.close()


def test_a_server_that_is_down_is_a_typed_error_after_the_retries(tmp_path: Path,
                                                                  embedder: Any) -> None:
    from seal_agent.agent import SealAgent

    down = f"http://127.0.0.1:{_free_port()}/v1"  # bound, then closed: connections are refused
    sleeps: list[float] = []
    lm = RemoteLM(MODEL, down, max_retries=2, backoff=0.01, timeout=2, sleep=sleeps.append)
    with pytest.raises(BackendUnavailableError, match="after 3 tries") as info:
        lm.chat([])
    assert isinstance(info.value.__cause__, httpx.ConnectError) and sleeps == [0.01, 0.02]
    cfg = _remote_config(tmp_path / "client", down, max_retries=1, timeout=2, max_context=1024)
    agent = SealAgent(cfg, embedder=embedder)
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="after 2 tries"):
            agent.chat("Is anyone there?")
        assert time.monotonic() - started < 10
    finally:
        agent.close()
