"""`seal-agent serve` with real parts: uvicorn on a loopback port, the packaged
model, real Chroma and SQLite, and the official ``openai`` client.

Most tests share one server with two API keys (tenants ``acme`` and
``globex``), run by uvicorn on a thread of this process so that it reuses the
session's loaded model. One test starts the real `seal-agent serve` command
as a process, with no keys, and stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from seal_agent.config import load_config
from seal_agent.errors import ConfigError
from seal_agent.journal import Journal
from seal_agent.serve.auth import check_bind

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
KEY_ACME = "acme-key-0123456789abcdef"
KEY_GLOBEX = "globex-key-0123456789abcdef"
FACT = "My sister Ines lives in Reykjavik."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    agent: Any

    def client(self, key: str = KEY_ACME) -> Any:
        import openai

        return openai.OpenAI(base_url=f"{self.base}/v1", api_key=key, max_retries=0, timeout=120)

    def http(self, key: str | None = KEY_ACME, **headers: str) -> httpx.Client:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=120)

    def turns(self, user: str, agent: str) -> list[Any]:
        return self.agent.journal.interactions(user_id=user, agent_id=agent)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, lm: Any, embedder: Any) -> Iterator[Served]:
    import uvicorn

    from seal_agent.agent import SealAgent
    from seal_agent.serve.app import create_app

    cfg = load_config(
        home=tmp_path_factory.mktemp("serve") / "home",
        # inline derivation with nothing for the model to write: a remembered fact is
        # retrievable as soon as `remember` answers, at no decoding cost
        agent={"derive": "inline", "max_new_tokens": 16},
        selfedit={"samples_per_format": 0, "probes_per_interaction": 0},
        consolidation={"model_pairs": False},
        serve={"api_keys": {KEY_ACME: "acme", KEY_GLOBEX: "globex"}},
    )
    agent = SealAgent(cfg, lm=lm, embedder=embedder)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(agent), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield Served(f"http://127.0.0.1:{port}", agent)
    server.should_exit = True
    thread.join(30)
    agent.close()


def _remember(served: Served, key: str, user: str, text: str) -> dict[str, Any]:
    with served.http(key) as http:
        r = http.post("/v1/memory/remember", json={
            "text": text, "user": user,
            "probes": [{"question": "Where does my sister live?", "answer": "Reykjavik"}]})
    assert r.status_code == 200, r.text
    return r.json()


def _search(served: Served, key: str, user: str, query: str) -> list[dict[str, Any]]:
    with served.http(key) as http:
        r = http.post("/v1/memory/search", json={"query": query, "user": user})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


# -- no model needed -------------------------------------------------------------------------
def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    from seal_agent.cli import app

    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--home", str(home)])
    assert result.exit_code == 1
    assert "ConfigError" in result.output and "API keys" in result.output
    assert "Traceback" not in result.output
    assert not home.exists(), "refused before the home was opened"
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com", ""):
        with pytest.raises(ConfigError):
            check_bind(host, {})
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_bind(host, {})
    check_bind("0.0.0.0", {KEY_ACME: "acme"})  # with keys, anywhere


def test_api_keys_are_checked_and_kept_out_of_records(tmp_path: Path) -> None:
    cfg = load_config(home=tmp_path, serve={"api_keys": {KEY_ACME: "acme"}})
    recorded = json.dumps(cfg.public_dict())
    assert KEY_ACME not in recorded and KEY_ACME not in repr(cfg)
    assert cfg.public_dict()["serve"]["api_keys"] == {"<key 1>": "acme"}
    with pytest.raises(ConfigError, match="16 characters"):
        load_config(home=tmp_path, serve={"api_keys": {"short": "acme"}})
    with pytest.raises(ConfigError, match="tenant"):
        load_config(home=tmp_path, serve={"api_keys": {KEY_ACME: "no spaces allowed"}})


def test_help_imports_no_server_library() -> None:
    code = (
        "import sys\n"
        "from seal_agent.cli import main\n"
        "sys.argv = ['seal-agent', '--help']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'starlette', 'openai') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=60)  # a hang guard: --help imports no heavy library
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout


# -- the shared server -----------------------------------------------------------------------
@pytest.mark.slow
def test_models_health_and_keys(served: Served) -> None:
    import openai

    models = served.client().models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert served.client().models.retrieve(MODEL).id == MODEL
    with served.http(key=None) as http:
        assert http.get("/healthz").json()["status"] == "ok"  # no key needed
        r = http.get("/v1/models")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as err:
        served.client("wrong-key-0123456789abcdef").models.list()
    assert err.value.status_code == 401
    with pytest.raises(openai.NotFoundError):
        served.client().models.retrieve("gpt-4o")


@pytest.mark.slow
def test_a_remembered_fact_is_retrieved_into_the_chat_turn(served: Served) -> None:
    remembered = _remember(served, KEY_ACME, "maya", FACT)
    assert remembered["derive_status"] == "done" and remembered["agent"] == "acme"
    [hit, *_] = _search(served, KEY_ACME, "maya", "Where does my sister live?")
    assert hit["text"] == FACT and hit["format"] == "statement"

    completion = served.client().chat.completions.create(
        model=MODEL, user="maya", max_tokens=16,
        messages=[{"role": "user", "content": "Where does my sister live?"}],
    )
    answer = completion.choices[0].message.content
    seal = completion.model_extra["seal"]
    assert hit["id"] in [m["id"] for m in seal["memories"]], "the memory went into the prompt"
    assert completion.usage.completion_tokens <= 16
    # the turn is in the journal, with the answer sent and the memory it was shown
    [turn] = [t for t in served.turns("maya", "acme") if t.id == seal["interaction_id"]]
    assert [m.role for m in turn.messages] == ["user", "assistant"]
    assert turn.messages[1].content == answer
    assert hit["id"] in turn.metadata["memories"]
    assert turn.namespace.session_id == "api"


@pytest.mark.slow
def test_streaming_yields_chunks_and_logs_the_turn_once(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model=MODEL, user="sam", max_tokens=16, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "system", "content": "You are a cheerful assistant."},
                  {"role": "user", "content": "Say hello to me."}],
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1, "the answer must arrive in pieces"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    [turn] = served.turns("sam", "acme")
    assert turn.messages[1].content == "".join(pieces)
    assert turn.metadata["stream"] is True and "closed_early" not in turn.metadata


@pytest.mark.slow
def test_a_client_that_leaves_a_stream_stops_decoding(served: Served) -> None:
    body = {"model": MODEL, "user": "lee", "max_tokens": 200, "stream": True,
            "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse."}]}
    with served.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                break  # the first piece of text: leave
    deadline = time.monotonic() + 30
    while not (turns := served.turns("lee", "acme")) or len(turns[0].messages) < 2:
        assert time.monotonic() < deadline, "the abandoned turn was never closed"
        time.sleep(0.1)
    assert turns[0].metadata.get("closed_early") is True
    # decoding stopped and the lock was released: the next turn is served at once
    started = time.monotonic()
    served.client().chat.completions.create(
        model=MODEL, user="lee", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert time.monotonic() - started < 20


@pytest.mark.slow
def test_a_key_reaches_only_its_own_tenant(served: Served) -> None:
    import openai

    mine = _remember(served, KEY_ACME, "kim", FACT)
    [memory, *_] = _search(served, KEY_ACME, "kim", "Where does my sister live?")
    # globex, the same user name: sees nothing of acme's
    assert _search(served, KEY_GLOBEX, "kim", "Where does my sister live?") == []
    completion = served.client(KEY_GLOBEX).chat.completions.create(
        model=MODEL, user="kim", max_tokens=4,
        messages=[{"role": "user", "content": "Where does my sister live?"}])
    assert completion.model_extra["seal"]["memories"] == []
    assert completion.model_extra["seal"]["agent"] == "globex"
    with served.http(KEY_GLOBEX) as http:
        for body in ({"user": "kim", "memory_id": memory["id"]},
                     {"user": "kim", "interaction_id": mine["interaction_id"]}):
            r = http.post("/v1/memory/forget", json=body)
            assert r.status_code == 404, r.text
        assert http.post("/v1/memory/forget", json={"user": "kim", "all": True}).json()["forgotten"] == 0
        r = http.post("/v1/memory/search", headers={"X-Seal-Agent": "acme"},
                      json={"query": "sister", "user": "kim"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        assert http.get("/v1/memory/adapters", params={"user": "kim"}).json()["data"] == []
    with pytest.raises(openai.PermissionDeniedError):
        served.client(KEY_GLOBEX).chat.completions.create(
            model=MODEL, user="kim", max_tokens=4, extra_headers={"X-Seal-Agent": "acme"},
            messages=[{"role": "user", "content": "Where does my sister live?"}])
    # globex's own memory of "kim" stays globex's
    _remember(served, KEY_GLOBEX, "kim", "My sister Ines lives in Oslo.")
    assert [m["text"] for m in _search(served, KEY_ACME, "kim", "Where does my sister live?")
            ] == [FACT]
    assert {t.namespace.agent_id for t in served.turns("kim", "acme")} == {"acme"}
    assert [m["id"] for m in _search(served, KEY_ACME, "kim", "sister")][0] == memory["id"]


BAD = [
    # (body changes, status, param)
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
    ({"messages": [{"role": "tool", "content": "{}", "tool_call_id": "x"},
                   {"role": "user", "content": "hi"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "   "}]}, 400, None),
    ({"messages": [{"role": "user", "content": "word " * 9000}]}, 400, None),
    ({"n": 2}, 400, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"temperature": 5}, 400, "temperature"),
    ({"user": "no spaces please"}, 400, "user"),
    ({"model": "gpt-4o"}, 404, "model"),
    ({"model": "gpt-4o", "stream": True}, 404, "model"),
    ({"stream": True, "messages": [{"role": "user", "content": ""}]}, 400, None),
]


@pytest.mark.slow
def test_bad_requests_get_openai_errors_and_leave_no_trace(served: Served) -> None:
    import openai

    before = len(served.agent.journal.interactions())
    base = {"model": MODEL, "user": "bad", "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}]}
    with served.http() as http:
        for change, status, param in BAD:
            r = http.post("/v1/chat/completions", json={**base, **change})
            assert r.status_code == status, (change, r.text)
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"]
            assert error["param"] == param, (change, error)
        r = http.post("/v1/chat/completions", content=b"{not json",
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
        for path, body in (("/v1/memory/search", {"query": "x", "top_kk": 3}),
                           ("/v1/memory/forget", {"user": "bad"}),
                           ("/v1/memory/remember", {"text": "  ", "user": "bad"})):
            r = http.post(path, json=body)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        assert http.get("/v1/nothing-here").json()["error"]["type"] == "not_found_error"
        long = http.post("/v1/chat/completions", json={
            **base, "messages": [{"role": "user", "content": "word " * 9000}]}).json()
        assert long["error"]["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:
        served.client().chat.completions.create(
            model=MODEL, n=2, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["param"] == "n"
    assert len(served.agent.journal.interactions()) == before


@pytest.mark.slow
def test_consolidate_and_adapters_on_an_empty_namespace(served: Served) -> None:
    with served.http() as http:
        r = http.post("/v1/memory/consolidate", json={"user": "newcomer"})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["status"] == "empty" and report["version"] is None
        assert report["namespace"]["agent_id"] == "acme"
        assert http.get("/v1/memory/adapters", params={"user": "newcomer"}).json()["data"] == []


# -- the real command ------------------------------------------------------------------------
@pytest.mark.slow
def test_the_serve_command_needs_no_key_on_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    import openai

    home, port = tmp_path / "home", _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEAL_AGENT_MODEL__THREADS": "1",
           "SEAL_AGENT_AGENT__MAX_NEW_TOKENS": "8"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seal_agent", "serve", "--home", str(home), "--port", str(port),
         "--derive", "off", "--log-level", "info"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{base}/healthz").json()["loaded"]:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="any", max_retries=0, timeout=120)
        first = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello!"}],
            extra_headers={"X-Seal-User": "ana", "X-Seal-Agent": "bot", "X-Seal-Session": "s1"})
        # with a session header and no earlier messages, the journal holds the history
        second = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "And again."}],
            extra_headers={"X-Seal-User": "ana", "X-Seal-Agent": "bot", "X-Seal-Session": "s1"})
        assert second.model_extra["seal"]["history_turns"] == 1
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        # uvicorn finishes the requests in flight and the app's shutdown (which closes
        # the agent), then re-raises the signal: the exit status says SIGTERM
        assert proc.returncode in (0, -signal.SIGTERM), out
        assert "Application shutdown complete" in out and "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # every answered turn is in the journal, under the namespace the headers named
    turns = Journal(home / "journal.sqlite3").interactions(user_id="ana", agent_id="bot")
    assert [t.messages[1].content for t in turns] == [
        first.choices[0].message.content, second.choices[0].message.content]
    assert {t.namespace.session_id for t in turns} == {"s1"}
