"""A language model behind any OpenAI-compatible server (vLLM, Ollama,
llama.cpp's server, `seal-agent serve`), over httpx.

What it can do: chat, streamed chat (server-sent events) and raw completion
(``/v1/completions``; a server without that endpoint gets each prompt as a
one-message chat instead). What it cannot: it holds no weights, so it cannot
train adapters or score log-likelihood. With ``model.trainer`` set, the same
base weights are loaded here for that (:attr:`RemoteLM.trainer`), and their
tokenizer counts tokens exactly; without it, counts are a byte-length upper
bound and training raises :class:`~seal_agent.errors.BackendCapabilityError`.

Failures are mapped at this edge, the cause kept (``raise ... from exc``):

* refused connections, connect timeouts, 429 and 5xx are retried
  ``max_retries`` times with exponential backoff (``Retry-After`` honoured,
  capped), then raise :class:`~seal_agent.errors.BackendUnavailableError`
  (or :class:`~seal_agent.errors.BackendResponseError` for a status);
* a read timeout is not retried: the server may still be decoding the
  request, and `seal-agent serve` would log the turn twice;
* any other 4xx, or a body that is not the API's shape, raises
  :class:`~seal_agent.errors.BackendResponseError` at once.

The ``httpx.Client`` (or only its transport) is a constructor argument, so
tests can point it at a local server or a handler.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from seal_agent.errors import (
    BackendCapabilityError,
    BackendResponseError,
    BackendUnavailableError,
    ConfigError,
)
from seal_agent.models.base import GREEDY, AdapterRef, GenerationParams, TrainableBase, cut_at_stops
from seal_agent.types import Message

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig

__all__ = ["RETRY_STATUS", "RemoteLM"]

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_STOPS = 4  # OpenAI's limit on stop strings; the rest are applied here after decoding
MAX_DELAY = 30.0  # seconds: a longer Retry-After is cut to this
DEFAULT_CONTEXT = 2048  # neither the server nor a trainer says: assume a small window
# A pessimistic chat-token count without a tokenizer: a byte-level BPE token is at
# least one byte, and a chat template adds a few tokens of markup per message.
MESSAGE_OVERHEAD = 16


class RemoteLM:
    """A :class:`~seal_agent.models.base.LanguageModel` over an OpenAI-compatible HTTP API."""

    backend = "openai"
    supports_adapters = False  # the server decodes with what it has loaded

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None = None,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_context: int | None = None,
        trainer: TrainableBase | Callable[[], TrainableBase] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is not None and transport is not None:
            raise ConfigError("give RemoteLM a client or a transport, not both")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own_client = client is None
        self._client = client or httpx.Client(transport=transport, timeout=httpx.Timeout(timeout))
        self._max_context = max_context
        self._context_length: int | None = None
        self._trainer_source = trainer
        self._trainer: TrainableBase | None = None
        self._lock = threading.Lock()
        self._completions: bool | None = None  # does the server have /completions? None: not tried

    @classmethod
    def from_config(cls, config: SealAgentConfig) -> RemoteLM:
        m = config.model
        if m.base_url is None:
            raise ConfigError(f"model.backend {m.backend!r} needs model.base_url")

        def load_trainer() -> TrainableBase:
            from seal_agent.models.transformers_lm import LocalBase

            return LocalBase.from_config(config)

        return cls(
            m.name,
            m.base_url,
            api_key=m.api_key,
            timeout=m.timeout,
            max_retries=m.max_retries,
            max_context=m.max_context,
            trainer=load_trainer if m.trainer else None,
        )

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    # -- capabilities --------------------------------------------------------------------
    @property
    def trainer(self) -> TrainableBase | None:
        """The local copy of the base for training (``model.trainer``), loaded on first use."""
        with self._lock:
            if self._trainer is None and self._trainer_source is not None:
                source = self._trainer_source
                self._trainer = source if isinstance(source, TrainableBase) else source()
            return self._trainer

    def _tokenizer(self) -> Any:
        base = self.trainer
        return None if base is None else base.tokenizer

    # -- sizes ---------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        """``model.max_context``, else the server's ``max_model_len`` (vLLM lists it),
        else the trainer's own window, else 2048."""
        if self._max_context is not None:
            return self._max_context
        if self._context_length is None:
            self._context_length = self._served_context() or self._trainer_context() or DEFAULT_CONTEXT
        return self._context_length

    def _served_context(self) -> int | None:
        try:
            data = self._json(self._send("GET", "/models"), "/models")
        except BackendResponseError:  # no model listing: not an error for generation
            return None
        for entry in data.get("data") or []:
            if isinstance(entry, dict) and entry.get("id") == self.name:
                value = entry.get("max_model_len")
                return int(value) if isinstance(value, int) and value > 0 else None
        return None

    def _trainer_context(self) -> int | None:
        base = self.trainer
        value = getattr(base, "context_length", None) if base is not None else None
        return int(value) if isinstance(value, int) else None

    def count_tokens(self, text: str) -> int:
        tok = self._tokenizer()
        if tok is None:
            return len(text.encode("utf-8"))  # an upper bound for byte-level BPE tokenizers
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        if self._tokenizer() is None:
            return sum(len(m.content.encode("utf-8")) + MESSAGE_OVERHEAD for m in messages)
        return self.count_tokens(self.format_chat(messages))

    def format_chat(self, messages: Sequence[Message]) -> str:
        tok = self._tokenizer()
        if tok is None:
            raise BackendCapabilityError(
                f"cannot format chat prompts locally: the remote model {self.name!r} has no local "
                "tokenizer. Set model.trainer to the same base weights (its chat template is used)",
                backend=self.backend,
                capability="format chat prompts",
            )
        return str(
            tok.apply_chat_template(
                [m.model_dump() for m in messages], tokenize=False, add_generation_prompt=True
            )
        )

    # -- generation ----------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> str:
        self._no_adapter(adapter)
        body = {**self._params(params), "messages": [m.model_dump() for m in messages]}
        data = self._json(self._send("POST", "/chat/completions", body), "/chat/completions")
        (text,) = self._texts(data, 1, "/chat/completions")
        return cut_at_stops(text, params.stop, params.stop_on_repeated_line)

    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> Iterator[str]:
        """The answer's text as the server sends it (raw: the agent trims it).

        Closing the iterator closes the connection, which tells the server to
        stop decoding.
        """
        self._no_adapter(adapter)
        body = {**self._params(params), "messages": [m.model_dump() for m in messages],
                "stream": True}
        response = self._send("POST", "/chat/completions", body, stream=True)
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, blank separators
                payload = line[len("data:") :].strip()
                if payload == "[DONE]":
                    return
                event = self._event(payload)
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
                    if piece:
                        yield str(piece)
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(
                f"{self.base_url}/chat/completions: the stream broke off ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            response.close()

    def complete(
        self,
        prompts: Sequence[str],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> list[str]:
        """Raw few-shot prompts through ``/completions``, all in one request.

        A server without that endpoint (404 or 405: `seal-agent serve`, some
        Ollama versions) gets each prompt as a one-message chat from then on:
        the model then reads the prompt through its chat template, which
        instruct models follow well enough to write self-edits.
        """
        self._no_adapter(adapter)
        if not prompts:
            return []
        if self._completions is not False:
            body = {**self._params(params), "prompt": list(prompts)}
            try:
                data = self._json(self._send("POST", "/completions", body), "/completions")
            except BackendResponseError as exc:
                if exc.status_code not in (404, 405):
                    raise
                self._completions = False
            else:
                self._completions = True
                texts = self._texts(data, len(prompts), "/completions")
                return [cut_at_stops(t, params.stop, params.stop_on_repeated_line) for t in texts]
        return [self.chat([Message(role="user", content=p)], params) for p in prompts]

    # -- HTTP ----------------------------------------------------------------------------
    def _no_adapter(self, adapter: AdapterRef | None) -> None:
        if adapter is not None:
            raise BackendCapabilityError(
                f"the remote model {self.name!r} cannot decode through a local LoRA adapter "
                f"({adapter.path}): the server decodes with the adapters it has loaded",
                backend=self.backend,
                capability="decode with an adapter",
            )

    def _params(self, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,  # 0: greedy, on every server we know
        }
        if not params.greedy:
            body["top_p"] = params.top_p
            if params.seed is not None:
                body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop[:MAX_STOPS])
        return body

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff (``backoff * 2**attempt``), or the server's Retry-After."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), MAX_DELAY)
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        return min(self.backoff * 2.0**attempt, MAX_DELAY)

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, stream: bool = False
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                request = self._client.build_request(method, url, json=body, headers=self._headers)
                response = self._client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # the request never reached the server: safe to send again
                if last:
                    raise BackendUnavailableError(
                        f"{url} is unreachable after {attempt + 1} tries "
                        f"({type(exc).__name__}: {exc}); is the server running at model.base_url?"
                    ) from exc
                self._sleep(self._delay(attempt, None))
                continue
            except httpx.TimeoutException as exc:
                raise BackendUnavailableError(
                    f"{url} sent no answer within {self.timeout} s (model.timeout); not retried, "
                    "as the server may still be working on it"
                ) from exc
            except httpx.HTTPError as exc:
                raise BackendUnavailableError(f"{url}: {type(exc).__name__}: {exc}") from exc
            if response.status_code in RETRY_STATUS and not last:
                delay = self._delay(attempt, response.headers.get("retry-after"))
                response.close()
                self._sleep(delay)
                continue
            if response.status_code >= 400:
                if stream:
                    response.read()
                response.close()
                raise self._status_error(response, url, attempt + 1)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _status_error(self, response: httpx.Response, url: str, tries: int) -> BackendResponseError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        message = response.text[:300]
        if isinstance(body, dict):  # OpenAI: {"error": {"message"}}; older vLLM: {"message"}
            err = body.get("error")
            if isinstance(err, dict) and err.get("message"):
                message = str(err["message"])
            elif isinstance(err, str):
                message = err
            elif body.get("message"):
                message = str(body["message"])
        hint = ""
        if status in (401, 403):
            hint = " (check model.api_key)"
        elif status in RETRY_STATUS:
            hint = f" (after {tries} tries)"
        return BackendResponseError(f"{url} answered {status}: {message}{hint}", status_code=status)

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise BackendResponseError(
                f"{self.base_url}{path} answered {response.status_code} with a body that is not "
                f"JSON: {response.text[:200]!r}",
                status_code=response.status_code,
            ) from exc
        if not isinstance(data, dict):
            raise BackendResponseError(f"{self.base_url}{path}: expected a JSON object, got {data!r:.200}")
        return data

    def _texts(self, data: dict[str, Any], n: int, path: str) -> list[str]:
        """The choices' texts in order (``message.content`` for chat, ``text`` for completions)."""
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) != n:
            raise BackendResponseError(
                f"{self.base_url}{path}: expected {n} choice(s), got {json.dumps(data)[:300]}"
            )
        texts = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            text = None
            if isinstance(choice, dict):
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else choice.get("text")
            if not isinstance(text, str):
                raise BackendResponseError(f"{self.base_url}{path}: a choice without text: {choice!r:.300}")
            texts.append(text)
        return texts

    def _event(self, payload: str) -> dict[str, Any]:
        try:
            event = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise BackendResponseError(
                f"{self.base_url}/chat/completions: a streamed event that is not JSON: {payload[:200]!r}"
            ) from exc
        if not isinstance(event, dict):
            raise BackendResponseError(f"{self.base_url}/chat/completions: streamed {event!r:.200}")
        if "error" in event:  # an error during decoding, after the 200 was sent
            err = event["error"]
            message = err.get("message") if isinstance(err, dict) else err
            raise BackendResponseError(f"{self.base_url}/chat/completions: {message}")
        return event
