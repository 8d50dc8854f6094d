"""The journal's schema: numbered migrations, applied in order, never edited once released.

:class:`~seal_agent.journal.core.JournalCore` applies the missing ones when a
journal is opened (``PRAGMA user_version`` on SQLite, a ``schema_version`` row
on PostgreSQL) and refuses a journal from a newer seal-agent untouched.  The
DDL is SQLite's; :func:`~seal_agent.journal.postgres.pg_ddl` translates it.

Who writes each table (nothing else may; forgetting, in
:mod:`seal_agent.journal.forget`, runs one transaction that calls each
owner's delete function):

=====================  ======================================================
table                  the one module that writes it
=====================  ======================================================
interactions           :mod:`seal_agent.journal.interactions` (InteractionStore)
self_edits             :mod:`seal_agent.journal.self_edits` (SelfEditStore)
probes                 :mod:`seal_agent.journal.probes` (ProbeStore)
consolidation_runs     :mod:`seal_agent.runs` (RunStore; RunLedger drives it)
adapter_versions       :mod:`seal_agent.adapters` (AdapterStore)
active_adapters        :mod:`seal_agent.adapters` (AdapterStore)
candidates             :mod:`seal_agent.runs` (RunLedger.record_candidates)
fact_probes            :mod:`seal_agent.facts_store` (FactStore)
weights_recall         :mod:`seal_agent.facts_store` (FactStore)
=====================  ======================================================
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

# Each entry upgrades the schema by one version.  Never edit a released one:
# append a new migration instead.
MIGRATIONS: tuple[str, ...] = (
    # 1: interactions, the self-edits and probes derived from them.
    """
    CREATE TABLE interactions (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        kind            TEXT NOT NULL,
        messages        TEXT NOT NULL,
        metadata        TEXT NOT NULL DEFAULT '{}',
        created_at      TEXT NOT NULL,
        derive_status   TEXT NOT NULL DEFAULT 'pending',
        derive_error    TEXT,
        derive_report   TEXT NOT NULL DEFAULT '{}',
        derived_at      TEXT
    );
    CREATE INDEX ix_interactions_ns ON interactions (user_id, agent_id, session_id);
    CREATE INDEX ix_interactions_derive ON interactions (derive_status);
    CREATE TABLE self_edits (
        id              TEXT PRIMARY KEY,
        interaction_id  TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        format          TEXT NOT NULL,
        text            TEXT NOT NULL,
        status          TEXT NOT NULL DEFAULT 'buffered',
        author          TEXT NOT NULL,
        sample_id       TEXT,
        retrievable     INTEGER NOT NULL DEFAULT 1,
        indexed         INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX ix_self_edits_ns ON self_edits (user_id, agent_id, status);
    CREATE INDEX ix_self_edits_interaction ON self_edits (interaction_id);
    CREATE TABLE probes (
        id              TEXT PRIMARY KEY,
        interaction_id  TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        question        TEXT NOT NULL,
        answer          TEXT NOT NULL,
        source          TEXT NOT NULL,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX ix_probes_interaction ON probes (interaction_id);
    """,
    # 2: room for consolidation: runs, adapter versions, the active pointer.
    """
    CREATE TABLE consolidation_runs (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        status          TEXT NOT NULL,
        started_at      TEXT NOT NULL,
        finished_at     TEXT,
        config          TEXT NOT NULL DEFAULT '{}',
        metrics         TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE adapter_versions (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        kind            TEXT NOT NULL,
        version         INTEGER NOT NULL,
        path            TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        run_id          TEXT REFERENCES consolidation_runs (id),
        metrics         TEXT NOT NULL DEFAULT '{}',
        created_at      TEXT NOT NULL,
        UNIQUE (user_id, agent_id, kind, version)
    );
    CREATE TABLE active_adapters (
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        kind            TEXT NOT NULL,
        version_id      TEXT NOT NULL REFERENCES adapter_versions (id),
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (user_id, agent_id, kind)
    );
    """,
    # 3: the reward loop's record: every candidate with its reward (the
    # training set of the later self-edit policy step), and per-interaction
    # consolidation tries.
    """
    CREATE TABLE candidates (
        id              TEXT PRIMARY KEY,
        run_id          TEXT NOT NULL REFERENCES consolidation_runs (id) ON DELETE CASCADE,
        interaction_id  TEXT NOT NULL,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        sample_index    INTEGER NOT NULL,
        format          TEXT NOT NULL,
        prompt          TEXT NOT NULL,
        completion      TEXT NOT NULL,
        sequences       TEXT NOT NULL DEFAULT '[]',
        directive       TEXT NOT NULL DEFAULT '{}',
        policy          TEXT NOT NULL,
        score_before    REAL,
        score_after     REAL,
        reward          REAL,
        chosen          INTEGER NOT NULL DEFAULT 0,
        dropped         TEXT NOT NULL DEFAULT '{}',
        created_at      TEXT NOT NULL
    );
    CREATE INDEX ix_candidates_run ON candidates (run_id);
    CREATE INDEX ix_candidates_interaction ON candidates (interaction_id);
    ALTER TABLE interactions ADD COLUMN consolidation_tries INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX ix_adapter_versions_ns ON adapter_versions (user_id, agent_id, kind, version);
    """,
    # 4: consolidation by behaviour (memorize.py; the tables belong to facts_store.py):
    # per memory, the question/answer pairs trained on and the check questions
    # held apart, and whether the weights said the memory back.
    """
    CREATE TABLE fact_probes (
        id              TEXT PRIMARY KEY,
        interaction_id  TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        fact_key        TEXT NOT NULL,
        role            TEXT NOT NULL,
        question        TEXT NOT NULL,
        answer          TEXT NOT NULL,
        origin          TEXT NOT NULL,
        retired         INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX ix_fact_probes_interaction ON fact_probes (interaction_id);
    CREATE INDEX ix_fact_probes_ns ON fact_probes (user_id, agent_id);
    CREATE TABLE weights_recall (
        interaction_id  TEXT PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        state           TEXT NOT NULL,
        checks          INTEGER NOT NULL DEFAULT 0,
        said            INTEGER NOT NULL DEFAULT 0,
        version_id      TEXT,
        run_id          TEXT,
        detail          TEXT NOT NULL DEFAULT '{}',
        checked_at      TEXT NOT NULL
    );
    CREATE INDEX ix_weights_recall_ns ON weights_recall (user_id, agent_id, state);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
