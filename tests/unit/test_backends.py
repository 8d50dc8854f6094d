"""The backend seam without a model: config validation, capability errors, and the
remote backend's retry and backoff logic (httpx ``MockTransport``: pure HTTP logic;
tests/integration/test_remote_backend.py runs it against a real server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from seal_agent.config import load_config
from seal_agent.errors import (
    BackendCapabilityError,
    BackendError,
    BackendResponseError,
    BackendUnavailableError,
    ConfigError,
    SealAgentError,
)
from seal_agent.models import registered, trainable_base
from seal_agent.models.base import AdapterRef, GenerationParams, TrainableBase
from seal_agent.models.remote import RemoteLM
from seal_agent.types import Message

URL = "http://model.test/v1"
KEY = "sk-remote-0123456789abcdef"


# -- configuration ------------------------------------------------------------------------------
def test_remote_settings_are_validated_up_front() -> None:
    with pytest.raises(ConfigError, match="model.base_url"):
        load_config(model={"backend": "openai"})
    with pytest.raises(ConfigError, match="http:// or https://"):
        load_config(model={"backend": "openai", "base_url": "localhost:8000/v1"})
    for field, value in (("base_url", URL), ("api_key", KEY), ("trainer", "smollm2-135m-instruct")):
        with pytest.raises(ConfigError, match=f"model.{field} is for remote backends"):
            load_config(model={field: value})  # the local backend loads and trains itself
    for bad in ({"device": "tpu"}, {"dtype": "int8"}, {"timeout": 0}, {"max_retries": -1}):
        with pytest.raises(ConfigError):
            load_config(model={"backend": "openai", "base_url": URL, **bad})
    cfg = load_config(model={"backend": "openai", "base_url": URL + "/", "trainer": "x"})
    assert cfg.model.base_url == URL  # one slash rule for every request path
    assert load_config(model={"backend": "transformers"}).model.backend == "transformers"  # older name
    assert {"local", "transformers", "openai"} <= set(registered()["language_models"])


def test_the_model_api_key_stays_out_of_reprs_and_records() -> None:
    cfg = load_config(model={"backend": "openai", "base_url": URL, "api_key": KEY})
    assert KEY not in repr(cfg) and KEY not in repr(cfg.model)
    record = json.dumps(cfg.public_dict())
    assert KEY not in record
    assert cfg.public_dict()["model"]["api_key"] == "<set>"
    assert load_config().public_dict()["model"]["api_key"] is None


def test_env_selects_the_remote_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAL_AGENT_MODEL__BACKEND", "openai")
    monkeypatch.setenv("SEAL_AGENT_MODEL__BASE_URL", URL)
    monkeypatch.setenv("SEAL_AGENT_MODEL__API_KEY", KEY)
    monkeypatch.setenv("SEAL_AGENT_MODEL__MAX_RETRIES", "5")
    cfg = load_config()
    assert (cfg.model.backend, cfg.model.base_url, cfg.model.api_key, cfg.model.max_retries) == (
        "openai", URL, KEY, 5)


# -- capabilities ---------------------------------------------------------------------------------
def test_a_remote_model_without_trainer_cannot_train(tmp_path: Path) -> None:
    from seal_agent.consolidation import Consolidator
    from seal_agent.innerloop import build_inner_loop, build_trainer
    from seal_agent.journal import Journal
    from seal_agent.models import build_language_model

    cfg = load_config(home=tmp_path, model={"backend": "openai", "base_url": URL})
    lm = build_language_model(cfg)
    assert isinstance(lm, RemoteLM) and lm.trainer is None
    assert not isinstance(lm, TrainableBase)
    calls = [
        lambda: trainable_base(lm),
        lambda: build_trainer(cfg, lm),
        lambda: build_inner_loop(cfg, lm),
        lambda: Consolidator(cfg, Journal(cfg.journal_path), policy=lm),
    ]
    for call in calls:
        with pytest.raises(BackendCapabilityError, match="model.trainer") as info:
            call()
        assert isinstance(info.value, BackendError) and isinstance(info.value, SealAgentError)
        assert not isinstance(info.value, AttributeError)
        assert info.value.backend == "openai"
    with pytest.raises(BackendCapabilityError, match="model.trainer"):
        lm.format_chat([Message(role="user", content="hi")])  # no chat template here
    with pytest.raises(BackendCapabilityError, match="adapter"):
        lm.chat([Message(role="user", content="hi")], adapter=AdapterRef(key="v1", path="/x"))


def test_a_trained_policy_needs_adapter_decoding(tmp_path: Path) -> None:
    from seal_agent.policy import policy_writer

    cfg = load_config(home=tmp_path, model={"backend": "openai", "base_url": URL})
    with pytest.raises(BackendCapabilityError, match="policy"):
        policy_writer(RemoteLM("m", URL), cfg, None)


def test_token_counts_without_a_tokenizer_are_an_upper_bound() -> None:
    lm = RemoteLM("m", URL)
    assert lm.count_tokens("héllo") == 6  # bytes: no byte-level BPE token is shorter than a byte
    messages = [Message(role="system", content="ab"), Message(role="user", content="cde")]
    assert lm.count_chat_tokens(messages) == 2 + 3 + 2 * 16


# -- the remote backend's HTTP logic -------------------------------------------------------------
class Script:
    """A MockTransport handler answering from a script of (status | exception) steps."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        status, body, headers = step if len(step) == 3 else (*step, {})
        return httpx.Response(status, json=body, headers=headers)


