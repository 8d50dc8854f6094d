"""How a consolidation run ends, in the two words the SDK keeps for it.

A run has two vocabularies, kept apart on purpose:

* :class:`ReportStatus` is what the caller is told (``ConsolidationReport.status``,
  and the ``outcome`` kept in the run's metrics). It says *why* nothing was
  promoted: the gate refused, nothing earned training, a dry run, an empty buffer.
* :class:`RunStatus` is what the journal's ``consolidation_runs`` row records. It
  adds the states a report never shows (``running``, ``failed``, ``abandoned``)
  and folds the reasons for not promoting into ``rejected`` or ``skipped``.

:attr:`ReportStatus.run_status` is the one map from the first to the second.
Both are ``StrEnum``: members compare equal to, format as and serialise to the
strings that journals and reports have always held.

:class:`RunStore` owns the journal's ``consolidation_runs`` table: nothing else
writes it.  A run's row records the process that runs it, so a run whose
process died can be marked ``abandoned`` (:meth:`RunStore.mark_abandoned_runs`).
:class:`RunLedger` is that store as one consolidator uses it, the bookkeeping
both consolidation modes share (consolidation.py and memorize.py): it opens a
run's row, closes it once with the status its ending maps to, and counts
failed tries against interactions.
It also keeps the reward loop's record (consolidation.py): every candidate a
run sampled, with its reward, in the ``candidates`` table, which only
:meth:`RunLedger.record_candidates` writes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from seal_agent.errors import ConfigError, ConsolidationError
from seal_agent.journal import new_id
from seal_agent.journal.core import ns_where
from seal_agent.types import check_id

if TYPE_CHECKING:
    import psutil

    from seal_agent.adapters import AdapterStore, AdapterVersion, StagedVersion
    from seal_agent.journal import Connection, Journal
    from seal_agent.types import Interaction, Namespace

__all__ = ["ReportStatus", "RunLedger", "RunStatus", "RunStore", "erase_candidates", "erase_runs"]


class RunStatus(StrEnum):
    """Where a consolidation run stands (``consolidation_runs.status``)."""

    RUNNING = "running"
    PROMOTED = "promoted"  # a new version became active
    REJECTED = "rejected"  # trained, but the gate refused or nothing earned training
    SKIPPED = "skipped"  # a dry run: gated, nothing kept
    FAILED = "failed"  # an error; the run's metrics say which
    ABANDONED = "abandoned"  # its process died while it ran


class ReportStatus(StrEnum):
    """How a consolidation run ended, as its report says (``ConsolidationReport.status``)."""

    PROMOTED = "promoted"  # the gate passed: a new adapter version is active
    GATE_REJECTED = "gate_rejected"  # an adapter was trained, but the gate refused it
    NOTHING_TO_PROMOTE = "nothing_to_promote"  # no candidate or memory earned training
    DRY_RUN = "dry_run"  # ran and gated as asked, kept nothing
    EMPTY = "empty"  # the buffer held nothing: no run was started, no row written

    @property
    def run_status(self) -> RunStatus:
        """What the run's ``consolidation_runs`` row records for this ending."""
        return _RUN_STATUS[self]


_RUN_STATUS = {
    ReportStatus.PROMOTED: RunStatus.PROMOTED,
    ReportStatus.GATE_REJECTED: RunStatus.REJECTED,
    ReportStatus.NOTHING_TO_PROMOTE: RunStatus.REJECTED,
    ReportStatus.DRY_RUN: RunStatus.SKIPPED,
    # Never recorded (an empty run opens no row); listed so the map is total.
    ReportStatus.EMPTY: RunStatus.SKIPPED,
}


