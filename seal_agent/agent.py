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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from seal_agent.config import SealAgentConfig, load_config
from seal_agent.errors import CorruptHomeError, InputTooLongError, MemoryNotFoundError
from seal_agent.journal import Journal
from seal_agent.models.base import AdapterRef, GenerationParams
from seal_agent.text import clean_input, trim_repetition
from seal_agent.types import (
    DeriveStatus,
    Interaction,
    InteractionKind,
    Memory,
    MemoryStatus,
    Message,
    Namespace,
    check_id,
)

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.buffer import Buffer
    from seal_agent.consolidation import ConsolidationReport
    from seal_agent.models.base import Embedder, LanguageModel
    from seal_agent.selfedit import SelfEditWriter
    from seal_agent.worker import DeriveWorker

__all__ = ["ChatResult", "ReprocessReport", "SealAgent"]

log = logging.getLogger("seal_agent")

MAX_DOCUMENT_CHARS = 200_000


class ChatResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    answer: str
    adapter: str | None  # the memory adapter version the answer came through
    interaction_id: str
    namespace: Namespace
    memories: tuple[Memory, ...]
    prompt_tokens: int
    history_turns: int  # earlier turns of the session that fit the prompt
    dropped_turns: int  # earlier turns left out for lack of room
    seconds: float


class RememberResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    interaction_id: str
    namespace: Namespace
    derive_status: DeriveStatus


class ReprocessReport(BaseModel):
    model_config = ConfigDict(frozen=True)

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
        self.journal = journal or Journal(self.config.journal_path)
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
    ) -> ChatResult:
        """One turn.  ``retrieval=False`` answers without buffer memories in the
        prompt; ``weights=False`` without the namespace's memory adapter."""
        started = time.perf_counter()
        use_weights = weights
        ns = self._namespace(user_id, agent_id, session_id)
        text = clean_input(message)
        use_retrieval = self.config.agent.retrieval if retrieval is None else retrieval
        max_new = self.config.agent.max_new_tokens
        room = self.context_length - max_new
        system_only = self.lm.count_chat_tokens(
            [Message(role="system", content=self.config.agent.system_prompt)]
        )
        own = self.lm.count_tokens(text)
        if own + system_only > room:
            raise InputTooLongError(
                f"message is {own} tokens; with the system prompt and a {max_new}-token answer "
                f"it does not fit the model's {self.context_length}-token context. Split it, "
                "or hand long documents to remember(), which chunks them"
            )
        user_msg = Message(role="user", content=text)
        history = self.journal.session_history(ns)  # read before this turn is logged
        interaction = self.journal.log_interaction(
            ns, InteractionKind.CHAT, [user_msg], metadata=metadata or {}
        )
        self._turn_idle.clear()
        try:
            memories = self._recall(text, ns) if use_retrieval else []
            prompt, memories, kept_turns = self._build_prompt(user_msg, memories, history, room)
            adapter = self._memory_adapter(ns) if use_weights else None
            answer = trim_repetition(
                self.lm.chat(prompt, GenerationParams(max_new_tokens=max_new), adapter=adapter)
            )
        finally:
            self._turn_idle.set()
        prompt_tokens = self.lm.count_chat_tokens(prompt)
        self.journal.complete_turn(
            interaction.id,
            Message(role="assistant", content=answer),
            {
                "retrieval": use_retrieval,
                "adapter": adapter.key if adapter else None,
                "memories": [m.id for m in memories],
                "prompt_tokens": prompt_tokens,
                "model": self.lm.name,
            },
        )
        self._after_logged(interaction.id)
        return ChatResult(
            answer=answer,
            adapter=adapter.key if adapter else None,
            interaction_id=interaction.id,
            namespace=ns,
            memories=tuple(memories),
            prompt_tokens=prompt_tokens,
            history_turns=kept_turns,
            dropped_turns=len(history) - kept_turns,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _build_prompt(
        self,
        user_msg: Message,
        memories: list[Memory],
        history: Sequence[Interaction],
        room: int,
    ) -> tuple[list[Message], list[Memory], int]:
        """Fit system + memories + history + message into ``room`` tokens.

        Oldest turns drop first; memories stay unless the message and the
        memories alone overflow, then the weakest memories go.
        """
        agent_cfg = self.config.agent

        def system(mems: list[Memory]) -> Message:
            content = agent_cfg.system_prompt
            if mems:
                lines = "\n".join(f"- {m.text}" for m in mems)
                content = (
                    f"{content}\n\n{agent_cfg.memory_header}\n{lines}\n{agent_cfg.memory_footer}"
                )
            return Message(role="system", content=content)

        mems = list(memories)
        while mems and self.lm.count_chat_tokens([system(mems), user_msg]) > room:
            mems.pop()  # the weakest memory (hits come best first)
        turns = [list(t.messages) for t in history]
        while True:
            messages = [system(mems), *(m for turn in turns for m in turn), user_msg]
            if not turns or self.lm.count_chat_tokens(messages) <= room:
                return messages, mems, len(turns)
            turns.pop(0)

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
    ) -> list[Memory]:
        """The namespace's buffered memories most relevant to ``query``.

        An unknown namespace simply has no memories: the result is empty.
        """
        ns = self._namespace(user_id, agent_id, None)
        return self._recall(clean_input(query, "query"), ns, top_k, min_similarity)

    def _recall(
        self,
        query: str,
        ns: Namespace,
        top_k: int | None = None,
        min_similarity: float | None = None,
    ) -> list[Memory]:
        k = top_k or self.config.buffer.top_k
        # Hybrid mode (consolidation.drain = false): consolidated memories stay retrievable.
        wanted = (
            (MemoryStatus.BUFFERED,)
            if self.config.consolidation.drain
            else (MemoryStatus.BUFFERED, MemoryStatus.CONSOLIDATED)
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
    ) -> ConsolidationReport:
        """Run the SEAL reward loop for a namespace (see seal_agent.consolidation)."""
        from seal_agent.consolidation import Consolidator

        ns = self._namespace(user_id, agent_id, None)
        self.flush()  # derive what is pending first
        consolidator = self.__dict__.get("_consolidator")
        if consolidator is None:
            consolidator = Consolidator(
                self.config, self.journal, policy=self.lm, store=self.adapters,
                buffer=self.buffer,
            )
            self.__dict__["_consolidator"] = consolidator
        consolidator.progress = progress or (lambda event: None)
        return consolidator.run(
            ns.user_id, ns.agent_id, k=k, max_interactions=max_interactions, dry_run=dry_run
        )

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
        return DeriveStatus.DONE

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
            "journal": str(self.config.journal_path),
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
            "namespaces": self.journal.namespaces(),
            "last_run": self.adapters.last_run(user_id, agent_id),
            "active_adapters": [
                {"user_id": u, "agent_id": a, "version": v.name, "id": v.id}
                for u, a in self.adapters.namespaces()
                if (v := self.adapters.active(u, a)) is not None
            ],
        }


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