def _chat_body(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}]}


def _remote(script: Script, **kwargs: Any) -> tuple[RemoteLM, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("max_retries", 2)
    lm = RemoteLM("served-model", URL, api_key=KEY, transport=httpx.MockTransport(script),
                  sleep=sleeps.append, **kwargs)
    return lm, sleeps


def test_5xx_and_429_are_retried_with_exponential_backoff() -> None:
    script = Script((503, {"error": {"message": "busy"}}), (429, {}), (200, _chat_body("Paris.")))
    lm, sleeps = _remote(script, backoff=0.25)
    params = GenerationParams(max_new_tokens=8, stop=("<1>", "<2>", "<3>", "<4>", "."))
    assert lm.chat([Message(role="user", content="Capital of France?")], params) == "Paris"
    assert sleeps == [0.25, 0.5]
    sent = json.loads(script.requests[-1].content)
    assert sent["model"] == "served-model" and sent["max_tokens"] == 8 and sent["temperature"] == 0
    assert sent["stop"] == ["<1>", "<2>", "<3>", "<4>"]  # OpenAI's limit; "." is cut here after decoding
    assert "seed" not in sent and "top_p" not in sent  # greedy
    assert script.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert str(script.requests[-1].url) == f"{URL}/chat/completions"


def test_retry_after_is_honoured_and_capped() -> None:
    script = Script((503, {}, {"Retry-After": "2"}), (503, {}, {"Retry-After": "3600"}),
                    (200, _chat_body("ok")))
    lm, sleeps = _remote(script)
    assert lm.chat([Message(role="user", content="hi")]) == "ok"
    assert sleeps == [2.0, 30.0]


def test_a_status_after_the_last_retry_is_a_typed_error() -> None:
    script = Script(*[(502, {"error": {"message": "bad gateway"}})] * 3)
    lm, sleeps = _remote(script, backoff=0.1)
    with pytest.raises(BackendResponseError, match="502: bad gateway.*after 3 tries") as info:
        lm.chat([Message(role="user", content="hi")])
    assert info.value.status_code == 502 and len(script.requests) == 3 and sleeps == [0.1, 0.2]


def test_client_errors_are_not_retried() -> None:
    script = Script((400, {"error": {"message": "max_tokens is too large", "code": None}}))
    lm, sleeps = _remote(script)
    with pytest.raises(BackendResponseError, match="400: max_tokens is too large") as info:
        lm.chat([Message(role="user", content="hi")])
    assert info.value.status_code == 400 and sleeps == [] and len(script.requests) == 1
    script = Script((401, {"message": "no key"}))  # older vLLM's error shape
    lm, _ = _remote(script)
    with pytest.raises(BackendResponseError, match="no key.*model.api_key"):
        lm.chat([Message(role="user", content="hi")])


def test_connect_errors_are_retried_then_mapped_with_their_cause() -> None:
    refused = httpx.ConnectError("connection refused")
    script = Script(refused, refused, refused)
    lm, sleeps = _remote(script, backoff=0.5)
    with pytest.raises(BackendUnavailableError, match="after 3 tries") as info:
        lm.complete(["Q: x\nA:"])
    assert isinstance(info.value, ConnectionError) and info.value.__cause__ is refused
    assert sleeps == [0.5, 1.0]


def test_read_timeouts_are_not_retried() -> None:
    script = Script(httpx.ReadTimeout("slow"), (200, _chat_body("late")))
    lm, sleeps = _remote(script, timeout=0.5)
    with pytest.raises(BackendUnavailableError, match="0.5 s"):
        lm.chat([Message(role="user", content="hi")])
    assert len(script.requests) == 1 and sleeps == []


def test_a_body_that_is_not_the_api_shape_is_a_typed_error() -> None:
    lm, _ = _remote(Script((200, {"choices": []})))
    with pytest.raises(BackendResponseError, match="expected 1 choice"):
        lm.chat([Message(role="user", content="hi")])


def test_client_and_transport_are_injectable_not_both() -> None:
    with httpx.Client() as client, pytest.raises(ConfigError):
        RemoteLM("m", URL, client=client, transport=httpx.MockTransport(Script()))
