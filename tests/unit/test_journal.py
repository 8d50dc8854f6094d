"""The journal against a real SQLite file and a real PostgreSQL server: schema,
durability, derivation, forgetting.

Tests that take ``journal`` or ``journal_target`` run once per engine
(``[sqlite]``, ``[postgres]``; the server is started by tests/conftest.py).
Tests that take ``path`` are about the SQLite file itself.
"""

from __future__ import annotations

import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seal_agent.errors import (
    ConfigError,
    CorruptHomeError,
    HomeError,
    JournalUnavailableError,
    MemoryNotFoundError,
    MissingDependencyError,
    NamespaceNotFoundError,
    SchemaVersionError,
)
from seal_agent.journal import MIGRATIONS, SCHEMA_VERSION, Journal
from seal_agent.types import (
    DeriveStatus,
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


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "journal.sqlite3"


def _say(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def _edit(
    id: str,
    interaction: Interaction,
    text: str = "The user likes tea.",
    *,
    fmt: SelfEditFormat = SelfEditFormat.IMPLICATION,
    status: MemoryStatus = MemoryStatus.BUFFERED,
    retrievable: bool = True,
) -> SelfEdit:
    return SelfEdit(
        id=id,
        interaction_id=interaction.id,
        namespace=interaction.namespace,
        format=fmt,
        text=text,
        status=status,
        author="test-model",
        retrievable=retrievable,
        created_at=datetime.now(UTC),
    )


def _probe(id: str, interaction: Interaction, question: str = "What does the user like?") -> Probe:
    return Probe(
        id=id,
        interaction_id=interaction.id,
        namespace=interaction.namespace,
        question=question,
        answer="tea",
        source="model",
        created_at=datetime.now(UTC),
    )


# -- opening, schema ------------------------------------------------------------


def test_wal_mode_and_foreign_keys_are_on(path: Path) -> None:
    with Journal(path) as journal:
        assert journal._rows("PRAGMA journal_mode")[0][0] == "wal"
        assert journal._rows("PRAGMA foreign_keys")[0][0] == 1
    # WAL is a property of the file: a plain connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_schema_version_is_the_number_of_migrations(journal: Journal) -> None:
    assert journal.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    listing = (
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if journal.dialect == "sqlite"
        else "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    tables = {r[0] for r in journal._rows(listing)}
    assert {"interactions", "self_edits", "probes", "adapter_versions", "fact_probes",
            "weights_recall", "candidates"} <= tables


# The columns of each table, in order, as SQLite has them: PostgreSQL must hand
# back rows of the same shape (its explicit rowid column stays hidden).
def test_rows_have_the_same_columns_on_both_engines(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    journal.save_derivation(inter.id, [_edit("m1", inter)], [_probe("p1", inter)], {"k": 1})
    row = journal.execute("SELECT * FROM interactions")[0]
    assert list(row.keys()) == [
        "id", "user_id", "agent_id", "session_id", "kind", "messages", "metadata", "created_at",
        "derive_status", "derive_error", "derive_report", "derived_at", "consolidation_tries",
    ]
    assert row[0] == row["id"] == inter.id and row["consolidation_tries"] == 0
    assert dict(row)["derive_report"] == '{"k": 1}'
    edit = journal.execute("SELECT * FROM self_edits")[0]
    assert edit["retrievable"] == 1 and edit["indexed"] == 0 and isinstance(edit["indexed"], int)
    assert "rowid" not in list(edit.keys())  # a row is a tuple: `in` would search its values


def test_text_sorts_byte_by_byte_on_both_engines(journal: Journal) -> None:
    # SQLite compares TEXT as bytes; the PostgreSQL schema says COLLATE "C" to match.
    # (an en_US collation would put "a" before "B" and ignore the punctuation)
    users = ["b", "B", "a", "a.z", "a-z", "A1", "9z"]
    for user in users:
        journal.log_interaction(Namespace(user_id=user, agent_id="helper", session_id="s"),
                                InteractionKind.CHAT, _say("hi"))
    assert [r["user_id"] for r in journal.namespaces()] == sorted(users)


def test_a_question_mark_inside_a_literal_is_not_a_placeholder(journal: Journal) -> None:
    rows = journal.execute("SELECT 'why?', ? , '100%'", ("x",))
    assert tuple(rows[0]) == ("why?", "x", "100%")


def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "journal.sqlite3"
    with Journal(path):
        pass
    assert path.is_file()


def test_reopening_keeps_data_and_does_not_migrate_again(journal_target: str | Path) -> None:
    with Journal(journal_target) as j:
        iid = j.log_interaction(ANA, InteractionKind.DOCUMENT, _say("I like tea.")).id
    with Journal(journal_target) as j:
        assert j.schema_version == len(MIGRATIONS)
        assert j.get_interaction(iid).user_text == "I like tea."


def test_newer_schema_is_refused_and_left_alone(path: Path) -> None:
    Journal(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    raw.close()
    with pytest.raises(SchemaVersionError, match="upgrade seal-agent"):
        Journal(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
    raw.close()


def test_newer_schema_on_postgres_is_refused_and_left_alone(postgres_url: str) -> None:
    import psycopg

    Journal(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        raw.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS) + 1,))
    with pytest.raises(SchemaVersionError, match="upgrade seal-agent"):
        Journal(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [
            (len(MIGRATIONS) + 1,)
        ]


def test_postgres_ddl_keeps_sqlite_semantics(postgres_url: str) -> None:
    import psycopg

    Journal(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        types = dict(raw.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'candidates'").fetchall())
        collation = raw.execute(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_name = 'interactions' AND column_name = 'user_id'").fetchone()
    assert types["reward"] == "double precision" and types["sample_index"] == "bigint"
    assert types["rowid"] == "bigint"
    assert collation == ("C",)


def test_an_unknown_scheme_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown journal scheme 'mysql'"):
        Journal("mysql://root:secret@db/seal")
    with pytest.raises(ConfigError) as info:
        Journal("mysql://root:secret@db/seal")
    assert "secret" not in str(info.value)


def test_postgres_without_psycopg_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an absent package looks like
    with pytest.raises(MissingDependencyError, match=r"seal-agent\[postgres\]") as info:
        Journal("postgresql://nobody@127.0.0.1:1/none")
    assert isinstance(info.value, ImportError)


def test_an_unreachable_server_names_the_host_and_hides_the_password() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(JournalUnavailableError, match=f"127.0.0.1:{port}") as info:
        Journal(f"postgresql://seal:hunter2@127.0.0.1:{port}/journal")
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, HomeError)


def test_garbage_file_is_a_corrupt_home(path: Path) -> None:
    path.parent.mkdir(parents=True)
    garbage = bytes(range(256)) * 16
    path.write_bytes(garbage)
    with pytest.raises(CorruptHomeError, match="not a readable SQLite database") as info:
        Journal(path)
    assert isinstance(info.value, HomeError)
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == garbage  # refused, not overwritten


def test_directory_at_the_journal_path_is_a_corrupt_home(path: Path) -> None:
    path.mkdir(parents=True)
    with pytest.raises(CorruptHomeError, match="not a file"):
        Journal(path)


# -- interactions ----------------------------------------------------------------


def test_log_interaction_round_trips(journal: Journal) -> None:
    before = datetime.now(UTC)
    inter = journal.log_interaction(
        ANA, InteractionKind.CHAT, _say("I'm allergic to peanuts."), metadata={"source": "test"}
    )
    assert inter.namespace == ANA
    assert inter.kind is InteractionKind.CHAT
    assert inter.messages == (Message(role="user", content="I'm allergic to peanuts."),)
    assert inter.metadata == {"source": "test"}
    assert inter.derive_status is DeriveStatus.PENDING
    assert inter.created_at >= before
    assert journal.get_interaction(inter.id) == inter


def test_log_interaction_stores_caller_probes(journal: Journal) -> None:
    inter = journal.log_interaction(
        ANA,
        InteractionKind.DOCUMENT,
        _say("My sister Maria lives in Lisbon."),
        probes=[("Where does Maria live?", "Lisbon"), ("Who is Maria?", "the user's sister")],
    )
    probes = journal.probes(interaction_id=inter.id)
    assert [(p.question, p.answer) for p in probes] == [
        ("Where does Maria live?", "Lisbon"),
        ("Who is Maria?", "the user's sister"),
    ]
    assert {p.source for p in probes} == {"caller"}
    assert all(p.namespace == ANA for p in probes)
    assert len({p.id for p in probes}) == 2


def test_get_unknown_interaction(journal: Journal) -> None:
    with pytest.raises(MemoryNotFoundError, match="int_missing"):
        journal.get_interaction("int_missing")


def test_unicode_survives(journal: Journal) -> None:
    text = "Zoë lives in Zürich 🇨🇭 — 東京 too"
    inter = journal.log_interaction(ANA, InteractionKind.DOCUMENT, _say(text))
    assert journal.get_interaction(inter.id).user_text == text


def test_session_history_is_oldest_first_and_limited(journal: Journal) -> None:
    ids = [
        journal.log_interaction(ANA, InteractionKind.CHAT, _say(f"turn {i}")).id for i in range(5)
    ]
    # Other sessions, other users and documents are not part of the chat history.
    journal.log_interaction(ANA.with_session("s2"), InteractionKind.CHAT, _say("elsewhere"))
    journal.log_interaction(BEN, InteractionKind.CHAT, _say("ben's turn"))
    journal.log_interaction(ANA, InteractionKind.DOCUMENT, _say("a document"))

    assert [i.id for i in journal.session_history(ANA)] == ids
    assert [i.id for i in journal.session_history(ANA, limit=2)] == ids[-2:]
    assert [i.user_text for i in journal.session_history(ANA, limit=3)] == [
        "turn 2",
        "turn 3",
        "turn 4",
    ]


def test_complete_turn_appends_the_answer(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("Hi"), metadata={"a": 1})
    journal.complete_turn(inter.id, Message(role="assistant", content="Hello!"), {"b": 2})
    done = journal.get_interaction(inter.id)
    assert [m.role for m in done.messages] == ["user", "assistant"]
    assert done.messages[-1].content == "Hello!"
    assert done.metadata == {"a": 1, "b": 2}
    assert done.user_text == "Hi"


def test_complete_turn_of_unknown_interaction(journal: Journal) -> None:
    with pytest.raises(MemoryNotFoundError):
        journal.complete_turn("int_missing", Message(role="assistant", content="x"))


def test_mark_derive_failed(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("Hi"))
    journal.mark_derive_failed(inter.id, "model crashed")
    failed = journal.get_interaction(inter.id)
    assert failed.derive_status is DeriveStatus.FAILED
    assert failed.derive_error == "model crashed"
    assert [i.id for i in journal.interactions(derive_status=[DeriveStatus.FAILED])] == [inter.id]
    assert journal.interactions(derive_status=[DeriveStatus.PENDING]) == []


# -- derivation --------------------------------------------------------------------


def test_save_derivation_stores_edits_probes_and_report(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    removed = journal.save_derivation(
        inter.id,
        [_edit("m1", inter), _edit("m2", inter, "Tea is liked.", fmt=SelfEditFormat.REWRITE)],
        [_probe("p1", inter)],
        {"kept": {"implication": 1, "rewrite": 1}},
    )
    assert removed == []
    assert [e.id for e in journal.self_edits(interaction_id=inter.id)] == ["m1", "m2"]
    assert journal.get_self_edit("m2").format is SelfEditFormat.REWRITE
    assert journal.get_self_edit("m1").text == "The user likes tea."
    assert [p.id for p in journal.probes(interaction_id=inter.id)] == ["p1"]
    done = journal.get_interaction(inter.id)
    assert done.derive_status is DeriveStatus.DONE
    assert done.derive_report == {"kept": {"implication": 1, "rewrite": 1}}


def test_save_derivation_replaces_buffered_edits_and_model_probes(journal: Journal) -> None:
    inter = journal.log_interaction(
        ANA, InteractionKind.DOCUMENT, _say("I like tea."), probes=[("What drink?", "tea")]
    )
    journal.save_derivation(
        inter.id, [_edit("old1", inter), _edit("old2", inter)], [_probe("oldp", inter)], {}
    )
    removed = journal.save_derivation(inter.id, [_edit("new1", inter)], [_probe("newp", inter)], {})

    assert sorted(removed) == ["old1", "old2"]
    assert [e.id for e in journal.self_edits(interaction_id=inter.id)] == ["new1"]
    probes = journal.probes(interaction_id=inter.id)
    assert sorted(p.source for p in probes) == ["caller", "model"]
    assert "oldp" not in {p.id for p in probes}
    assert "newp" in {p.id for p in probes}
    assert journal.statuses(["old1", "old2", "new1"]) == {"new1": MemoryStatus.BUFFERED}


def test_consolidated_edits_survive_rederivation(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    journal.save_derivation(inter.id, [_edit("keep", inter), _edit("drop", inter)], [], {})
    journal.set_status(["keep"], MemoryStatus.CONSOLIDATED)
    journal.set_status(["drop"], MemoryStatus.REJECTED)
    removed = journal.save_derivation(inter.id, [_edit("fresh", inter)], [], {})
    assert removed == ["drop"]
    edits = {e.id: e.status for e in journal.self_edits(interaction_id=inter.id)}
    assert edits == {"keep": MemoryStatus.CONSOLIDATED, "fresh": MemoryStatus.BUFFERED}


def test_save_derivation_for_a_forgotten_interaction_keeps_nothing(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    journal.forget_interaction(inter.id)
    assert journal.save_derivation(inter.id, [_edit("m1", inter)], [_probe("p1", inter)], {}) == []
    assert journal.self_edits() == []
    assert journal.probes() == []


def test_a_failed_save_derivation_changes_nothing(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    journal.save_derivation(inter.id, [_edit("m1", inter)], [], {})
    # Two edits with one id: the insert fails half-way; the earlier state must stay.
    with pytest.raises(journal.errors) as info:
        journal.save_derivation(inter.id, [_edit("dup", inter), _edit("dup", inter)], [], {})
    assert "IntegrityError" in {c.__name__ for c in type(info.value).__mro__}
    assert [e.id for e in journal.self_edits()] == ["m1"]
    assert journal.get_interaction(inter.id).derive_status is DeriveStatus.DONE


def test_statuses_reports_only_ids_still_present(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    journal.save_derivation(inter.id, [_edit("a", inter), _edit("b", inter)], [], {})
    journal.set_status(["b"], MemoryStatus.REJECTED)
    assert journal.statuses(["a", "b", "ghost"]) == {
        "a": MemoryStatus.BUFFERED,
        "b": MemoryStatus.REJECTED,
    }
    assert journal.statuses([]) == {}


def test_unindexed_and_mark_indexed(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    journal.save_derivation(
        inter.id,
        [
            _edit("a", inter),
            _edit("b", inter),
            _edit("seq", inter, fmt=SelfEditFormat.EXCHANGE, retrievable=False),
        ],
        [],
        {},
    )
    # Training-only sequences never go into the buffer.
    assert [e.id for e in journal.unindexed_self_edits()] == ["a", "b"]
    assert [e.id for e in journal.unindexed_self_edits(limit=1)] == ["a"]
    journal.mark_indexed(["a"])
    assert [e.id for e in journal.unindexed_self_edits()] == ["b"]
    journal.mark_indexed([])
    journal.mark_indexed(["b"])
    assert journal.unindexed_self_edits() == []


# -- forgetting ----------------------------------------------------------------------


def _derived(journal: Journal, ns: Namespace, prefix: str) -> Interaction:
    inter = journal.log_interaction(
        ns, InteractionKind.CHAT, _say("I like tea."), probes=[("Drink?", "tea")]
    )
    journal.save_derivation(
        inter.id,
        [_edit(f"{prefix}1", inter), _edit(f"{prefix}2", inter)],
        [_probe(f"{prefix}p", inter)],
        {},
    )
    return inter


def test_forget_self_edit(journal: Journal) -> None:
    inter = _derived(journal, ANA, "a")
    assert journal.forget_self_edit("a1") == ["a1"]
    assert [e.id for e in journal.self_edits()] == ["a2"]
    with pytest.raises(MemoryNotFoundError):
        journal.get_self_edit("a1")
    with pytest.raises(MemoryNotFoundError, match="a1"):
        journal.forget_self_edit("a1")
    assert journal.get_interaction(inter.id).id == inter.id  # the interaction stays


def test_forget_interaction_cascades(journal: Journal) -> None:
    gone = _derived(journal, ANA, "a")
    kept = _derived(journal, ANA, "b")
    assert sorted(journal.forget_interaction(gone.id)) == ["a1", "a2"]
    with pytest.raises(MemoryNotFoundError):
        journal.get_interaction(gone.id)
    assert journal.self_edits(interaction_id=gone.id) == []
    assert journal.probes(interaction_id=gone.id) == []
    assert sorted(e.id for e in journal.self_edits()) == ["b1", "b2"]
    assert len(journal.probes(interaction_id=kept.id)) == 2
    # No orphan rows behind the API's back either.
    assert (
        journal._rows("SELECT COUNT(*) FROM probes WHERE interaction_id = ?", (gone.id,))[0][0] == 0
    )
    with pytest.raises(MemoryNotFoundError):
        journal.forget_interaction(gone.id)


def test_forget_namespace(journal: Journal) -> None:
    _derived(journal, ANA, "a")
    _derived(journal, ANA.model_copy(update={"agent_id": "other"}), "o")
    _derived(journal, BEN, "b")

    assert sorted(journal.forget_namespace("ana", "helper")) == ["a1", "a2"]
    assert sorted(e.id for e in journal.self_edits(user_id="ana")) == ["o1", "o2"]

    assert sorted(journal.forget_namespace("ana")) == ["o1", "o2"]
    assert journal.interactions(user_id="ana") == []
    assert journal.probes(user_id="ana") == []
    assert sorted(e.id for e in journal.self_edits()) == ["b1", "b2"]  # ben untouched


def test_forget_unknown_namespace(journal: Journal) -> None:
    _derived(journal, ANA, "a")
    with pytest.raises(NamespaceNotFoundError, match="nobody"):
        journal.forget_namespace("nobody")
    with pytest.raises(NamespaceNotFoundError, match="ghost"):
        journal.forget_namespace("ana", "ghost")
    with pytest.raises(LookupError):  # callers may catch the builtin
        journal.forget_namespace("nobody")
    assert len(journal.self_edits()) == 2


# -- summaries, isolation, other processes ---------------------------------------------


def test_counts(journal: Journal) -> None:
    empty = journal.counts()
    assert empty["interactions"] == 0
    assert empty["self_edits"] == {"buffered": 0, "consolidated": 0, "rejected": 0}

    _derived(journal, ANA, "a")  # 1 interaction (done), 2 edits, 2 probes
    journal.log_interaction(ANA, InteractionKind.CHAT, _say("pending"))
    _derived(journal, BEN, "b")
    journal.set_status(["a2"], MemoryStatus.CONSOLIDATED)

    ana = journal.counts(user_id="ana")
    assert ana["interactions"] == 2
    assert ana["derive"] == {"pending": 1, "done": 1, "failed": 0}
    assert ana["self_edits"] == {"buffered": 1, "consolidated": 1, "rejected": 0}
    assert ana["formats"] == {"implication": 2}
    assert ana["probes"] == 2

    total = journal.counts()
    assert total["interactions"] == 3
    assert total["probes"] == 4
    assert journal.counts(user_id="ana", agent_id="nobody")["interactions"] == 0


def test_self_edits_are_isolated_by_namespace(journal: Journal) -> None:
    _derived(journal, ANA, "a")
    _derived(journal, BEN, "b")
    assert {e.id for e in journal.self_edits(user_id="ana")} == {"a1", "a2"}
    assert {e.id for e in journal.self_edits(user_id="ben")} == {"b1", "b2"}
    assert all(e.namespace == BEN for e in journal.self_edits(user_id="ben"))
    assert journal.self_edits(user_id="ana", agent_id="other") == []
    assert journal.self_edits(user_id="carl") == []
    assert [p.id for p in journal.probes(user_id="ben") if p.source == "model"] == ["bp"]


def test_self_edits_filters(journal: Journal) -> None:
    inter = journal.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
    journal.save_derivation(
        inter.id,
        [_edit("r", inter), _edit("t", inter, fmt=SelfEditFormat.EXCHANGE, retrievable=False)],
        [],
        {},
    )
    journal.set_status(["t"], MemoryStatus.REJECTED)
    assert [e.id for e in journal.self_edits(retrievable=True)] == ["r"]
    assert [e.id for e in journal.self_edits(status=[MemoryStatus.REJECTED])] == ["t"]
    assert [e.id for e in journal.self_edits(limit=1)] == ["r"]
    assert journal.get_self_edit("t").retrievable is False


def test_a_second_journal_on_the_same_file_sees_committed_rows(journal_target: str | Path) -> None:
    with Journal(journal_target) as writer, Journal(journal_target) as reader:
        inter = writer.log_interaction(ANA, InteractionKind.CHAT, _say("I like tea."))
        assert reader.get_interaction(inter.id).user_text == "I like tea."
        writer.save_derivation(inter.id, [_edit("m1", inter)], [], {})
        assert [e.id for e in reader.self_edits(user_id="ana")] == ["m1"]
        # And the other way round: the reader's writes reach the writer.
        reader.forget_self_edit("m1")
        assert writer.self_edits() == []
        assert writer.get_interaction(inter.id).derive_status is DeriveStatus.DONE


def test_namespaces_summary(journal: Journal) -> None:
    _derived(journal, ANA, "a")
    journal.log_interaction(ANA.with_session("s2"), InteractionKind.CHAT, _say("again"))
    _derived(journal, BEN, "b")
    rows = journal.namespaces()
    assert [(r["user_id"], r["agent_id"], r["n"]) for r in rows] == [
        ("ana", "helper", 2),
        ("ben", "helper", 1),
    ]