class RunStore:
    """The journal's ``consolidation_runs`` rows: the one place that writes them."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def start_run(self, user_id: str, agent_id: str, config: dict[str, Any]) -> str:
        """Record a run as 'running', with the process that runs it (for mark_abandoned_runs)."""
        check_id(user_id, "user_id")
        check_id(agent_id, "agent_id")
        run_id = new_id("run")
        with self.journal.transaction() as conn:
            conn.execute(
                "INSERT INTO consolidation_runs (id, user_id, agent_id, status, started_at, "
                "config, metrics) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, user_id, agent_id, RunStatus.RUNNING.value, _now(), _dumps(config),
                 _dumps({"process": _this_process()})),
            )
        return run_id

    def finish_run(
        self,
        conn: Connection | None,
        run_id: str,
        status: RunStatus | str,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Close a run; ``metrics`` are merged over what it has (the process record stays).

        Pass the connection ``AdapterStore.promote`` hands to ``also`` to finish
        the run in the promotion's transaction; pass None to commit on its own.
        """
        try:
            final = RunStatus(status)
        except ValueError:
            final = None
        if final is None or final is RunStatus.RUNNING:
            allowed = ", ".join(s.value for s in RunStatus if s is not RunStatus.RUNNING)
            raise ConfigError(f"cannot finish a run as {status!r}; use one of {allowed}")
        ended = final

        def apply(db: Connection) -> None:
            row = db.execute(
                "SELECT metrics FROM consolidation_runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise ConsolidationError(f"no consolidation run with id {run_id!r}")
            merged = {**json.loads(row[0]), **(metrics or {})}
            db.execute(
                "UPDATE consolidation_runs SET status = ?, finished_at = ?, metrics = ? "
                "WHERE id = ?",
                (ended.value, _now(), _dumps(merged), run_id),
            )

        if conn is not None:
            apply(conn)
            return
        with self.journal.transaction() as db:
            apply(db)

    def require_run(self, run_id: str) -> None:
        """Raise ConsolidationError unless the run has a row (a version names only real runs)."""
        if not self.journal.execute("SELECT 1 FROM consolidation_runs WHERE id = ?", (run_id,)):
            raise ConsolidationError(
                f"no consolidation run with id {run_id!r}: start it with start_run first"
            )

    def last_run(self, user_id: str | None = None, agent_id: str | None = None) -> dict[str, Any] | None:
        """The most recently started run (of a user, or a user-agent pair), JSON fields decoded."""
        where, args = [], []
        for column, value in (("user_id", user_id), ("agent_id", agent_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM consolidation_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.journal.execute(sql + " ORDER BY started_at DESC, rowid DESC LIMIT 1", args)
        if not rows:
            return None
        run = dict(rows[0])
        run["config"] = json.loads(run["config"])
        run["metrics"] = json.loads(run["metrics"])
        return run

    def mark_abandoned_runs(self) -> list[str]:
        """Mark 'running' runs whose process is gone as 'abandoned'; returns their ids.

        Only runs started on this host are judged (another machine's pids mean
        nothing here), and a pid reused by a newer process counts as gone.
        """
        rows = self.journal.execute(
            "SELECT id, metrics FROM consolidation_runs WHERE status = ?", (RunStatus.RUNNING.value,)
        )
        gone = [r[0] for r in rows if _process_gone(json.loads(r[1]).get("process"))]
        if gone:
            finished = _now()
            with self.journal.transaction() as conn:
                for run_id in gone:
                    conn.execute(
                        "UPDATE consolidation_runs SET status = ?, finished_at = ? "
                        "WHERE id = ? AND status = ?",
                        (RunStatus.ABANDONED.value, finished, run_id, RunStatus.RUNNING.value),
                    )
        return gone


class RunLedger(RunStore):
    """The ``consolidation_runs`` rows of one consolidator, and the tries it counts.

    It remembers the run in progress, so that :meth:`recording` can mark it
    failed when an exception escapes; :meth:`close` and :meth:`promote` end it
    normally.  ``store`` indexes the same journal (it promotes the run's version).
    """

    def __init__(self, store: AdapterStore, journal: Journal) -> None:
        super().__init__(journal)
        self.store = store
        self._open: str | None = None

    @property
    def open_run(self) -> str | None:
        """The run opened and not yet closed, if any."""
        return self._open

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Around one run: if an exception escapes, the run it opened is recorded as failed."""
        self._open = None
        try:
            yield
        except BaseException as exc:  # the run is over: say how it ended
            if self._open is not None:
                self.finish_run(
                    None, self._open, RunStatus.FAILED, {"error": f"{type(exc).__name__}: {exc}"}
                )
                self._open = None
            raise

    def open(self, ns: Namespace, config: dict[str, Any]) -> str:
        """Record a new run as running; it is the open run until closed."""
        self._open = self.start_run(ns.user_id, ns.agent_id, config)
        return self._open

    def close(self, run_id: str, outcome: ReportStatus | str, metrics: dict[str, Any], *,
              tokens: int, started: float) -> None:
        """End a run that promoted nothing, with the row status its ``outcome`` maps to.

        The row keeps ``metrics`` (less the report's namespace and interactions)
        with the outcome, the tokens trained and the seconds since ``started``
        (a ``time.perf_counter()`` reading).
        """
        clean = {k: v for k, v in metrics.items() if k not in ("namespace", "interactions")}
        clean.update(outcome=outcome, tokens_trained=tokens,
                     seconds=round(time.perf_counter() - started, 2))
        status = ReportStatus(outcome).run_status
        self.finish_run(None, run_id, status, json.loads(json.dumps(clean, default=str)))
        self._open = None

    def promote(self, staged: StagedVersion, run_id: str, metrics: dict[str, Any],
                also: Callable[[Connection], None]) -> AdapterVersion:
        """Make ``staged`` active and end the run as promoted, in one transaction with ``also``."""

        def commit(conn: Connection) -> None:
            also(conn)
            self.finish_run(conn, run_id, RunStatus.PROMOTED,
                            {**metrics, "outcome": ReportStatus.PROMOTED})

        promoted = self.store.promote(staged, also=commit)
        self._open = None
        return promoted

    def count_tries(self, interaction_ids: Sequence[str],
                    conn: Connection | None = None) -> None:
        """One more failed consolidation try for each interaction (given up at ``max_tries``).

        Pass ``conn`` to count inside a transaction already open (a promotion's).
        """
        if not interaction_ids:
            return
        self.journal.add_consolidation_tries(interaction_ids, conn)

    def record_candidates(
        self, run_id: str, interaction: Interaction, scored: Sequence[Mapping[str, Any]], *,
        before: float, chosen: int | None, policy: str,
    ) -> None:
        """Every (prompt, candidate, directive, reward) of one interaction: the policy step's data.

        ``scored`` holds one mapping per candidate, in sample order: ``cand``
        (a :class:`~seal_agent.selfedit.Candidate`), ``sequences`` (what was
        trained), ``after`` (the probe score after training) and ``reward``.
        ``chosen`` is the index of the winner, ``policy`` who sampled them.
        """
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        ns = interaction.namespace
        rows = [
            (new_id("cnd"), run_id, interaction.id, ns.user_id, ns.agent_id, j,
             r["cand"].format.value, r["cand"].prompt, r["cand"].completion,
             json.dumps(r["sequences"]),
             json.dumps(r["cand"].directive.as_dict() if r["cand"].directive else {}),
             policy, before, r["after"], r["reward"], int(j == chosen),
             json.dumps(r["cand"].dropped), now)
            for j, r in enumerate(scored)
        ]
        with self.journal.transaction() as conn:
            conn.executemany(
                "INSERT INTO candidates (id, run_id, interaction_id, user_id, agent_id, "
                "sample_index, format, prompt, completion, sequences, directive, policy, "
                "score_before, score_after, reward, chosen, dropped, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


def erase_runs(conn: Connection, user_id: str, agent_id: str | None) -> None:
    """Forget a user's (or a pair's) runs and candidates, inside the journal's forget transaction.

    Candidates hold the user's words; run rows hold what was measured on them.
    """
    where, args = ns_where(user_id, agent_id, None)
    clause = " AND ".join(where)
    conn.execute(f"DELETE FROM candidates WHERE {clause}", args)
    conn.execute(f"DELETE FROM consolidation_runs WHERE {clause}", args)


def erase_candidates(conn: Connection, interaction_id: str) -> None:
    """Forget the candidates sampled from one interaction (its words are in them)."""
    conn.execute("DELETE FROM candidates WHERE interaction_id = ?", (interaction_id,))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# -- the process that runs a run -------------------------------------------------------
# psutil is imported where it is used: this module loads with the CLI, whose start stays fast.
def _start_ticks(proc: psutil.Process) -> int:
    """When a process started, in clock ticks since boot.

    The unit journals have always recorded (Linux's /proc ``starttime``), so a
    run recorded by an older seal-agent is judged the same way.
    """
    import psutil

    since_boot: float = proc.create_time() - psutil.boot_time()
    return round(since_boot * os.sysconf("SC_CLK_TCK"))


def _this_process() -> dict[str, Any]:
    import psutil

    try:
        start: int | None = _start_ticks(psutil.Process())
    except (psutil.Error, OSError, ValueError):
        start = None
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": start}


def _process_gone(process: Any) -> bool:
    """True only when we can tell: same host, and the pid is dead, a zombie, or reused."""
    import psutil

    if not isinstance(process, dict) or not isinstance(process.get("pid"), int):
        return False  # no process record: leave the run to a person
    if process.get("host") != socket.gethostname():
        return False
    try:
        proc = psutil.Process(process["pid"])
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        start = _start_ticks(proc)
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError, ValueError):
        return False  # alive but unreadable (another user's, no permission): leave it
    return process.get("start") is not None and start != process["start"]
