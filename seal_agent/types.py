"""The objects passed between stages, defined once.

interaction (journal) → self-edits + probes (selfedit) → buffer (Chroma)
→ consolidation (later) → adapter → agent.

All are frozen pydantic models: a stage never mutates what it was handed.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from seal_agent.errors import InvalidNamespaceError

__all__ = [
    "DeriveReport",
    "DeriveStatus",
    "FrozenModel",
    "Interaction",
    "InteractionKind",
    "Memory",
    "MemoryStatus",
    "Message",
    "Namespace",
    "Probe",
    "SelfEdit",
    "SelfEditFormat",
]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")


class FrozenModel(BaseModel):
    """The base of every object the SDK hands between stages or back to its caller.

    Frozen: a stage never mutates what it was handed.  Extra fields are refused,
    so a misspelt keyword fails where it is written instead of being dropped.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


class Namespace(FrozenModel):
    """Who a memory belongs to.

    Memories are shared across the sessions of one (user, agent) pair: a new
    session remembers what an old one was told.  ``session_id`` only scopes
    the multi-turn chat history.
    """

    user_id: str = "default"
    agent_id: str = "default"
    session_id: str = "default"

    def __init__(self, **data: Any) -> None:
        # Checked before pydantic sees them, so a bad id raises our
        # InvalidNamespaceError instead of pydantic's ValidationError.
        for key in ("user_id", "agent_id", "session_id"):
            if key in data:
                check_id(data[key], key)
        super().__init__(**data)

    @property
    def key(self) -> str:
        """The (user, agent) pair as one string, the unit memories belong to."""
        return f"{self.user_id}/{self.agent_id}"

    def with_session(self, session_id: str) -> Namespace:
        return Namespace(user_id=self.user_id, agent_id=self.agent_id, session_id=session_id)


def check_id(value: str, what: str = "id") -> str:
    """Validate one namespace component; raise :class:`InvalidNamespaceError`."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidNamespaceError(
            f"invalid {what} {value!r}: use 1-128 characters from letters, digits and "
            "'._@:+-', starting with a letter or digit"
        )
    return value


class Message(FrozenModel):
    role: Literal["system", "user", "assistant"]
    content: str


class InteractionKind(StrEnum):
    CHAT = "chat"  # one user turn and the agent's answer
    DOCUMENT = "document"  # remember(text): a fact or document the caller hands in


class DeriveStatus(StrEnum):
    """Where the derivation of self-edits from an interaction stands."""

    PENDING = "pending"  # committed, nothing derived yet (or a crash cut it short)
    DONE = "done"
    FAILED = "failed"  # the error is kept; `seal-agent reprocess` retries


class Interaction(FrozenModel):
    id: str
    namespace: Namespace
    kind: InteractionKind
    messages: tuple[Message, ...]
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    derive_status: DeriveStatus = DeriveStatus.PENDING
    derive_error: str | None = None
    derive_report: dict[str, Any] = Field(default_factory=dict)

    @property
    def user_text(self) -> str:
        """What the user said (or handed in): the source that self-edits may draw on."""
        return "\n".join(m.content for m in self.messages if m.role == "user")


class SelfEditFormat(StrEnum):
    """SEAL's self-edit formats plus the two kept from the source itself."""

    STATEMENT = "statement"  # the user's own words (retrievable, trainable)
    EXCHANGE = "exchange"  # the raw exchange, always one training sequence
    IMPLICATION = "implication"  # an atomic fact implied by the source
    REWRITE = "rewrite"  # the source restated
    QA = "qa"  # a self-written question with its answer
    DIRECTIVE = "directive"  # facts plus the update settings the model chose (consolidation)


class MemoryStatus(StrEnum):
    BUFFERED = "buffered"  # waiting in the buffer; retrieved into prompts
    CONSOLIDATED = "consolidated"  # moved into an adapter
    REJECTED = "rejected"  # dropped by a check or by consolidation


class SelfEdit(FrozenModel):
    """One training sequence derived from one interaction; also one retrievable memory."""

    id: str
    interaction_id: str
    namespace: Namespace
    format: SelfEditFormat
    text: str
    status: MemoryStatus = MemoryStatus.BUFFERED
    author: str  # which model (and later which policy adapter) wrote it
    sample_id: str | None = None  # groups the items of one generated self-edit
    retrievable: bool = True
    created_at: datetime


class Probe(FrozenModel):
    """A held-apart question about an interaction; consolidation scores itself on these."""

    id: str
    interaction_id: str
    namespace: Namespace
    question: str
    answer: str
    source: Literal["model", "caller"]
    created_at: datetime


class Memory(FrozenModel):
    """A retrieval hit from the buffer."""

    id: str
    text: str
    score: float  # cosine similarity in [-1, 1]
    format: SelfEditFormat
    interaction_id: str
    status: MemoryStatus


class DeriveReport(FrozenModel):
    """What one derivation produced and what it had to drop (kept in the journal)."""

    kept: dict[str, int] = Field(default_factory=dict)
    dropped: dict[str, int] = Field(default_factory=dict)
    probes: int = 0
    dropped_source_questions: bool = False  # the user's questions were left out of the source
    seconds: float = 0.0
    author: str = ""
