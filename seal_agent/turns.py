"""A chat turn, from the checked message to the logged answer.

1. check the message (typed errors, nothing logged for a refused message);
2. commit the user's message to the journal (from here on, nothing is lost);
3. retrieve the namespace's memories (journal-checked, memory_index.py), and
   the drained ones that match the message (backstop.py);
4. build the prompt under the window's budget (window.py);
5. answer (greedy), whole or streamed; if the answer through the adapter
   misses a matching drained memory, answer again with it in the prompt
   (backstop.py says why); add the answer to the journal;
6. hand the turn to derivation.

``answers`` asks one-turn questions the same way, batched and unlogged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from seal_agent.backstop import Drained, missed
from seal_agent.errors import InputTooLongError
from seal_agent.models.base import AdapterRef, GenerationParams
from seal_agent.text import StreamTrimmer, clean_input, trim_repetition
from seal_agent.types import FrozenModel, InteractionKind, Memory, MemoryStatus, Message, Namespace
from seal_agent.window import context_length, fit_prompt, group_turns

if TYPE_CHECKING:
    from seal_agent.backstop import Backstop
    from seal_agent.config import AgentConfig, SealAgentConfig
    from seal_agent.journal import Journal
    from seal_agent.models.base import LanguageModel
    from seal_agent.weights import ActiveAdapters

__all__ = ["ChatResult", "ChatStream", "Turn", "TurnOptions", "TurnPipeline", "TurnSettings"]

Recall = Callable[..., list[Memory]]  # MemoryIndex.search


class TurnSettings(TypedDict, total=False):
    """How a turn is answered: the options of ``SealAgent.chat`` beyond the namespace."""

    retrieval: bool | None
    weights: bool
    metadata: dict[str, Any] | None
    history: Sequence[Message] | None
    system_prompt: str | None
    params: GenerationParams | None


class TurnOptions(TurnSettings, total=False):
    """The keyword options of ``SealAgent.chat`` and ``SealAgent.stream``.

    Every one may be left out: the namespace ids default to the agent's,
    ``retrieval`` to ``agent.retrieval``, ``weights`` to True, ``history`` to
    the session's turns in the journal, ``system_prompt`` to
    ``agent.system_prompt`` and ``params`` to ``agent.max_new_tokens``, greedy
    (the defaults themselves are :meth:`TurnPipeline.prepare`'s).
    """

    user_id: str | None
    agent_id: str | None
    session_id: str | None


class ChatResult(FrozenModel):
    answer: str
    adapter: str | None  # the memory adapter version the answer came through
    interaction_id: str
    namespace: Namespace
    memories: tuple[Memory, ...]
    prompt_tokens: int
    history_turns: int  # earlier turns of the session that fit the prompt
    dropped_turns: int  # earlier turns left out for lack of room
    seconds: float


@dataclass
class Turn:
    """One turn between its checks and its logged answer (internal)."""

    started: float
    ns: Namespace
    user_msg: Message
    retrieval: bool
    weights: bool
    metadata: dict[str, Any]
    turns: list[list[Message]] | None  # None: read the session's from the journal
    system: str
    params: GenerationParams
    room: int
    interaction_id: str | None = None
    prompt: list[Message] = field(default_factory=list)
    memories: list[Memory] = field(default_factory=list)
    kept_turns: int = 0
    adapter: AdapterRef | None = None
    drained: list[Drained] = field(default_factory=list)  # matches the adapter must say
    missed: list[Drained] = field(default_factory=list)  # the ones it did not: answered again
    returned: list[str] = field(default_factory=list)  # missed, said the second time: retrievable


class TurnPipeline:
    """Runs turns against the journal, the model, recall and the active adapter.

    ``lm()`` is asked for when a turn needs the model (an agent that only
    remembers never loads it); ``recall`` searches the buffer; ``after_logged``
    starts derivation.  ``turn_idle`` is cleared while a turn decodes, so the
    background worker leaves it the cores.
    """

    def __init__(
        self,
        config: SealAgentConfig,
        journal: Journal,
        *,
        lm: Callable[[], LanguageModel],
        recall: Recall,
        backstop: Backstop,
        adapters: ActiveAdapters,
        after_logged: Callable[[str], None],
        turn_idle: threading.Event,
    ) -> None:
        self._config = config
        self._agent_cfg: AgentConfig = config.agent
        self._journal = journal
        self._lm = lm
        self._recall = recall
        self._backstop = backstop
        self._adapters = adapters
        self._after_logged = after_logged
        self._turn_idle = turn_idle

    @property
    def context_length(self) -> int:
        """The model's window, capped by ``model.max_context`` when set."""
        return context_length(self._lm(), self._config.model.max_context)

    # -- before anything is logged ----------------------------------------------------
    def prepare(
        self,
        ns: Namespace,
        message: str,
        *,
        retrieval: bool | None = None,
        weights: bool = True,
        metadata: dict[str, Any] | None = None,
        history: Sequence[Message] | None = None,
        system_prompt: str | None = None,
        params: GenerationParams | None = None,
    ) -> Turn:
        """Every check of a turn, before anything is logged."""
        started = time.perf_counter()
        text = clean_input(message)
        system = (
            clean_input(system_prompt, "system prompt")
            if system_prompt is not None
            else self._agent_cfg.system_prompt
        )
        turns = group_turns(history) if history is not None else None
        params = params or GenerationParams(max_new_tokens=self._agent_cfg.max_new_tokens)
        window = self.context_length
        room = window - params.max_new_tokens
        lm = self._lm()
        system_only = lm.count_chat_tokens([Message(role="system", content=system)])
        own = lm.count_tokens(text)
        if own + system_only > room:
            raise InputTooLongError(
                f"message is {own} tokens; with the system prompt and a "
                f"{params.max_new_tokens}-token answer it does not fit the model's "
                f"{window}-token context. Split it, or hand long documents "
                "to remember(), which chunks them"
            )
        return Turn(
            started=started,
            ns=ns,
            user_msg=Message(role="user", content=text),
            retrieval=self._agent_cfg.retrieval if retrieval is None else retrieval,
            weights=weights,
            metadata=dict(metadata or {}),
            turns=turns,
            system=system,
            params=params,
            room=room,
        )

    # -- the turn --------------------------------------------------------------------------
    def chat(self, turn: Turn) -> ChatResult:
        """The whole answer at once."""
        self._open(turn)
        lm = self._lm()
        try:
            answer = trim_repetition(lm.chat(turn.prompt, turn.params, adapter=turn.adapter))
            answer = self._backstopped(turn, answer)
        finally:
            self._turn_idle.set()
        return self._close(turn, answer, **self._settle(turn))

    def stream(self, turn: Turn) -> ChatStream:
        """The answer as it is decoded (see ``SealAgent.stream``)."""
        return ChatStream(self, turn)

    def _open(self, turn: Turn) -> None:
        """Commit the user's message, then recall and build the prompt.

        Leaves ``turn_idle`` cleared (the worker waits): the caller sets it
        once decoding ends.
        """
        if turn.turns is None:  # read before this turn is logged
            turn.turns = [list(t.messages) for t in self._journal.session_history(turn.ns)]
        interaction = self._journal.log_interaction(
            turn.ns, InteractionKind.CHAT, [turn.user_msg], metadata=turn.metadata
        )
        turn.interaction_id = interaction.id
        self._turn_idle.clear()
        try:
            turn.adapter = self._adapter(turn.ns) if turn.weights else None
            memories, turn.drained = self._memories(turn.user_msg.content, turn.ns, turn.retrieval,
                                                    turn.adapter)
            self._fit(turn, memories)
        except BaseException:
            self._turn_idle.set()
            raise

    def _memories(self, text: str, ns: Namespace, retrieval: bool, adapter: AdapterRef | None
                  ) -> tuple[list[Memory], list[Drained]]:
        """The buffered memories for the prompt, and the drained matches to check the answer
        against; without the adapter, the drained matches join the prompt at once."""
        if not retrieval:
            return [], []
        if not self._backstop.on:
            return self._recall(text, ns), []
        if adapter is None:  # nothing holds the drained ones: retrieve them
            return self._recall(text, ns, include_consolidated=True), []
        # one search for both: the buffered hits for the prompt, the drained to check against
        k = self._config.buffer.top_k
        hits = self._recall(text, ns, k + self._agent_cfg.backstop_top_k, include_consolidated=True)
        memories = [h for h in hits if h.status is MemoryStatus.BUFFERED][:k]
        drained = self._backstop.candidates(hits, memories)
        if drained:
            self._backstop.count("backed")
        return memories, drained

    def _fit(self, turn: Turn, memories: list[Memory]) -> None:
        turn.prompt, turn.memories, turn.kept_turns = fit_prompt(
            self._lm(), self._agent_cfg, turn.user_msg, memories, turn.turns or [], turn.room,
            turn.system,
        )

    def _backstopped(self, turn: Turn, answer: str) -> str:
        """The turn's answer, given the one from the weights (backstop.py): if it misses a
        drained match, the turn is answered again with the missed memories in the prompt;
        that answer stands if it says one of them (they return to retrieval)."""
        turn.missed = missed(answer, turn.drained)
        if not turn.missed:
            return answer
        self._backstop.count("answered_again")
        first = (list(turn.prompt), list(turn.memories), turn.kept_turns, turn.adapter)
        self._fit(turn, [d.memory for d in turn.missed] + turn.memories)
        for adapter in dict.fromkeys([turn.adapter, None]):  # through the adapter, then without
            again = trim_repetition(self._lm().chat(turn.prompt, turn.params, adapter=adapter))
            turn.returned = self._backstop.settle(again, turn.missed)
            if turn.returned:
                turn.adapter = adapter
                return again
        turn.prompt, turn.memories, turn.kept_turns, turn.adapter = first
        return answer

    def _settle(self, turn: Turn) -> dict[str, Any]:
        """The backstop's part of the turn's metadata."""
        if not turn.missed:
            return {}
        return {"backstop": [d.interaction_id for d in turn.missed],
                "returned_to_retrieval": list(turn.returned)}

    def _close(self, turn: Turn, answer: str, **extra: Any) -> ChatResult:
        """Add the answer to the journal, hand the turn to derivation."""
        assert turn.interaction_id is not None and turn.turns is not None
        lm = self._lm()
        prompt_tokens = lm.count_chat_tokens(turn.prompt)
        adapter = turn.adapter.key if turn.adapter else None
        self._journal.complete_turn(
            turn.interaction_id,
            Message(role="assistant", content=answer),
            {
                "retrieval": turn.retrieval,
                "adapter": adapter,
                "memories": [m.id for m in turn.memories],
                "prompt_tokens": prompt_tokens,
                "model": lm.name,
                **extra,
            },
        )
        self._after_logged(turn.interaction_id)
        return ChatResult(
            answer=answer,
            adapter=adapter,
            interaction_id=turn.interaction_id,
            namespace=turn.ns,
            memories=tuple(turn.memories),
            prompt_tokens=prompt_tokens,
            history_turns=turn.kept_turns,
            dropped_turns=len(turn.turns) - turn.kept_turns,
            seconds=round(time.perf_counter() - turn.started, 3),
        )

    def decode(self, turn: Turn, stream: ChatStream) -> Generator[str, None, None]:
        """Open the turn, yield its answer as decoded, close it into ``stream.result``."""
        self._open(turn)
        trimmer = StreamTrimmer(turn.params.stop)
        pieces: Iterator[str] = iter(())
        closed_early = False
        try:
            pieces = self._pieces(turn)
            for piece in pieces:
                if new := trimmer.feed(piece):
                    yield new
                if trimmer.done:
                    break
            if tail := trimmer.finish():
                yield tail
        except GeneratorExit:  # the reader stopped reading
            closed_early = True
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # cancels decoding that is still running
            self._turn_idle.set()
        if closed_early and not trimmer.shown:
            return  # nothing was shown: the turn stays unanswered, as after a crash
        extra = {"stream": True, **({"closed_early": True} if closed_early else {}),
                 **self._settle(turn)}
        stream.result = self._close(turn, trimmer.shown, **extra)

    def _pieces(self, turn: Turn) -> Iterator[str]:
        """The answer's pieces as decoded. A turn with drained matches is answered whole,
        to check it against them, and comes as one piece."""
        lm = self._lm()
        stream_chat = getattr(lm, "stream_chat", None)
        if turn.drained:
            first = trim_repetition(lm.chat(turn.prompt, turn.params, adapter=turn.adapter))
            return iter([self._backstopped(turn, first)])
        if stream_chat is None:
            return iter([lm.chat(turn.prompt, turn.params, adapter=turn.adapter)])
        return iter(stream_chat(turn.prompt, turn.params, adapter=turn.adapter))

    # -- one-turn questions ------------------------------------------------------------
    def answers(
        self,
        ns: Namespace,
        questions: Sequence[str],
        *,
        retrieval: bool,
        weights: bool,
        max_new_tokens: int | None,
    ) -> list[str]:
        """Greedy answers, 16 prompts a batch, each as a new session's first turn."""
        params = GenerationParams(max_new_tokens=max_new_tokens or self._agent_cfg.max_new_tokens)
        room = self.context_length - params.max_new_tokens
        lm = self._lm()
        adapter = self._adapter(ns) if weights else None

        def prompt(text: str, memories: list[Memory]) -> str:
            messages, _, _ = fit_prompt(
                lm, self._agent_cfg, Message(role="user", content=text), memories, [], room
            )
            return lm.format_chat(messages)

        texts = [clean_input(q) for q in questions]
        found = [self._memories(t, ns, retrieval, adapter) for t in texts]
        out = self._complete([prompt(t, m) for t, (m, _) in zip(texts, found, strict=True)],
                             params, adapter)
        again = {i: miss for i, (_, drained) in enumerate(found)
                 if (miss := missed(out[i], drained))}
        self._backstop.count("answered_again", len(again))
        # the backstop: answered again with the drained memories they missed, through the
        # adapter, then (those still missed) without it; an answer that says one stands
        for through in dict.fromkeys([adapter, None]):
            if not again:
                break
            second = self._complete(
                [prompt(texts[i], [d.memory for d in again[i]] + found[i][0]) for i in again],
                params, through)
            for i, answer in list(zip(again, second, strict=True)):
                if self._backstop.settle(answer, again[i]):
                    out[i] = answer
                    del again[i]
        return out

    def _complete(self, prompts: list[str], params: GenerationParams,
                  adapter: AdapterRef | None) -> list[str]:
        """Greedy completions, 16 prompts a batch, trimmed."""
        out: list[str] = []
        for start in range(0, len(prompts), 16):
            out += self._lm().complete(prompts[start : start + 16], params, adapter=adapter)
        return [trim_repetition(a).strip() for a in out]

    def _adapter(self, ns: Namespace) -> AdapterRef | None:
        if not getattr(self._lm(), "supports_adapters", False):
            return None
        return self._adapters.ref(ns)


class ChatStream:
    """The answer of :meth:`SealAgent.stream`: iterate for its text as it comes.

    ``result`` is the turn's :class:`ChatResult` once iteration has ended
    (None before, and after a stream closed before anything was shown).
    ``close()`` stops decoding early.
    """

    def __init__(self, pipeline: TurnPipeline, turn: Turn) -> None:
        self.result: ChatResult | None = None
        self._chunks = pipeline.decode(turn, self)

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def close(self) -> None:
        self._chunks.close()
