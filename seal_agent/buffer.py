"""The buffer: self-edits and the user's statements in a Chroma collection,
retrieved into the prompt so the agent remembers at once.

Two modes behind one class: an embedded ``chromadb.PersistentClient`` (the
default, under the memory home) or a Chroma server through
``chromadb.HttpClient``.  The client is injectable for tests and for callers
who manage their own.  Embeddings are always computed by our embedder and
handed to Chroma, whose own default embedder would download a model.

The buffer is derived state; the journal is the truth.  Ids are self-edit
ids, upserts are idempotent, and the agent drops any hit the journal no
longer holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from seal_agent.errors import BufferStoreError, ConfigError
from seal_agent.text import normalize
from seal_agent.types import Memory, MemoryStatus, Namespace, SelfEdit, SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import BufferConfig, SealAgentConfig
    from seal_agent.models.base import Embedder

__all__ = ["Buffer", "make_chroma_client"]


def make_chroma_client(config: SealAgentConfig) -> Any:
    """An embedded client under the home, or a server client; telemetry off."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    try:
        if config.buffer.host is not None:
            return chromadb.HttpClient(
                host=config.buffer.host, port=config.buffer.port, settings=settings
            )
        path = config.chroma_path
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as exc:  # chromadb raises ValueError, ConnectionError, its own types
        where = (
            f"server {config.buffer.host}:{config.buffer.port}"
            if config.buffer.host
            else f"store {config.chroma_path}"
        )
        raise BufferStoreError(f"could not open the Chroma {where}: {exc}") from exc


class Buffer:
    def __init__(self, client: Any, embedder: Embedder, config: BufferConfig) -> None:
        self.embedder = embedder
        self.config = config
        self._lock = threading.RLock()
        try:
            self._col = client.get_or_create_collection(
                config.collection,
                embedding_function=None,  # we pass embeddings ourselves
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedder": embedder.name},
            )
        except Exception as exc:
            raise BufferStoreError(f"could not open collection {config.collection!r}: {exc}") from exc
        built_with = (self._col.metadata or {}).get("embedder")
        if built_with and built_with != embedder.name:
            raise ConfigError(
                f"collection {config.collection!r} holds embeddings of {built_with!r}, but the "
                f"configured embedder is {embedder.name!r}: set buffer.collection to a new name "
                "and run `seal-agent reprocess` to re-index the journal's memories"
            )

    @classmethod
    def from_config(cls, config: SealAgentConfig, embedder: Embedder) -> Buffer:
        return cls(make_chroma_client(config), embedder, config.buffer)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise BufferStoreError(f"Chroma {what} failed: {exc}") from exc

    # -- writing -------------------------------------------------------------------
    def add(self, edits: Sequence[SelfEdit]) -> None:
        """Upsert retrievable self-edits (idempotent: ids are self-edit ids)."""
        edits = [e for e in edits if e.retrievable]
        if not edits:
            return
        for part in _batches(edits):
            vectors = self.embedder.embed([e.text for e in part])
            self._call(
                "upsert",
                self._col.upsert,
                ids=[e.id for e in part],
                embeddings=vectors,
                documents=[e.text for e in part],
                metadatas=[_metadata(e) for e in part],
            )

    def set_status(self, ids: Sequence[str], status: MemoryStatus) -> None:
        for part in _batches(list(ids)):
            self._call(
                "update",
                self._col.update,
                ids=part,
                metadatas=[{"status": status.value} for _ in part],
            )

    def delete(self, ids: Iterable[str]) -> None:
        for part in _batches(list(ids)):
            self._call("delete", self._col.delete, ids=part)

    # -- reading -------------------------------------------------------------------
    def search(
        self,
        query: str,
        namespace: Namespace,
        *,
        top_k: int | None = None,
        min_similarity: float | None = None,
        statuses: Sequence[MemoryStatus] = (MemoryStatus.BUFFERED,),
    ) -> list[Memory]:
        """Top-k memories of the namespace's (user, agent) pair, best first.

        Hits below the similarity floor are dropped, and so is any hit nearly
        identical to a better one (the same fact written by several formats).
        """
        k = top_k or self.config.top_k
        floor = self.config.min_similarity if min_similarity is None else min_similarity
        [qvec] = self.embedder.embed([query])
        res = self._call(
            "query",
            self._col.query,
            query_embeddings=[qvec],
            n_results=k * 4,  # room for the floor, de-duplication and journal checks
            where=_where(namespace, statuses),
            include=["documents", "metadatas", "distances", "embeddings"],
        )
        if not res["ids"][0]:
            return []
        kept = _distinct_hits(res, floor, self.config.dedup_similarity)
        return kept[: k * 2]  # the agent trims to k after its journal cross-check

    def ids(self, namespace: Namespace | None = None) -> set[str]:
        where = (
            {"$and": [{"user_id": namespace.user_id}, {"agent_id": namespace.agent_id}]}
            if namespace
            else None
        )
        res = self._call("get", self._col.get, where=where, include=[])
        return set(res["ids"])

    def count(self) -> int:
        return int(self._call("count", self._col.count))


def _where(namespace: Namespace, statuses: Sequence[MemoryStatus]) -> dict[str, Any]:
    """Chroma's filter for the namespace's (user, agent) pair in the given statuses."""
    return {
        "$and": [
            {"user_id": namespace.user_id},
            {"agent_id": namespace.agent_id},
            {"status": {"$in": [s.value for s in statuses]}},
        ]
    }


def _distinct_hits(res: Any, floor: float, dedup_similarity: float) -> list[Memory]:
    """A query's hits above ``floor``, best first, without near-copies of a better hit."""
    import numpy as np  # chromadb's own dependency; not at `import seal_agent` time

    ids = res["ids"][0]
    kept: list[Memory] = []
    kept_rows: list[int] = []
    seen_text: set[str] = set()
    # Every hit's similarity to every other, in one product (the embeddings are unit length).
    vecs = np.asarray(res["embeddings"][0], dtype=np.float64).reshape(len(ids), -1)
    pairwise = vecs @ vecs.T
    for i, mid in enumerate(ids):
        similarity = 1.0 - float(res["distances"][0][i])
        if similarity < floor:
            break  # results come best first
        text = res["documents"][0][i]
        key = normalize(text)
        if key in seen_text or (
            kept_rows and float(pairwise[i, kept_rows].max()) >= dedup_similarity
        ):
            continue
        meta = res["metadatas"][0][i]
        seen_text.add(key)
        kept_rows.append(i)
        kept.append(
            Memory(
                id=mid,
                text=text,
                score=round(similarity, 4),
                format=SelfEditFormat(meta["format"]),
                interaction_id=meta["interaction_id"],
                status=MemoryStatus(meta["status"]),
            )
        )
    return kept


def _batches(items: list[Any], size: int = 500) -> list[list[Any]]:
    """Chroma refuses batches above a server-dependent maximum (5,461 here)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _metadata(edit: SelfEdit) -> dict[str, Any]:
    return {
        "user_id": edit.namespace.user_id,
        "agent_id": edit.namespace.agent_id,
        "session_id": edit.namespace.session_id,
        "interaction_id": edit.interaction_id,
        "format": edit.format.value,
        "status": edit.status.value,
        "author": edit.author,
    }
