"""The journal's store methods that consolidation composes into its transactions:
which interactions are buffered, tries, status moves, consolidated self-edits,
probes.  Real journals, once per engine (tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seal_agent.journal import Journal
from seal_agent.types import (
    Interaction,
    InteractionKind,
    MemoryStatus,
    Message,
    Namespace,
    Probe,
    SelfEdit,
    SelfEditFormat,
)

ANA = Namespace(user_id="ana", agent_id="helper", session_id="s1")
BEN = Namespace(user_id="ben", agent_id="helper", session_id="s1")


def _edit(interaction: Interaction, n: int, *, fmt: SelfEditFormat = SelfEditFormat.STATEMENT,
          status: MemoryStatus = MemoryStatus.BUFFERED, retrievable: bool = True) -> SelfEdit:
    return SelfEdit(id=f"mem_{interaction.id}_{n}", interaction_id=interaction.id,
                    namespace=interaction.namespace, format=fmt, text=f"fact {n}", status=status,
                    author="test-model", retrievable=retrievable, created_at=datetime.now(UTC))


def _derived(journal: Journal, ns: Namespace, *edits: tuple[SelfEditFormat, MemoryStatus]) -> Interaction:
    """An interaction logged and derived with self-edits of these formats and statuses."""
    inter = journal.log_interaction(ns, InteractionKind.CHAT, [Message(role="user", content="hi")])
    journal.save_derivation(inter.id, [_edit(inter, n, fmt=f, status=s) for n, (f, s) in
                                       enumerate(edits)], [], {})
    return inter


STATEMENT = (SelfEditFormat.STATEMENT, MemoryStatus.BUFFERED)


def _tries(journal: Journal, interaction_id: str) -> int:
    rows = journal.execute("SELECT consolidation_tries FROM interactions WHERE id = ?",
                           (interaction_id,))
    return int(rows[0][0])


# -- what is buffered ---------------------------------------------------------------
def test_buffered_means_derived_with_a_buffered_statement(journal: Journal) -> None:
    first = _derived(journal, ANA, STATEMENT, (SelfEditFormat.IMPLICATION, MemoryStatus.BUFFERED))
    _derived(journal, ANA, (SelfEditFormat.IMPLICATION, MemoryStatus.BUFFERED))  # no statement
    _derived(journal, ANA, (SelfEditFormat.STATEMENT, MemoryStatus.CONSOLIDATED))  # drained
    journal.log_interaction(ANA, InteractionKind.CHAT, [Message(role="user", content="hi")])  # pending
    failed = _derived(journal, ANA, STATEMENT)
    journal.mark_derive_failed(failed.id, "a re-derivation failed")  # its edits stay buffered
    last = _derived(journal, ANA, STATEMENT)
    _derived(journal, BEN, STATEMENT)  # another namespace

    got = journal.buffered_interactions("ana", "helper")
    assert [(i.id, tries) for i, tries in got] == [(first.id, 0), (last.id, 0)]
    assert got[0][0] == journal.get_interaction(first.id)
    assert [i.id for i, _ in journal.buffered_interactions("ana", "helper", limit=1)] == [first.id]


def test_max_tries_leaves_out_the_given_up(journal: Journal) -> None:
    tried = _derived(journal, ANA, STATEMENT)
    fresh = _derived(journal, ANA, STATEMENT)
    journal.add_consolidation_tries([tried.id, tried.id])
    assert journal.buffered_interactions("ana", "helper") == [
        (journal.get_interaction(tried.id), 2), (journal.get_interaction(fresh.id), 0)]
    assert [i.id for i, _ in journal.buffered_interactions("ana", "helper", max_tries=2)] == [fresh.id]
    assert [i.id for i, _ in journal.buffered_interactions("ana", "helper", max_tries=3)] == [
        tried.id, fresh.id]


def test_backlog_counts_the_same_interactions_and_dates_the_newest(journal: Journal) -> None:
    assert journal.buffered_backlog("ana", "helper") == (0, None)
    tried = _derived(journal, ANA, STATEMENT, STATEMENT)  # two statements count once
    newest = _derived(journal, ANA, STATEMENT)
    journal.add_consolidation_tries([newest.id])
    assert journal.buffered_backlog("ana", "helper") == (2, newest.created_at)
    assert journal.buffered_backlog("ana", "helper", max_tries=1) == (1, tried.created_at)
    assert journal.buffered_backlog("ben", "helper") == (0, None)


def test_buffered_namespaces_in_byte_order(journal: Journal) -> None:
    assert journal.buffered_namespaces() == []
    given_up = _derived(journal, BEN, STATEMENT)
    _derived(journal, Namespace(user_id="Zoe", agent_id="helper"), STATEMENT)
    _derived(journal, ANA, (SelfEditFormat.IMPLICATION, MemoryStatus.BUFFERED))
    journal.add_consolidation_tries([given_up.id])
    assert journal.buffered_namespaces() == [("Zoe", "helper"), ("ben", "helper")]
    assert journal.buffered_namespaces(max_tries=1) == [("Zoe", "helper")]


# -- writes inside a caller's transaction ---------------------------------------------
def test_tries_and_status_moves_join_the_callers_transaction(journal: Journal) -> None:
    inter = _derived(journal, ANA, STATEMENT)
    edit_id = journal.self_edits(interaction_id=inter.id)[0].id
    with pytest.raises(RuntimeError), journal.transaction() as conn:
        journal.add_consolidation_tries([inter.id], conn)
        journal.set_status([edit_id], MemoryStatus.CONSOLIDATED, conn)
        raise RuntimeError("the promotion failed after these writes")
    assert _tries(journal, inter.id) == 0  # rolled back with the rest
    assert journal.get_self_edit(edit_id).status is MemoryStatus.BUFFERED

    with journal.transaction() as conn:
        journal.add_consolidation_tries([inter.id], conn)
        journal.set_status([edit_id], MemoryStatus.CONSOLIDATED, conn)
    journal.add_consolidation_tries([])
    journal.set_status([], MemoryStatus.REJECTED)
    assert _tries(journal, inter.id) == 1
    assert journal.get_self_edit(edit_id).status is MemoryStatus.CONSOLIDATED


def test_added_self_edits_keep_their_status_and_indexed_flag(journal: Journal) -> None:
    inter = _derived(journal, ANA)
    winners = [_edit(inter, n, fmt=SelfEditFormat.IMPLICATION, status=MemoryStatus.CONSOLIDATED,
                     retrievable=False) for n in range(2)]
    with journal.transaction() as conn:
        journal.add_self_edits(winners, conn, indexed=True)
    stored = journal.self_edits(interaction_id=inter.id)
    assert [(e.id, e.status, e.retrievable, e.author) for e in stored] == [
        (e.id, MemoryStatus.CONSOLIDATED, False, "test-model") for e in winners]
    indexed = journal.execute("SELECT indexed FROM self_edits WHERE interaction_id = ?", (inter.id,))
    assert [r[0] for r in indexed] == [1, 1]

    journal.add_self_edits([_edit(inter, 5)])  # alone, and waiting for the buffer
    assert [e.id for e in journal.unindexed_self_edits()] == [f"mem_{inter.id}_5"]


# -- probes -------------------------------------------------------------------------------
def _probe(interaction: Interaction, question: str) -> Probe:
    return Probe(id=f"prb_{question}", interaction_id=interaction.id,
                 namespace=interaction.namespace, question=question, answer="tea",
                 source="model", created_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC))


def test_added_probes_keep_their_time(journal: Journal) -> None:
    inter = _derived(journal, ANA, STATEMENT)
    journal.add_probes([_probe(inter, "q1"), _probe(inter, "q2")])
    got = journal.probes(interaction_id=inter.id)
    assert [(p.question, p.source) for p in got] == [("q1", "model"), ("q2", "model")]
    assert got[0].created_at == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_consolidated_probe_pairs_are_those_of_drained_interactions(journal: Journal) -> None:
    drained = _derived(journal, ANA, (SelfEditFormat.STATEMENT, MemoryStatus.CONSOLIDATED))
    buffered = _derived(journal, ANA, STATEMENT)
    other = _derived(journal, BEN, (SelfEditFormat.STATEMENT, MemoryStatus.CONSOLIDATED))
    journal.add_probes([_probe(drained, "q1"), _probe(buffered, "q2"), _probe(other, "q3"),
                        _probe(drained, "q4")])
    assert journal.consolidated_probe_pairs("ana", "helper") == [("q1", "tea"), ("q4", "tea")]
