"""ChatSealAgent: the local model, answering with the namespace's memory.

Each call answers through the namespace's active memory adapter (what
consolidation trained into the weights) with the buffer's memories retrieved
into the system message, and is logged to the journal as one chat turn, so it
becomes self-edits and, later, weights like any seal-agent turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field
from seal_agent import GenerationParams, SealAgent

from langchain_seal_agent._common import open_home, resolve_namespace, split_conversation
from langchain_seal_agent._common import with_namespace as _with_namespace
from langchain_seal_agent.errors import ToolCallingNotSupportedError

__all__ = ["ChatSealAgent"]

LLM_TYPE = "seal-agent-chat"


class ChatSealAgent(BaseChatModel):
    """seal-agent's local model as a LangChain chat model.

    The namespace comes from the constructor, or per call from keyword
    arguments or ``config={"configurable": {"user_id": ..., "session_id": ...}}``.
    ``user_id`` is required somewhere; ``agent_id`` and ``session_id`` default
    to ``"default"``.

    The conversation LangChain hands in is the history (nothing is read from
    the journal): system messages become the system prompt, and the last
    message must be the user's.  Only that last exchange is logged.

    Example:
        ```python
        from seal_agent import SealAgent
        from langchain_seal_agent import ChatSealAgent

        model = ChatSealAgent(agent=SealAgent.open("./memory"), user_id="maya")
        model.invoke("Where does my sister live?",
                     config={"configurable": {"session_id": "tuesday"}})
        ```

    Tool calling: not supported (``bind_tools`` raises
    :class:`ToolCallingNotSupportedError`); the 135M default model cannot do it.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True)

    agent: SealAgent | None = Field(default=None, exclude=True)
    """An open SealAgent (share one per memory home).  None: open ``home``."""
    home: str | None = None
    """The memory home to open when ``agent`` is not given (default: the config's)."""
    user_id: str | None = None
    agent_id: str = "default"
    session_id: str = "default"
    retrieval: bool | None = None
    """Memories from the buffer in the prompt (None: the agent's ``agent.retrieval``)."""
    weights: bool = True
    """Answer through the namespace's memory adapter, when it has one."""
    temperature: float = 0.0
    max_tokens: int | None = None
    """Answer length in tokens (None: the agent's ``agent.max_new_tokens``)."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    streaming: bool = False
    """Stream through ``stream`` when called with ``invoke`` (callback token events)."""

    # -- plumbing -----------------------------------------------------------------
    @property
    def seal_agent(self) -> SealAgent:
        """The SealAgent behind this model (opened from ``home`` on first use)."""
        if self.agent is None:
            self.agent = open_home(self.home)
        return self.agent

    @property
    def _llm_type(self) -> str:
        return LLM_TYPE

    @property
    def model_name(self) -> str:
        return self.seal_agent.config.model.name

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "retrieval": self.retrieval,
            "weights": self.weights,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="seal_agent",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
        )
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if stops := stop or self.stop:
            params["ls_stop"] = stops
        return params

    # -- the namespace from RunnableConfig ------------------------------------------
    # LangChain does not hand ``config`` to ``_generate``; these entry points move
    # its ``configurable`` namespace into the call's keyword arguments, which do
    # reach it (batch goes through invoke / ainvoke).
    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
        stop: list[str] | None = None, **kwargs: Any,
    ) -> AIMessage:
        return super().invoke(input, config, stop=stop, **_with_namespace(config, kwargs))

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
        stop: list[str] | None = None, **kwargs: Any,
    ) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **_with_namespace(config, kwargs))

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
        stop: list[str] | None = None, **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        yield from super().stream(input, config, stop=stop, **_with_namespace(config, kwargs))

    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
        stop: list[str] | None = None, **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        kwargs = _with_namespace(config, kwargs)
        async for chunk in super().astream(input, config, stop=stop, **kwargs):
            yield chunk

    def stream_events(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return super().stream_events(input, config, **_with_namespace(config, kwargs))

    def astream_events(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return super().astream_events(input, config, **_with_namespace(config, kwargs))

    # -- generation -------------------------------------------------------------------
    def _turn(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any],
              run_manager: CallbackManagerForLLMRun | None) -> dict[str, Any]:
        """The SealAgent.chat / stream arguments of one call; every check happens here,
        before anything is logged."""
        ns = resolve_namespace(
            {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id},
            kwargs, "ChatSealAgent",
        )
        system, history, text = split_conversation(messages)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        params = GenerationParams(
            max_new_tokens=max_tokens or self.seal_agent.config.agent.max_new_tokens,
            temperature=kwargs.get("temperature", self.temperature),
            stop=tuple(stop if stop is not None else self.stop or ()),
        )
        metadata: dict[str, Any] = {"source": "langchain"}
        if run_manager is not None:
            metadata["run_id"] = str(run_manager.run_id)
        return {
            "message": text,
            **ns,
            "retrieval": kwargs.get("retrieval", self.retrieval),
            "weights": kwargs.get("weights", self.weights),
            "history": history,
            "system_prompt": system,
            "params": params,
            "metadata": metadata,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = list(self._stream(messages, stop, run_manager, **kwargs))
            message = chunks[0].message
            for chunk in chunks[1:]:
                message = message + chunk.message
            return ChatResult(generations=[ChatGeneration(message=_finished(message))])
        result = self.seal_agent.chat(**self._turn(messages, stop, kwargs, run_manager))
        meta = self._response_metadata(result)
        message = AIMessage(
            content=result.answer,
            response_metadata=meta,
            usage_metadata=self._usage(result.prompt_tokens, result.answer),
        )
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output=meta)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stream = self.seal_agent.stream(**self._turn(messages, stop, kwargs, run_manager))
        try:
            for text in stream:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager is not None:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        finally:
            stream.close()  # a reader that stopped early: decoding stops, what it saw is logged
        result = stream.result
        assert result is not None
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                response_metadata=self._response_metadata(result),
                usage_metadata=self._usage(result.prompt_tokens, result.answer),
                chunk_position="last",
            )
        )

    def _response_metadata(self, result: Any) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_provider": "seal_agent",
            "seal_agent": {
                "interaction_id": result.interaction_id,
                "user_id": result.namespace.user_id,
                "agent_id": result.namespace.agent_id,
                "session_id": result.namespace.session_id,
                "memories": [m.id for m in result.memories],
                "adapter": result.adapter,
            },
        }

    def _usage(self, prompt_tokens: int, answer: str) -> UsageMetadata:
        output = self.seal_agent.lm.count_tokens(answer) if answer else 0
        return UsageMetadata(
            input_tokens=prompt_tokens, output_tokens=output, total_tokens=prompt_tokens + output
        )

    # -- what the local model cannot do ----------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        raise ToolCallingNotSupportedError(
            f"ChatSealAgent ({self.model_name}) cannot call tools: the default 135M model was "
            "not trained for tool calling. Use a tool-calling model for the agent and attach "
            "SealAgentCallbackHandler to it to give its conversations to seal-agent; "
            "create_memory_tools() gives such an agent search/remember/forget tools."
        )


def _finished(message: BaseMessage) -> AIMessage:
    """A merged stream as the AIMessage invoke returns."""
    assert isinstance(message, AIMessageChunk)
    return AIMessage(
        content=message.content,
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        id=message.id,
    )
