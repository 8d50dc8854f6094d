"""Shared fixtures.

Tests use the real parts: the packaged SmolLM2-135M model, the packaged
MiniLM embedder, real SQLite, a real PostgreSQL server (started here, once
per session, from the machine's PostgreSQL binaries) and real embedded
Chroma.  The converted model is cached once in <repo>/.cache/models
(gitignored) and shared by every test and subprocess through
SEAL_AGENT_MODEL__CACHE_DIR.

``SEAL_TEST_JOURNAL=postgres`` puts the agents ``make_agent`` builds on a
PostgreSQL journal (one fresh database per home) instead of SQLite.  (Not
``SEAL_AGENT_*``: those are settings, and an unknown one is refused.)
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL_CACHE = REPO / ".cache" / "models"

os.environ.setdefault("SEAL_AGENT_MODEL__CACHE_DIR", str(MODEL_CACHE))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one torch thread each (set before
    # torch loads; subprocesses the tests start inherit it).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # prove nothing reaches for a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("SEAL_AGENT_HOME", None)
os.environ.pop("SEAL_AGENT_CONFIG", None)


# The longest modules first. `make test` hands whole files to two pytest-xdist workers in
# collection order (--dist loadfile --no-loadscope-reorder): a long file that started last
# would run alone at the end while the other worker idles. Longest first, the rest fill in
# around them. Seconds per file in one CI-like run (2 cores, 2 workers): consolidation_crash 839,
# memorize 657, eval 243, memorize_leaks 210, agent 200, consolidation 191, policy 121, crash 112.
LONGEST_FIRST = (
    "test_memorize.py", "test_consolidation_crash.py", "test_eval.py", "test_memorize_leaks.py",
    "test_agent.py", "test_consolidation.py", "test_policy.py", "test_crash.py",
    "test_training.py", "test_serve.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


@pytest.fixture(scope="session")
def lm() -> Any:
    from seal_agent.config import load_config
    from seal_agent.models import build_language_model, quiet_model_loading

    quiet_model_loading()
    return build_language_model(load_config(home=MODEL_CACHE.parent / "unused-home"))


@pytest.fixture(scope="session")
def embedder() -> Any:
    from seal_agent.config import load_config
    from seal_agent.models import build_embedder

    return build_embedder(load_config(home=MODEL_CACHE.parent / "unused-home"))


# Small self-edit budgets keep the real-model tests fast.
FAST_SELFEDIT = {"max_new_tokens": 48, "probes_per_interaction": 1}


# -- PostgreSQL -------------------------------------------------------------------------
PG_INSTALL_HINT = (
    "the journal tests start a throwaway PostgreSQL server and need its binaries "
    "(initdb, pg_ctl): install them with `apt-get install -y postgresql` (Debian/Ubuntu; "
    ".ci/run does this), or point SEAL_TEST_PG_BIN at the folder that holds them"
)


def _pg_bindir() -> Path | None:
    """Where initdb and pg_ctl are: $SEAL_TEST_PG_BIN, Debian's newest, or the PATH."""
    candidates = [os.environ.get("SEAL_TEST_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                         reverse=True)
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for folder in candidates:
        if folder and all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port for the session; yields its admin URL.

    initdb refuses to run as root, so as root the server runs as the
    ``postgres`` user, in a temporary folder handed to it.  Trust
    authentication on 127.0.0.1 only; fsync off (a test server: the
    journal's own durability settings are what the tests check).  Missing
    binaries fail the run with an install hint: a skipped backend would
    hide a broken one.
    """
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail(PG_INSTALL_HINT, pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="seal-agent-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, and there is no `postgres` user to run the test "
                        "server as; " + PG_INSTALL_HINT, pytrace=False)
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def run(*args: str | Path) -> None:
        done = subprocess.run([*as_user, *map(str, args)], capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}"
                        f"\n{tail}", pytrace=False)

    run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--locale=C", "--no-sync")
    run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        "-c max_connections=200", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_database(admin_url: str) -> str:
    """A new, empty database on the test server; returns its URL."""
    import psycopg

    name = f"journal_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh database of its own for one test (left for the server's removal at the end)."""
    return new_postgres_database(postgres_server)


@pytest.fixture(params=["sqlite", "postgres"])
def journal_at(request: pytest.FixtureRequest) -> Callable[[Path], str | Path]:
    """Once per engine: where a home's journal goes, as ``Journal(...)`` takes it.

    SQLite: ``<home>/journal.sqlite3``.  PostgreSQL: a new database on the
    session's server (each call makes another).
    """
    if request.param == "sqlite":
        return lambda home: home / "journal.sqlite3"
    server = request.getfixturevalue("postgres_server")
    return lambda home: new_postgres_database(server)


@pytest.fixture
def journal_target(journal_at: Callable[[Path], str | Path], tmp_path: Path) -> str | Path:
    """The journal of the test's home (``tmp_path / "home"``), once per engine."""
    return journal_at(tmp_path / "home")


@pytest.fixture
def journal(journal_target: str | Path) -> Iterator[Any]:
    """The test home's journal, open for the test, once per engine (SQLite, PostgreSQL)."""
    from seal_agent.journal import Journal

    with Journal(journal_target) as j:
        yield j


@pytest.fixture
def make_agent(
    tmp_path: Path, lm: Any, embedder: Any, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Build agents on a fresh home that share the session's loaded models."""
    from seal_agent.agent import SealAgent
    from seal_agent.config import load_config

    made: list[Any] = []
    engine = os.environ.get("SEAL_TEST_JOURNAL", "sqlite")
    if engine not in ("sqlite", "postgres"):
        pytest.fail(f"SEAL_TEST_JOURNAL={engine!r}: use sqlite or postgres", pytrace=False)
    on_postgres = engine == "postgres"
    databases: dict[Path, str] = {}  # one database per home, as one file per home

    def factory(home: Path | None = None, **overrides: Any) -> Any:
        namespace = {k: overrides.pop(k) for k in ("user_id", "agent_id", "session_id") if k in overrides}
        if on_postgres and "journal" not in overrides:
            where = home or tmp_path / "home"
            if where not in databases:
                databases[where] = new_postgres_database(request.getfixturevalue("postgres_server"))
            overrides["journal"] = {"url": databases[where]}
        overrides.setdefault("agent", {}).setdefault("derive", "inline")
        overrides.setdefault("selfedit", FAST_SELFEDIT)
        # Relation templates only at derivation: the model's own pairs cost ~5 s a
        # statement; test_memorize.py runs them (and the rest of recall mode) for real.
        overrides["consolidation"] = {"model_pairs": False, **overrides.get("consolidation", {})}
        cfg = load_config(home=home or tmp_path / "home", **overrides)
        agent = SealAgent(cfg, lm=lm, embedder=embedder, **namespace)
        made.append(agent)
        if on_postgres:  # the switch must not silently fall back to SQLite
            assert agent.journal.dialect == "postgresql", agent.journal.location
        return agent

    yield factory
    for agent in made:
        agent.close()
