"""The two run vocabularies keep the strings journals and reports have always held."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from seal_agent import adapters
from seal_agent.adapters import AdapterStore
from seal_agent.consolidation import ConsolidationReport
from seal_agent.journal import Journal
from seal_agent.runs import ReportStatus, RunLedger, RunStatus
from seal_agent.types import InteractionKind, Message, Namespace

ANA = Namespace(user_id="ana", agent_id="helper")


def test_values_are_the_stored_strings() -> None:
    # Journals already hold these; renaming one would orphan old rows.
    assert [s.value for s in RunStatus] == [
        "running", "promoted", "rejected", "skipped", "failed", "abandoned"]
    assert [s.value for s in ReportStatus] == [
        "promoted", "gate_rejected", "nothing_to_promote", "dry_run", "empty"]
    assert adapters.RunStatus is RunStatus


@pytest.mark.parametrize(("report", "row"), [
    ("promoted", "promoted"),
    ("gate_rejected", "rejected"),
    ("nothing_to_promote", "rejected"),
    ("dry_run", "skipped"),
])
def test_each_ending_maps_to_the_row_it_always_wrote(report: str, row: str) -> None:
    assert ReportStatus(report).run_status == row


def test_every_ending_has_a_row_status() -> None:
    for status in ReportStatus:
        assert status.run_status in RunStatus


def test_a_report_reads_and_serialises_as_before() -> None:
    report = ConsolidationReport(run_id="run_1", namespace=Namespace(user_id="maya"),
                                 status="gate_rejected", reason="r")
    assert report.status is ReportStatus.GATE_REJECTED
    assert report.status == "gate_rejected"
    assert f"{report.status}" == "gate_rejected"
    assert json.loads(report.model_dump_json())["status"] == "gate_rejected"
    assert json.dumps(report.model_dump()["status"]) == '"gate_rejected"'
    assert not report.promoted
    promoted = report.model_copy(update={"status": ReportStatus.PROMOTED})
    assert promoted.promoted and promoted.status == "promoted"


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        ConsolidationReport(run_id=None, namespace=Namespace(), status="maybe", reason="")


# -- the ledger, on a real journal and store ------------------------------------------------
@pytest.fixture
def ledger(tmp_path: Path, journal: Journal) -> RunLedger:
    return RunLedger(AdapterStore(tmp_path / "adapters", journal), journal)


def _row(journal: Journal, run_id: str) -> dict[str, object]:
    row = dict(journal.execute("SELECT * FROM consolidation_runs WHERE id = ?", (run_id,))[0])
    row["metrics"] = json.loads(str(row["metrics"]))
    return row


def test_a_run_is_opened_and_closed_with_the_mapped_status(
    ledger: RunLedger, journal: Journal
) -> None:
    with ledger.recording():
        run = ledger.open(ANA, {"pid": 1})
        assert ledger.open_run == run
        assert _row(journal, run)["status"] == "running"
        ledger.close(run, ReportStatus.GATE_REJECTED,
                     {"namespace": ANA, "interactions": (), "chosen": 2, "reason": "gate"},
                     tokens=7, started=time.perf_counter())
    assert ledger.open_run is None
    row = _row(journal, run)
    assert row["status"] == "rejected"
    metrics = row["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["outcome"] == "gate_rejected" and metrics["tokens_trained"] == 7
    assert metrics["chosen"] == 2 and "namespace" not in metrics and "process" in metrics


def test_an_escaping_exception_marks_the_open_run_failed(
    ledger: RunLedger, journal: Journal
) -> None:
    with pytest.raises(KeyError), ledger.recording():
        run = ledger.open(ANA, {})
        raise KeyError("boom")
    row = _row(journal, run)
    assert row["status"] == "failed"
    assert row["metrics"]["error"] == "KeyError: 'boom'"  # type: ignore[index]
    assert ledger.open_run is None


def test_a_closed_run_is_not_marked_failed_afterwards(ledger: RunLedger, journal: Journal) -> None:
    with pytest.raises(RuntimeError), ledger.recording():
        run = ledger.open(ANA, {})
        ledger.close(run, "dry_run", {}, tokens=0, started=time.perf_counter())
        raise RuntimeError("after the run ended")
    assert _row(journal, run)["status"] == "skipped"


def test_tries_are_counted_alone_or_inside_a_transaction(
    ledger: RunLedger, journal: Journal
) -> None:
    ids = [journal.log_interaction(ANA, InteractionKind.DOCUMENT,
                                   [Message(role="user", content=f"fact {i}")]).id
           for i in range(2)]

    def tries() -> list[int]:
        return [journal.execute("SELECT consolidation_tries FROM interactions WHERE id = ?",
                                (i,))[0][0] for i in ids]

    ledger.count_tries([])
    ledger.count_tries(ids)
    with journal.transaction() as conn:
        if journal.dialect == "sqlite":
            assert isinstance(conn, sqlite3.Connection)
        ledger.count_tries(ids[:1], conn)
    assert tries() == [2, 1]


def test_promotion_ends_the_run_in_the_same_transaction(
    ledger: RunLedger, journal: Journal, tmp_path: Path
) -> None:
    def save(folder: Path) -> None:
        (folder / "adapter_config.json").write_text("{}")

    seen: list[str] = []
    with ledger.recording():
        run = ledger.open(ANA, {})
        staged = ledger.store.stage("ana", "helper", "memory", save, config={}, metrics={},
                                    run_id=run)
        version = ledger.promote(staged, run, {"recall_after": 1.0},
                                 also=lambda conn: seen.append("also"))
    assert seen == ["also"] and ledger.open_run is None
    assert ledger.store.active("ana", "helper") == version
    row = _row(journal, run)
    assert row["status"] == "promoted"
    assert row["metrics"]["outcome"] == "promoted"  # type: ignore[index]


def test_candidates_are_recorded_with_their_rewards(ledger: RunLedger, journal: Journal) -> None:
    from seal_agent.selfedit import Candidate, Directive
    from seal_agent.types import SelfEditFormat

    inter = journal.log_interaction(ANA, InteractionKind.DOCUMENT,
                                    [Message(role="user", content="I live in Lisbon.")])
    cands = [Candidate(SelfEditFormat.IMPLICATION, "p", "c0", ["a"], None, {}),
             Candidate(SelfEditFormat.DIRECTIVE, "p", "c1", ["b"], Directive(epochs=2), {"gate": 1})]
    scored = [{"cand": c, "sequences": [f"s{j}"], "after": 0.5 + j, "reward": 0.1 * j}
              for j, c in enumerate(cands)]
    with ledger.recording():
        run = ledger.open(ANA, {})
        ledger.record_candidates(run, inter, scored, before=0.25, chosen=1, policy="base")
        ledger.close(run, "dry_run", {}, tokens=0, started=time.perf_counter())
    rows = [dict(r) for r in journal.execute(
        "SELECT * FROM candidates WHERE run_id = ? ORDER BY sample_index", (run,))]
    assert [(r["sample_index"], r["format"], r["completion"], r["chosen"], r["reward"])
            for r in rows] == [(0, "implication", "c0", 0, 0.0), (1, "directive", "c1", 1, 0.1)]
    assert {r["interaction_id"] for r in rows} == {inter.id}
    assert json.loads(rows[1]["directive"])["epochs"] == 2 and json.loads(rows[0]["directive"]) == {}
    assert json.loads(rows[1]["dropped"]) == {"gate": 1} and json.loads(rows[0]["sequences"]) == ["s0"]
    assert rows[0]["score_before"] == 0.25 and rows[1]["score_after"] == 1.5
    assert rows[0]["policy"] == "base"
