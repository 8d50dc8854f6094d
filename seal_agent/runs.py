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

:class:`RunLedger` is the bookkeeping both consolidation modes share
(consolidation.py and memorize.py): it opens a run's row, closes it once with
the status its ending maps to, and counts failed tries against interactions.
It also keeps the reward loop's record (consolidation.py): every candidate a
run sampled, with its reward, in the ``candidates`` table, which only
:meth:`RunLedger.record_candidates` writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from seal_agent.journal import new_id

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore, AdapterVersion, StagedVersion
    from seal_agent.journal import Connection, Journal
    from seal_agent.types import Interaction, Namespace

__all__ = ["ReportStatus", "RunLedger", "RunStatus"]


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


class RunLedger:
    """The ``consolidation_runs`` rows of one consolidator, and the tries it counts.

    It remembers the run in progress, so that :meth:`recording` can mark it
    failed when an exception escapes; :meth:`close` and :meth:`promote` end it
    normally.
    """

    def __init__(self, store: AdapterStore, journal: Journal) -> None:
        self.store = store
        self.journal = journal
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
                self.store.finish_run(
                    None, self._open, RunStatus.FAILED, {"error": f"{type(exc).__name__}: {exc}"}
                )
                self._open = None
            raise

    def open(self, ns: Namespace, config: dict[str, Any]) -> str:
        """Record a new run as running; it is the open run until closed."""
        self._open = self.store.start_run(ns.user_id, ns.agent_id, config)
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
        self.store.finish_run(None, run_id, status, json.loads(json.dumps(clean, default=str)))
        self._open = None

    def promote(self, staged: StagedVersion, run_id: str, metrics: dict[str, Any],
                also: Callable[[Connection], None]) -> AdapterVersion:
        """Make ``staged`` active and end the run as promoted, in one transaction with ``also``."""

        def commit(conn: Connection) -> None:
            also(conn)
            self.store.finish_run(conn, run_id, RunStatus.PROMOTED,
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
