"""The journal's tables of consolidation by behaviour: fact probes and weights recall.

``fact_probes``: per memory (interaction), per answer key, the pairs that are
trained on (role ``train``) and the check questions held apart (role
``check``). ``weights_recall``: per memory, whether the weights said it back
at the last check, and how many of its check questions.

Nothing else writes these tables; rows go with their interaction when it is
forgotten (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from seal_agent.fact_check import FactPair
from seal_agent.facts import FactProbes
from seal_agent.journal import Journal, new_id

__all__ = ["FactStore", "RecallRecord", "RecallState", "StoredFact"]


class RecallState(StrEnum):
    """What the weights hold of one memory."""

    SAID = "said"  # every check question answered from the weights: drained from retrieval
    NOT_SAID = "not_said"  # trained, not (yet) said back: stays retrievable
    UNCHECKABLE = "uncheckable"  # no answer that can be checked: stays buffered, never trained
    SUPERSEDED = "superseded"  # a newer memory answers the same questions differently
    MISSED = "missed"  # drained, then a turn's answer from the weights missed it: retrievable again


@dataclass(frozen=True)
class StoredFact:
    """One memory's probes as the journal keeps them."""

    interaction_id: str
    facts: tuple[FactProbes, ...]

    @property
    def train(self) -> list[FactPair]:
        return [p for f in self.facts for p in f.train]

    @property
    def check(self) -> list[FactPair]:
        return [p for f in self.facts for p in f.check]


@dataclass(frozen=True)
class RecallRecord:
    interaction_id: str
    state: RecallState
    checks: int
    said: int
    version_id: str | None
    checked_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class FactStore:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    # -- probes ---------------------------------------------------------------------
    def save(self, interaction_id: str, user_id: str, agent_id: str,
             facts: Sequence[FactProbes]) -> None:
        """Replace an interaction's probes (one transaction)."""
        now = _now()
        rows = [
            (new_id("fpb"), interaction_id, user_id, agent_id, f.key, role, p.question, p.answer,
             p.origin, now)
            for f in facts
            for role, pairs in (("train", f.train), ("check", f.check))
            for p in pairs
        ]
        with self.journal.transaction() as conn:
            conn.execute("DELETE FROM fact_probes WHERE interaction_id = ?", (interaction_id,))
            conn.executemany(
                "INSERT INTO fact_probes (id, interaction_id, user_id, agent_id, fact_key, role, "
                "question, answer, origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def load(self, interaction_ids: Iterable[str]) -> dict[str, StoredFact]:
        """The probes of these interactions (those that have any), retired ones left out."""
        out: dict[str, StoredFact] = {}
        for rows in self._in(
            "SELECT interaction_id, fact_key, role, question, answer, origin FROM fact_probes "
            "WHERE interaction_id IN ({}) AND retired = 0 ORDER BY rowid", interaction_ids,
        ):
            grouped: dict[str, dict[str, dict[str, list[FactPair]]]] = {}
            for r in rows:
                keys = grouped.setdefault(r["interaction_id"], {})
                roles = keys.setdefault(r["fact_key"], {"train": [], "check": []})
                roles[r["role"]].append(FactPair(r["question"], r["answer"], r["fact_key"], r["origin"]))
            for iid, keys in grouped.items():
                out[iid] = StoredFact(iid, tuple(
                    FactProbes(key=k, train=tuple(v["train"]), check=tuple(v["check"]))
                    for k, v in keys.items()
                ))
        return out

    def retire(self, conn: Any, interaction_id: str) -> None:
        """A superseded memory's probes are neither trained nor checked again."""
        conn.execute("UPDATE fact_probes SET retired = 1 WHERE interaction_id = ?", (interaction_id,))

    # -- recall -----------------------------------------------------------------------
    def record(self, conn: Any, records: Sequence[RecallRecord], user_id: str, agent_id: str,
               run_id: str | None) -> None:
        """Write recall states inside the caller's transaction (promotion's, usually)."""
        conn.executemany(
            "INSERT INTO weights_recall (interaction_id, user_id, agent_id, state, checks, said, "
            "version_id, run_id, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (interaction_id) DO UPDATE SET state = excluded.state, "
            "checks = excluded.checks, said = excluded.said, version_id = excluded.version_id, "
            "run_id = excluded.run_id, checked_at = excluded.checked_at",
            [(r.interaction_id, user_id, agent_id, r.state.value, r.checks, r.said, r.version_id,
              run_id, r.checked_at) for r in records],
        )

    def mark_missed(self, conn: Any, interaction_ids: Sequence[str]) -> None:
        """Inside the caller's transaction: memories recorded ``said`` that a turn found the
        weights do not say (backstop.py) are ``missed``; the next consolidation trains them
        again. Their counts of check questions said stay as that consolidation found them."""
        conn.executemany(
            "UPDATE weights_recall SET state = ?, checked_at = ? WHERE interaction_id = ? "
            "AND state = ?",
            [(RecallState.MISSED.value, _now(), i, RecallState.SAID.value)
             for i in interaction_ids],
        )

    def record_now(self, records: Sequence[RecallRecord], user_id: str, agent_id: str,
                   run_id: str | None) -> None:
        with self.journal.transaction() as conn:
            self.record(conn, records, user_id, agent_id, run_id)

    def states(self, user_id: str, agent_id: str) -> dict[str, RecallRecord]:
        rows = self.journal.execute(
            "SELECT * FROM weights_recall WHERE user_id = ? AND agent_id = ?", (user_id, agent_id)
        )
        return {r["interaction_id"]: _record(r) for r in rows}

    def state_of(self, interaction_ids: Iterable[str]) -> dict[str, RecallRecord]:
        return {r["interaction_id"]: _record(r)
                for rows in self._in("SELECT * FROM weights_recall WHERE interaction_id IN ({})",
                                     interaction_ids)
                for r in rows}

    def _in(self, sql: str, ids: Iterable[str]) -> Iterator[list[Any]]:
        """``sql`` with its ``IN ({})`` filled, once per 500 ids (SQLite's variable limit)."""
        ids = list(ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            yield self.journal.execute(sql.format(",".join("?" * len(part))), part)

    def summary(self, user_id: str | None = None, agent_id: str | None = None) -> dict[str, Any]:
        """Counts per state and the share of check questions said, for ``status``."""
        where, args = [], []
        for column, value in (("user_id", user_id), ("agent_id", agent_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = self.journal.execute(
            f"SELECT state, COUNT(*), SUM(checks), SUM(said) FROM weights_recall{clause} "
            "GROUP BY state", args,
        )
        by_state = {r[0]: int(r[1]) for r in rows}
        checks = sum(int(r[2] or 0) for r in rows)
        said = sum(int(r[3] or 0) for r in rows)
        return {
            "memories": {s.value: by_state.get(s.value, 0) for s in RecallState},
            "check_questions": checks,
            "said_from_weights": said,
        }


def _record(r: Any) -> RecallRecord:
    return RecallRecord(
        interaction_id=r["interaction_id"], state=RecallState(r["state"]), checks=int(r["checks"]),
        said=int(r["said"]), version_id=r["version_id"], checked_at=r["checked_at"],
    )

