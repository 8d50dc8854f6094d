"""The agent wrapper: remembers at once through the buffer, logs everything
durably, and hands each interaction to the self-edit writer.

One turn of :meth:`SealAgent.chat`:

1. check the message (typed errors, nothing logged for a refused message);
2. commit the user's message to the journal (from here on, nothing is lost);
3. retrieve the namespace's memories from the buffer (journal-checked);
4. build the prompt: system + memories + as much session history as fits,
   oldest turns dropped first, memories kept;
5. answer (greedy), add the answer to the journal;
6. derive self-edits and probes inline, on the background worker, or not at all.

:meth:`SealAgent.stream` is the same turn with the answer yielded as it is
decoded; :meth:`SealAgent.log_exchange` logs a turn another model answered,
which then goes through the same derivation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seal_agent.config import SealAgentConfig, load_config
from seal_agent.errors import CorruptHomeError, InputTooLongError, MemoryNotFoundError
from seal_agent.facts_store import FactStore
from seal_agent.journal import Journal
from seal_agent.models.base import AdapterRef, GenerationParams
from seal_agent.prompts import memory_system_prompt
from seal_agent.runs import RunStore
from seal_agent.text import StreamTrimmer, clean_input, trim_repetition
from seal_agent.types import (
    DeriveStatus,
    FrozenModel,
    Interaction,
    InteractionKind,
    Memory,
    MemoryStatus,
    Message,
    Namespace,
    SelfEditFormat,
    check_id,
)

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.buffer import Buffer
    from seal_agent.consolidation import ConsolidationReport
    from seal_agent.models.base import Embedder, LanguageModel
    from seal_agent.selfedit import SelfEditWriter
    from seal_agent.worker import DeriveWorker

__all__ = ["ChatResult", "ChatStream", "RememberResult", "ReprocessReport", "SealAgent"]

log = logging.getLogger("seal_agent")

MAX_DOCUMENT_CHARS = 200_000


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


class RememberResult(FrozenModel):
    interaction_id: str
    namespace: Namespace
    derive_status: DeriveStatus


class ReprocessReport(FrozenModel):
    derived: int
    failed: int
    reindexed: int
    orphans_removed: int


class SealAgent:
    """An agent with memory: ``chat``, ``remember``, ``recall``, ``forget``.

    Heavy parts (language model, embedder, Chroma) load on first use, so an
    agent that only lists or forgets memories starts in milliseconds.  Any of
    them can be injected (tests, a shared model, a custom backend).
    """

    def __init__(
        self,
        config: SealAgentConfig | None = None,
        *,
        user_id: str = "default",
        agent_id: str = "default",
        session_id: str = "default",
        lm: LanguageModel | None = None,
        embedder: Embedder | None = None,
        buffer: Buffer | None = None,
        journal: Journal | None = None,
        resume_pending: bool = True,
    ) -> None:
        self.config = config or load_config()
        self.default_namespace = Namespace(user_id=user_id, agent_id=agent_id, session_id=session_id)
        home = self.config.home
        if home.exists() and not home.is_dir():
            raise CorruptHomeError(f"memory home {home} exists but is not a directory")
        home.mkdir(parents=True, exist_ok=True)
        self.journal = journal or Journal.from_config(self.config)
        if lm is not None:
            self.__dict__["lm"] = lm
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        if buffer is not None:
            self.__dict__["buffer"] = buffer
        self._turn_idle = threading.Event()
        self._turn_idle.set()
        self._worker: DeriveWorker | None = None
        self._closed = False
        self._repaired_on_open = (0, 0)
        self._verified: dict[tuple[str, str], tuple[str, AdapterRef | None]] = {}
        if resume_pending and self.config.agent.derive == "background":
            self._resume_pending()

    @classmethod
    def open(cls, home: str | Path | None = None, **kwargs: Any) -> SealAgent:
        """Open (or create) a memory home: ``SealAgent.open("./mem", user_id="ana")``."""
        namespace = {k: kwargs.pop(k) for k in ("user_id", "agent_id", "session_id") if k in kwargs}
        overrides = {"home": home, **kwargs} if home is not None else kwargs
        return cls(load_config(**overrides), **namespace)

    # -- lazily built parts ---------------------------------------------------------
    @cached_property
    def lm(self) -> LanguageModel:
        from seal_agent.models import build_language_model

        return build_language_model(self.config)

    @cached_property
    def embedder(self) -> Embedder:
        from seal_agent.models import build_embedder

        return build_embedder(self.config)

    @cached_property
    def buffer(self) -> Buffer:
        from seal_agent.buffer import Buffer

        buffer = Buffer.from_config(self.config, self.embedder)
        self.__dict__["buffer"] = buffer
        self._repaired_on_open = self.reconcile()
        return buffer

    @cached_property
    def writer(self) -> SelfEditWriter:
        from seal_agent.selfedit import SelfEditWriter

        return SelfEditWriter(self.lm, self.config.selfedit)

    @property
    def context_length(self) -> int:
        """The model's window, capped by ``model.max_context`` when set."""
        cap = self.config.model.max_context
        return min(self.lm.context_length, cap) if cap else self.lm.context_length

    def _namespace(
        self, user_id: str | None, agent_id: str | None, session_id: str | None
    ) -> Namespace:
        d = self.default_namespace
        return Namespace(
            user_id=check_id(user_id, "user_id") if user_id is not None else d.user_id,
            agent_id=check_id(agent_id, "agent_id") if agent_id is not None else d.agent_id,
            session_id=check_id(session_id, "session_id") if session_id is not None else d.session_id,
        )

    # -- the turn -----------------------------------------------------------------------
    def chat(
        self,
        message: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        retrieval: bool | None = None,
        weights: bool = True,
        metadata: dict[str, Any] | None = None,
        history: Sequence[Message] | None = None,
        system_prompt: str | None = None,
        params: GenerationParams | None = None,
    ) -> ChatResult:
        """One turn.  ``retrieval=False`` answers without buffer memories in the
        prompt; ``weights=False`` without the namespace's memory adapter.

        By default the session's earlier turns come from the journal.  A caller
        that keeps the conversation itself (a framework with its own message
        history) passes it as ``history`` (user and assistant messages, oldest
        first) and, optionally, its own ``system_prompt``; memories are added
        to the system message either way.  ``params`` overrides the decoding
        settings (``agent.max_new_tokens``, greedy).
        """
        turn = self._prepare_turn(
            message, user_id, agent_id, session_id, retrieval, weights, metadata,
            history, system_prompt, params,
        )
        self._open_turn(turn)
        try:
            raw = self.lm.chat(turn.prompt, turn.params, adapter=turn.adapter)
        finally:
            self._turn_idle.set()
        return self._close_turn(turn, trim_repetition(raw))

    def stream(
        self,
        message: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        retrieval: bool | None = None,
        weights: bool = True,
        metadata: dict[str, Any] | None = None,
        history: Sequence[Message] | None = None,
        system_prompt: str | None = None,
        params: GenerationParams | None = None,
    ) -> ChatStream:
        """:meth:`chat`, with the answer's text yielded as it is generated.

        The message is checked at once (the same typed errors, nothing logged);
        it is committed when iteration starts, and the answer is added once the
        stream ends, so a streamed turn is logged once, like a chat turn.  The
        text yielded is exactly the answer logged (see
        :class:`~seal_agent.text.StreamTrimmer`).  A reader that stops early
        cancels decoding; what it was shown is logged as the answer, marked
        ``closed_early`` in the turn's metadata (if nothing was shown, the turn
        stays unanswered, as after a crash).  ``ChatStream.result`` holds the
        :class:`ChatResult` once the stream has ended.
        """
        turn = self._prepare_turn(
            message, user_id, agent_id, session_id, retrieval, weights, metadata,
            history, system_prompt, params,
        )
        return ChatStream(self, turn)

    def _prepare_turn(
        self,
        message: str,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        retrieval: bool | None,
        weights: bool,
        metadata: dict[str, Any] | None,
        history: Sequence[Message] | None,
        system_prompt: str | None,
        params: GenerationParams | None,
    ) -> _Turn:
        """Every check of a turn, before anything is logged."""
        started = time.perf_counter()
        ns = self._namespace(user_id, agent_id, session_id)
        text = clean_input(message)
        system = (
            clean_input(system_prompt, "system prompt")
            if system_prompt is not None
            else self.config.agent.system_prompt
        )
        turns = _group_turns(history) if history is not None else None
        params = params or GenerationParams(max_new_tokens=self.config.agent.max_new_tokens)
        room = self.context_length - params.max_new_tokens
        system_only = self.lm.count_chat_tokens([Message(role="system", content=system)])
        own = self.lm.count_tokens(text)
        if own + system_only > room:
            raise InputTooLongError(
                f"message is {own} tokens; with the system prompt and a "
                f"{params.max_new_tokens}-token answer it does not fit the model's "
                f"{self.context_length}-token context. Split it, or hand long documents "
                "to remember(), which chunks them"
            )
        return _Turn(
            started=started,
            ns=ns,
            user_msg=Message(role="user", content=text),
            retrieval=self.config.agent.retrieval if retrieval is None else retrieval,
            weights=weights,
            metadata=dict(metadata or {}),
            turns=turns,
            system=system,
            params=params,
            room=room,
        )

    def _open_turn(self, turn: _Turn) -> None:
        """Commit the user's message, then recall and build the prompt.

        Leaves ``_turn_idle`` cleared (the worker waits): the caller sets it
        once decoding ends.
        """
        if turn.turns is None:  # read before this turn is logged
            turn.turns = [list(t.messages) for t in self.journal.session_history(turn.ns)]
        interaction = self.journal.log_interaction(
            turn.ns, InteractionKind.CHAT, [turn.user_msg], metadata=turn.metadata
        )
        turn.interaction_id = interaction.id
        self._turn_idle.clear()
        try:
            memories = self._recall(turn.user_msg.content, turn.ns) if turn.retrieval else []
            turn.prompt, turn.memories, turn.kept_turns = self._build_prompt(
                turn.user_msg, memories, turn.turns, turn.room, turn.system
            )
            turn.adapter = self._memory_adapter(turn.ns) if turn.weights else None
        except BaseException:
            self._turn_idle.set()
            raise

    def _close_turn(self, turn: _Turn, answer: str, **extra: Any) -> ChatResult:
        """Add the answer to the journal, hand the turn to derivation."""
        assert turn.interaction_id is not None
        prompt_tokens = self.lm.count_chat_tokens(turn.prompt)
        adapter = turn.adapter.key if turn.adapter else None
        self.journal.complete_turn(
            turn.interaction_id,
            Message(role="assistant", content=answer),
            {
                "retrieval": turn.retrieval,
                "adapter": adapter,
                "memories": [m.id for m in turn.memories],
                "prompt_tokens": prompt_tokens,
                "model": self.lm.name,
                **extra,
            },
        )
        self._after_logged(turn.interaction_id)
        assert turn.turns is not None
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

    def _stream_turn(self, turn: _Turn, stream: ChatStream) -> Generator[str, None, None]:
        self._open_turn(turn)
        trimmer = StreamTrimmer(turn.params.stop)
        decode = getattr(self.lm, "stream_chat", None)
        pieces: Iterator[str] = (
            decode(turn.prompt, turn.params, adapter=turn.adapter)
            if decode is not None
            else iter([self.lm.chat(turn.prompt, turn.params, adapter=turn.adapter)])
        )
        closed_early = False
        try:
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
        extra = {"stream": True, **({"closed_early": True} if closed_early else {})}
        stream.result = self._close_turn(turn, trimmer.shown, **extra)

    def _build_prompt(
        self,
        user_msg: Message,
        memories: list[Memory],
        history: Sequence[Sequence[Message]],
        room: int,
        system_prompt: str | None = None,
    ) -> tuple[list[Message], list[Memory], int]:
        """Fit system + memories + history + message into ``room`` tokens.

        ``history`` is the earlier turns, each a list of messages, oldest first.
        Oldest turns drop first; memories stay unless the message and the
        memories alone overflow, then the weakest memories go.
        """
        agent_cfg = self.config.agent
        base = agent_cfg.system_prompt if system_prompt is None else system_prompt

        def system(mems: list[Memory]) -> Message:
            content = memory_system_prompt(
                base, agent_cfg.memory_header, agent_cfg.memory_footer, [m.text for m in mems]
            )
            return Message(role="system", content=content)

        mems = list(memories)
        while mems and self.lm.count_chat_tokens([system(mems), user_msg]) > room:
            mems.pop()  # the weakest memory (hits come best first)
        turns = [list(t) for t in history]
        while True:
            messages = [system(mems), *(m for turn in turns for m in turn), user_msg]
            if not turns or self.lm.count_chat_tokens(messages) <= room:
                return messages, mems, len(turns)
            turns.pop(0)

    def answers(
        self,
        questions: Sequence[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        retrieval: bool = True,
        weights: bool = True,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Greedy answers to one-turn questions, batched, and not logged.

        Each question is asked as a new session's first turn, in the agent's
        own chat format: the same system prompt, retrieval and adapter as
        :meth:`chat`. For measuring what the agent says (``eval facts``, the
        consolidation gate's memory-on check), not for conversations: nothing
        enters the journal.
        """
        ns = self._namespace(user_id, agent_id, None)
        params = GenerationParams(max_new_tokens=max_new_tokens or self.config.agent.max_new_tokens)
        room = self.context_length - params.max_new_tokens
        prompts = []
        for question in questions:
            text = clean_input(question)
            memories = self._recall(text, ns) if retrieval else []
            messages, _, _ = self._build_prompt(Message(role="user", content=text), memories, [], room)
            prompts.append(self.lm.format_chat(messages))
        adapter = self._memory_adapter(ns) if weights else None
        out: list[str] = []
        for start in range(0, len(prompts), 16):
            out += self.lm.complete(prompts[start : start + 16], params, adapter=adapter)
        return [trim_repetition(a).strip() for a in out]

    def log_exchange(
        self,
        message: str,
        answer: str | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RememberResult:
        """Log a turn that another model answered, so it becomes memory like a chat turn.

        This is how an app's own model (a hosted one, say) teaches the local
        one: the exchange is committed in one transaction (both messages, or
        none), then goes through the same derivation as :meth:`chat` (self-edits
        and probes, the buffer) and, later, consolidation.  Without an
        ``answer`` the user's message is committed as an open turn; add the
        answer with :meth:`answer_turn`.
        """
        ns = self._namespace(user_id, agent_id, session_id)
        messages = [Message(role="user", content=_bounded(message, "message"))]
        if answer is not None:
            messages.append(Message(role="assistant", content=_bounded(answer, "answer")))
        interaction = self.journal.log_interaction(
            ns, InteractionKind.CHAT, messages, metadata={"source": "external", **(metadata or {})}
        )
        if answer is not None:
            self._after_logged(interaction.id)
        return RememberResult(
            interaction_id=interaction.id,
            namespace=ns,
            derive_status=self.journal.get_interaction(interaction.id).derive_status,
        )

    def answer_turn(
        self, interaction_id: str, answer: str, *, metadata: dict[str, Any] | None = None
    ) -> RememberResult:
        """Add the answer to an open chat turn (see :meth:`log_exchange`) and derive it."""
        from seal_agent.errors import InputError

        reply = _bounded(answer, "answer")
        interaction = self.journal.get_interaction(interaction_id)
        if interaction.kind is not InteractionKind.CHAT or any(
            m.role == "assistant" for m in interaction.messages
        ):
            raise InputError(f"interaction {interaction_id} is not an open chat turn")
        self.journal.complete_turn(
            interaction_id, Message(role="assistant", content=reply), metadata or {}
        )
        self._after_logged(interaction_id)
        return RememberResult(
            interaction_id=interaction_id,
            namespace=interaction.namespace,
            derive_status=self.journal.get_interaction(interaction_id).derive_status,
        )

    # -- remembering ----------------------------------------------------------------------
    def remember(
        self,
        text: str,
        *,
        probes: Iterable[tuple[str, str] | dict[str, str]] = (),
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RememberResult:
        """Hand the agent a fact or document; it is retrievable once derived.

        ``probes`` are (question, answer) pairs the caller vouches for;
        consolidation scores itself on them instead of model-written ones.
        """
        ns = self._namespace(user_id, agent_id, session_id)
        body = clean_input(text, "text")
        if len(body) > MAX_DOCUMENT_CHARS:
            raise InputTooLongError(
                f"text is {len(body)} characters; remember() takes at most {MAX_DOCUMENT_CHARS} "
                "at once: split the document"
            )
        pairs = [_probe_pair(p) for p in probes]
        interaction = self.journal.log_interaction(
            ns,
            InteractionKind.DOCUMENT,
            [Message(role="user", content=body)],
            metadata=metadata or {},
            probes=pairs,
        )
        self._after_logged(interaction.id)
        return RememberResult(
            interaction_id=interaction.id,
            namespace=ns,
            derive_status=self.journal.get_interaction(interaction.id).derive_status,
        )

    def recall(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        top_k: int | None = None,
        min_similarity: float | None = None,
        include_consolidated: bool | None = None,
    ) -> list[Memory]:
        """The namespace's buffered memories most relevant to ``query``.

        ``include_consolidated`` also searches memories already trained into
        an adapter (default: only in hybrid mode, ``consolidation.drain =
        false``).  An unknown namespace simply has no memories: the result is
        empty.
        """
        ns = self._namespace(user_id, agent_id, None)
        return self._recall(
            clean_input(query, "query"), ns, top_k, min_similarity, include_consolidated
        )

    def _recall(
        self,
        query: str,
        ns: Namespace,
        top_k: int | None = None,
        min_similarity: float | None = None,
        include_consolidated: bool | None = None,
    ) -> list[Memory]:
        k = top_k or self.config.buffer.top_k
        # Hybrid mode (consolidation.drain = false): consolidated memories stay retrievable.
        if include_consolidated is None:
            include_consolidated = not self.config.consolidation.drain
        wanted = (
            (MemoryStatus.BUFFERED, MemoryStatus.CONSOLIDATED)
            if include_consolidated
            else (MemoryStatus.BUFFERED,)
        )
        hits = self.buffer.search(
            query, ns, top_k=k, min_similarity=min_similarity, statuses=wanted
        )
        truth = self.journal.statuses([h.id for h in hits])
        orphans = [h.id for h in hits if h.id not in truth]
        if orphans:  # forgotten in the journal, a crash kept them in Chroma
            self.buffer.delete(orphans)
        live = [h for h in hits if truth.get(h.id) in wanted]
        return live[:k]

    # -- memory in weights --------------------------------------------------------------
    @cached_property
    def adapters(self) -> AdapterStore:
        from seal_agent.adapters import AdapterStore

        return AdapterStore(self.config.adapters_dir, self.journal)

    def _memory_adapter(self, ns: Namespace) -> AdapterRef | None:
        """The namespace's active memory adapter, checked once per version.

        Read from the journal on every turn (one indexed query), so a version
        promoted by another process is used from the next turn on, with no
        restart.  A version that fails its checksums is refused and the newest
        good one is used instead (said once in the log).
        """
        if not getattr(self.lm, "supports_adapters", False):
            return None
        active = self.adapters.active(ns.user_id, ns.agent_id)
        if active is None:
            return None
        cached = self._verified.get((ns.user_id, ns.agent_id))
        if cached is not None and cached[0] == active.id:
            return cached[1]
        version, warnings = self.adapters.loadable(ns.user_id, ns.agent_id)
        for warning in warnings:
            log.warning("%s", warning)
        ref = AdapterRef(key=version.id, path=str(version.path)) if version else None
        self._verified[(ns.user_id, ns.agent_id)] = (active.id, ref)
        return ref

    def consolidate(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        k: int | None = None,
        max_interactions: int | None = None,
        dry_run: bool = False,
        progress: Any = None,
        policy_version: int | str | None = None,
    ) -> ConsolidationReport:
        """Run the SEAL reward loop for a namespace (see seal_agent.consolidation).

        ``policy_version``: sample candidates through that trained self-edit
        policy (a number, ``"v0003"``, an id, or ``"active"``; docs/policy.md)
        instead of the prompted base model. The namespace's own policy is used
        when it has one, else the deployment's.
        """
        from seal_agent.consolidation import Consolidator

        ns = self._namespace(user_id, agent_id, None)
        self.flush()  # derive what is pending first
        consolidator = self.__dict__.get("_consolidator")
        if consolidator is None:
            consolidator = Consolidator(  # training needs local weights: BackendCapabilityError if none
                self.config, self.journal, policy=self.lm, store=self.adapters,
                buffer=self.buffer,
            )
            self.__dict__["_consolidator"] = consolidator
        consolidator.progress = progress or (lambda event: None)
        consolidator.writer = self._policy_writer(ns, policy_version) if policy_version else self.writer
        return consolidator.run(
            ns.user_id, ns.agent_id, k=k, max_interactions=max_interactions, dry_run=dry_run
        )

    def _policy_writer(self, ns: Namespace, version: int | str) -> SelfEditWriter:
        """The self-edit writer of a trained policy: the namespace's, else the deployment's."""
        from seal_agent.errors import AdapterNotFoundError
        from seal_agent.policy import policy_writer

        wanted = None if version == "active" else version
        style = self.config.selfedit.style
        try:
            return policy_writer(self.lm, self.config, wanted, style=style, user_id=ns.user_id,
                                 agent_id=ns.agent_id, journal=self.journal)
        except AdapterNotFoundError:
            return policy_writer(self.lm, self.config, wanted, style=style, journal=self.journal)

    # -- forgetting ---------------------------------------------------------------------------
    def forget(
        self,
        *,
        memory_id: str | None = None,
        interaction_id: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
    ) -> int:
        """Delete one memory, one interaction (and all derived from it), or a namespace.

        Exactly one of ``memory_id``, ``interaction_id`` or ``user_id`` (with
        an optional ``agent_id``) must be given.  The journal is changed first;
        the buffer follows, and a crash between the two is repaired by
        :meth:`reconcile`.  Returns how many memories were deleted.
        """
        given = [x is not None for x in (memory_id, interaction_id, user_id)]
        if sum(given) != 1:
            from seal_agent.errors import ConfigError

            raise ConfigError(
                "forget() takes exactly one of memory_id, interaction_id or user_id"
            )
        if memory_id is not None:
            ids = self.journal.forget_self_edit(memory_id)
        elif interaction_id is not None:
            ids = self.journal.forget_interaction(interaction_id)
        else:
            assert user_id is not None
            ids = self.journal.forget_namespace(
                check_id(user_id, "user_id"),
                check_id(agent_id, "agent_id") if agent_id is not None else None,
            )
            # The journal no longer knows these adapters; their folders go too.
            folder = self.config.adapters_dir / user_id
            if agent_id is not None:
                folder = folder / agent_id
            if folder.is_dir():
                import shutil

                shutil.rmtree(folder, ignore_errors=True)
            self._verified = {k: v for k, v in self._verified.items() if k[0] != user_id}
        self.buffer.delete(ids)
        return len(ids)

    # -- derivation -------------------------------------------------------------------------------
    def _after_logged(self, interaction_id: str) -> None:
        mode = self.config.agent.derive
        if mode == "inline":
            self.derive(interaction_id)
        elif mode == "background":
            self._background().submit(interaction_id)

    def _background(self) -> DeriveWorker:
        if self._worker is None:
            from seal_agent.worker import DeriveWorker

            self._worker = DeriveWorker(self._derive_quietly, self._turn_idle)
        return self._worker

    def _resume_pending(self) -> None:
        """Queue pending interactions that a stopped process left underived.

        A chat turn without its answer may still be in progress in another
        process; it is left to `seal-agent reprocess`.  (Deriving one twice is
        harmless: a derivation replaces the previous one.)
        """
        pending = self.journal.interactions(derive_status=[DeriveStatus.PENDING])
        for interaction in pending:
            complete = interaction.kind is InteractionKind.DOCUMENT or any(
                m.role == "assistant" for m in interaction.messages
            )
            if complete:
                self._background().submit(interaction.id)

    def _derive_quietly(self, interaction_id: str) -> None:
        try:
            self.derive(interaction_id)
        except MemoryNotFoundError:
            pass  # forgotten before its turn came
        except Exception as exc:
            log.warning("could not derive self-edits for %s: %s", interaction_id, exc)

    def derive(self, interaction_id: str) -> DeriveStatus:
        """Write (or rewrite) the self-edits and probes of one interaction."""
        interaction = self.journal.get_interaction(interaction_id)
        caller_probes = [
            p for p in self.journal.probes(interaction_id=interaction_id) if p.source == "caller"
        ]
        try:
            derivation = self.writer.derive(
                interaction, write_probes=not caller_probes, held_out=caller_probes
            )
        except Exception as exc:
            self.journal.mark_derive_failed(interaction_id, f"{type(exc).__name__}: {exc}")
            raise
        removed = self.journal.save_derivation(
            interaction_id,
            derivation.self_edits,
            derivation.probes,
            derivation.report.model_dump(),
        )
        self.buffer.delete(removed)
        retrievable = [e for e in derivation.self_edits if e.retrievable]
        self.buffer.add(retrievable)
        self.journal.mark_indexed([e.id for e in retrievable])
        if self.config.consolidation.mode == "recall" and any(
            e.format is SelfEditFormat.STATEMENT for e in derivation.self_edits
        ):
            self._write_fact_probes(interaction)
        return DeriveStatus.DONE

    def _write_fact_probes(self, interaction: Interaction) -> None:
        """The pairs consolidation will train and check (memorize.py), written now, in the
        background, rather than inside a consolidation run. A failure here costs nothing:
        consolidation writes whatever is missing."""
        from seal_agent.memorize import write_fact_probes

        try:
            write_fact_probes(self.lm, FactStore(self.journal), [interaction],
                              self.config.consolidation)
        except Exception as exc:  # the derivation itself is done and durable
            log.warning("fact probes for %s not written now (%s); consolidation will", interaction.id, exc)

    def reprocess(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        include_done: bool = False,
        progress: Any = None,
    ) -> ReprocessReport:
        """Redo derivation for pending and failed interactions (or all of them).

        Also repairs the buffer against the journal (see :meth:`reconcile`).
        ``progress`` is called as ``progress(done, total)`` after each one.
        """
        opened_before = "buffer" in self.__dict__
        reindexed, orphans = self.reconcile()
        if not opened_before:  # opening the buffer just now repaired it already
            reindexed += self._repaired_on_open[0]
            orphans += self._repaired_on_open[1]
        statuses = None if include_done else [DeriveStatus.PENDING, DeriveStatus.FAILED]
        todo = self.journal.interactions(user_id=user_id, agent_id=agent_id, derive_status=statuses)
        derived = failed = 0
        for n, interaction in enumerate(todo, 1):
            try:
                self.derive(interaction.id)
                derived += 1
            except MemoryNotFoundError:
                pass
            except Exception as exc:
                failed += 1
                log.warning("reprocess: %s failed: %s", interaction.id, exc)
            if progress is not None:
                progress(n, len(todo))
        return ReprocessReport(
            derived=derived, failed=failed, reindexed=reindexed, orphans_removed=orphans
        )

    def reconcile(self) -> tuple[int, int]:
        """Make the buffer agree with the journal; returns (re-indexed, orphans removed)."""
        buffer = self.buffer
        reindexed = 0
        while batch := self.journal.unindexed_self_edits(limit=500):
            buffer.add(batch)
            self.journal.mark_indexed([e.id for e in batch])
            reindexed += len(batch)
        in_buffer = buffer.ids()
        # Journal rows the buffer lost (a deleted store, a new collection or server).
        missing = sorted(self.journal.retrievable_ids() - in_buffer)
        for start in range(0, len(missing), 500):
            buffer.add(self.journal.self_edits_by_ids(missing[start : start + 500]))
        reindexed += len(missing)
        truth = self.journal.statuses(sorted(in_buffer))
        orphans = [i for i in sorted(in_buffer) if i not in truth]
        buffer.delete(orphans)
        for status in MemoryStatus:
            ids = [i for i, s in truth.items() if s is status]
            buffer.set_status(ids, status)
        return reindexed, len(orphans)

    # -- lifecycle --------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait for background derivation to finish; False on timeout."""
        return self._worker.join(timeout) if self._worker is not None else True

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker (finishing its queue if ``wait``) and close the journal.

        Without ``wait``, queued derivations stay ``pending`` in the journal
        and are resumed the next time an agent opens this home.
        """
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            if wait:
                self._worker.join()
            self._worker.stop(cancel_queued=not wait)
        self.journal.close()

    def __enter__(self) -> SealAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self, *, user_id: str | None = None, agent_id: str | None = None) -> dict[str, Any]:
        """What the memory home holds (journal only: cheap, loads no model)."""
        return {
            "home": str(self.config.home.resolve()),
            "journal": self.journal.location,
            "schema_version": self.journal.schema_version,
            "model": self.config.model.name,
            "embedder": self.config.embedder.name,
            "buffer": (
                f"chroma server {self.config.buffer.host}:{self.config.buffer.port}"
                if self.config.buffer.host
                else f"embedded chroma at {self.config.chroma_path}"
            ),
            "derive_mode": self.config.agent.derive,
            "counts": self.journal.counts(user_id, agent_id),
            "weights_recall": FactStore(self.journal).summary(user_id, agent_id),
            "namespaces": self.journal.namespaces(),
            "last_run": RunStore(self.journal).last_run(user_id, agent_id),
            "active_adapters": [
                {"user_id": u, "agent_id": a, "version": v.name, "id": v.id}
                for u, a in self.adapters.namespaces()
                if (v := self.adapters.active(u, a)) is not None
            ],
        }


class ChatStream:
    """The answer of :meth:`SealAgent.stream`: iterate for its text as it comes.

    ``result`` is the turn's :class:`ChatResult` once iteration has ended
    (None before, and after a stream closed before anything was shown).
    ``close()`` stops decoding early.
    """

    def __init__(self, agent: SealAgent, turn: _Turn) -> None:
        self.result: ChatResult | None = None
        self._chunks = agent._stream_turn(turn, self)

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def close(self) -> None:
        self._chunks.close()


@dataclass
class _Turn:
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


def _group_turns(history: Sequence[Message]) -> list[list[Message]]:
    """A caller's conversation as turns: each user message opens one."""
    turns: list[list[Message]] = []
    for message in history:
        if not isinstance(message, Message) or message.role == "system":
            from seal_agent.errors import InputError

            raise InputError(
                "history holds user and assistant Messages only (pass system_prompt= "
                f"for the system message), got {message!r:.80}"
            )
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def _bounded(text: str, what: str) -> str:
    clean = clean_input(text, what)
    if len(clean) > MAX_DOCUMENT_CHARS:
        raise InputTooLongError(
            f"{what} is {len(clean)} characters; at most {MAX_DOCUMENT_CHARS} can be logged at once"
        )
    return clean


def _probe_pair(probe: tuple[str, str] | dict[str, str]) -> tuple[str, str]:
    if isinstance(probe, dict):
        try:
            question, answer = probe["question"], probe["answer"]
        except KeyError as exc:
            from seal_agent.errors import InputError

            raise InputError(f"a probe needs 'question' and 'answer', missing {exc}") from exc
    else:
        question, answer = probe
    return clean_input(question, "probe question"), clean_input(answer, "probe answer")
