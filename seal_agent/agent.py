"""The agent: the public facade over the stages, and the place they are wired together.

:class:`SealAgent` owns the memory home's parts (journal, model, embedder,
buffer, adapter store) and hands each job to the module that does it:

- a chat turn, whole or streamed, and one-turn questions: turns.py
  (the prompt's token budget: window.py);
- documents and exchanges another model answered: intake.py;
- deriving self-edits and probes, inline or in the background, and
  ``reprocess``: derivation.py;
- recall and keeping the buffer in agreement with the journal: memory_index.py;
  drained memories backing the adapter's answers: backstop.py;
- the active adapter of a turn and consolidation runs: weights.py;
- forgetting: forget.py; what the home holds: status.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from seal_agent.backstop import Backstop
from seal_agent.config import SealAgentConfig, load_config
from seal_agent.derivation import Deriver, ReprocessReport
from seal_agent.errors import CorruptHomeError
from seal_agent.forget import Forgetter
from seal_agent.intake import Intake, RememberResult
from seal_agent.journal import Journal
from seal_agent.memory_index import MemoryIndex
from seal_agent.status import home_status
from seal_agent.text import clean_input
from seal_agent.turns import ChatResult, ChatStream, Turn, TurnOptions, TurnPipeline, TurnSettings
from seal_agent.types import DeriveStatus, Memory, Namespace, check_id
from seal_agent.weights import ActiveAdapters, ConsolidationRunner

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.buffer import Buffer
    from seal_agent.consolidation import ConsolidationReport
    from seal_agent.models.base import Embedder, LanguageModel
    from seal_agent.selfedit import SelfEditWriter

__all__ = ["ChatResult", "ChatStream", "RememberResult", "ReprocessReport", "SealAgent"]


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
        self.config = config = config or load_config()
        self.default_namespace = Namespace(user_id=user_id, agent_id=agent_id, session_id=session_id)
        home = config.home
        if home.exists() and not home.is_dir():
            raise CorruptHomeError(f"memory home {home} exists but is not a directory")
        home.mkdir(parents=True, exist_ok=True)
        self.journal = journal or Journal.from_config(config)
        if lm is not None:
            self.__dict__["lm"] = lm
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        self._turn_idle = threading.Event()  # cleared while a turn decodes; the worker waits
        self._turn_idle.set()
        self._closed = False
        # The parts load lazily, so each collaborator asks for them when it needs them.
        self._index = MemoryIndex(config, self.journal, lambda: self.embedder, buffer)
        self._adapters = ActiveAdapters(lambda: self.adapters)
        self._deriver = Deriver(
            config, self.journal, self._index,
            writer=lambda: self.writer, lm=lambda: self.lm, turn_idle=self._turn_idle,
        )
        self._intake = Intake(self.journal, self._deriver.after_logged)
        self._forgetter = Forgetter(config, self.journal, self._index, self._adapters,
                                   lambda: self.adapters)
        # drained memories back the adapter's answers (backstop.py); ``counts`` says how often
        self.backstop = Backstop(config, self.journal, self._index)
        self._turns = TurnPipeline(
            config, self.journal, lm=lambda: self.lm, recall=self._index.search,
            backstop=self.backstop, adapters=self._adapters, after_logged=self._deriver.after_logged,
            turn_idle=self._turn_idle,
        )
        if resume_pending and config.agent.derive == "background":
            self._deriver.resume_pending()

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

    @property
    def buffer(self) -> Buffer:
        """The vector buffer.  The first use opens it and, before anything searches
        it, repairs it against the journal (:meth:`MemoryIndex.open_and_repair
        <seal_agent.memory_index.MemoryIndex.open_and_repair>` says why)."""
        return self._index.buffer

    @cached_property
    def writer(self) -> SelfEditWriter:
        from seal_agent.selfedit import SelfEditWriter

        return SelfEditWriter(self.lm, self.config.selfedit)

    @cached_property
    def adapters(self) -> AdapterStore:
        from seal_agent.adapters import AdapterStore

        return AdapterStore(self.config.adapters_dir, self.journal)

    @cached_property
    def _consolidation(self) -> ConsolidationRunner:
        return ConsolidationRunner(
            self.config, self.journal, lm=self.lm, store=self.adapters, buffer=self.buffer
        )

    @property
    def context_length(self) -> int:
        """The model's window, capped by ``model.max_context`` when set."""
        return self._turns.context_length

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
    def chat(self, message: str, **options: Unpack[TurnOptions]) -> ChatResult:
        """One turn.  ``retrieval=False`` answers without buffer memories in the
        prompt; ``weights=False`` without the namespace's memory adapter.

        The options (:class:`~seal_agent.turns.TurnOptions`): ``user_id``,
        ``agent_id``, ``session_id``, ``retrieval``, ``weights``, ``metadata``,
        ``history``, ``system_prompt``, ``params``.  By default the session's
        earlier turns come from the journal.  A caller that keeps the
        conversation itself (a framework with its own message history) passes
        it as ``history`` (user and assistant messages, oldest first) and,
        optionally, its own ``system_prompt``; memories are added to the system
        message either way.  ``params`` overrides the decoding settings
        (``agent.max_new_tokens``, greedy).
        """
        return self._turns.chat(self._turn(message, options))

    def stream(self, message: str, **options: Unpack[TurnOptions]) -> ChatStream:
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
        return self._turns.stream(self._turn(message, options))

    def _turn(self, message: str, options: TurnOptions) -> Turn:
        """The namespace first (its errors come first), then every other check."""
        ns = self._namespace(
            options.pop("user_id", None), options.pop("agent_id", None),
            options.pop("session_id", None),
        )
        settings: TurnSettings = options
        return self._turns.prepare(ns, message, **settings)

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
        return self._turns.answers(
            ns, questions, retrieval=retrieval, weights=weights, max_new_tokens=max_new_tokens
        )

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
        return self._intake.log_exchange(ns, message, answer, metadata)

    def answer_turn(
        self, interaction_id: str, answer: str, *, metadata: dict[str, Any] | None = None
    ) -> RememberResult:
        """Add the answer to an open chat turn (see :meth:`log_exchange`) and derive it."""
        return self._intake.answer_turn(interaction_id, answer, metadata)

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
        return self._intake.remember(ns, text, probes, metadata)

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
        return self._index.search(
            clean_input(query, "query"), ns, top_k, min_similarity, include_consolidated
        )

    # -- memory in weights --------------------------------------------------------------
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
        ns = self._namespace(user_id, agent_id, None)
        self.flush()  # derive what is pending first
        return self._consolidation.run(
            ns, lambda: self.writer, k=k, max_interactions=max_interactions, dry_run=dry_run,
            progress=progress, policy_version=policy_version,
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
        return self._forgetter.forget(memory_id, interaction_id, user_id, agent_id)

    # -- derivation -------------------------------------------------------------------------------
    def derive(self, interaction_id: str) -> DeriveStatus:
        """Write (or rewrite) the self-edits and probes of one interaction."""
        return self._deriver.derive(interaction_id)

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
        return self._deriver.reprocess(
            user_id=user_id, agent_id=agent_id, include_done=include_done, progress=progress
        )

    def reconcile(self) -> tuple[int, int]:
        """Make the buffer agree with the journal; returns (re-indexed, orphans removed)."""
        return self._index.reconcile()

    # -- lifecycle --------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait for background derivation to finish; False on timeout."""
        return self._deriver.flush(timeout)

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker (finishing its queue if ``wait``) and close the journal.

        Without ``wait``, queued derivations stay ``pending`` in the journal
        and are resumed the next time an agent opens this home.
        """
        if self._closed:
            return
        self._closed = True
        self._deriver.stop(wait=wait)
        self.journal.close()

    def __enter__(self) -> SealAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self, *, user_id: str | None = None, agent_id: str | None = None) -> dict[str, Any]:
        """What the memory home holds (journal only: cheap, loads no model)."""
        return home_status(self.config, self.journal, self.adapters, user_id, agent_id)
