"""The two run vocabularies keep the strings journals and reports have always held."""

from __future__ import annotations

import json

import pytest

from seal_agent import adapters
from seal_agent.consolidation import ConsolidationReport
from seal_agent.runs import ReportStatus, RunStatus
from seal_agent.types import Namespace


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
