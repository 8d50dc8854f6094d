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
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ReportStatus", "RunStatus"]


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
