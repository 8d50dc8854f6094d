"""The adapter store against a real journal (SQLite, then PostgreSQL) and real files.

Every test that takes ``journal`` or ``store`` runs once per engine: on
PostgreSQL the namespace lock is an advisory lock instead of ``flock``.

The "adapter" is a small safetensors file plus a config, written by a save
function the way ``model.save_pretrained`` would; no model is loaded.
Crash tests kill real subprocesses with SIGKILL at each step of a stage.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import seal_agent
from seal_agent.adapter_files import MANIFEST
from seal_agent.adapters import AdapterStore, AdapterVersion, StagedVersion
from seal_agent.errors import (
    AdapterNotFoundError,
    ConfigError,
    ConsolidationBusyError,
    ConsolidationError,
    CorruptAdapterError,
    InvalidNamespaceError,
)
from seal_agent.journal import Connection, Journal
from seal_agent.runs import RunStatus, RunStore

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = "adapter_model.safetensors"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path, journal: Journal) -> AdapterStore:
    return AdapterStore(home / "adapters", journal)


def writer(seed: int = 0) -> Callable[[Path], None]:
    """A save function shaped like PEFT's: weights, their config, a nested extra."""

    def save(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        save_file(
            {"lora_A": rng.standard_normal((4, 8)).astype(np.float32),
             "lora_B": np.zeros((8, 4), dtype=np.float32)},
            str(folder / WEIGHTS),
        )
        (folder / "adapter_config.json").write_text(json.dumps({"r": 4, "seed": seed}))
        (folder / "extra").mkdir()
        (folder / "extra" / "notes.txt").write_text("trained on two memories\n")

    return save


def add(
    store: AdapterStore,
    user: str = "ana",
    agent: str = "helper",
    *,
    seed: int = 0,
    kind: str = "memory",
    run_id: str | None = None,
    parent_id: str | None = None,
) -> AdapterVersion:
    with store.lock(user, agent):
        staged = store.stage(
            user, agent, kind, writer(seed),
            config={"lora_r": 4, "home": Path("/h")}, metrics={"gain": 0.1 * seed},
            run_id=run_id, parent_id=parent_id,
        )
        return store.promote(staged)


def flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def rows(journal: Journal, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in journal.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def active(store: AdapterStore, user: str = "ana", agent: str = "helper") -> AdapterVersion:
    version = store.active(user, agent)
    assert version is not None
    return version


def runs(store: AdapterStore) -> RunStore:
    """The run rows of the store's journal (runs.py owns them)."""
    return RunStore(store.journal)


def last_run(store: AdapterStore, *namespace: str) -> dict[str, Any]:
    run = runs(store).last_run(*namespace)
    assert run is not None
    return run


# -- stage and promote ---------------------------------------------------------------
def test_stage_and_promote_make_it_active_and_listed(store: AdapterStore, home: Path) -> None:
    run = runs(store).start_run("ana", "helper", {"lora_r": 4})
    first = add(store, run_id=run)
    assert first.path == home / "adapters" / "ana" / "helper" / "memory" / "v0001"
    assert (first.name, first.version, first.active, first.run_id) == ("v0001", 1, True, run)
    assert store.active("ana", "helper") == first
    assert store.get(first.id) == first
    assert load_file(str(first.path / WEIGHTS))["lora_A"].shape == (4, 8)

    manifest = json.loads((first.path / MANIFEST).read_text())
    assert manifest["id"] == first.id
    assert manifest["version"] == 1 and manifest["kind"] == "memory"
    assert manifest["namespace"] == {"user_id": "ana", "agent_id": "helper"}
    assert manifest["run_id"] == run and manifest["parent_id"] is None
    assert manifest["seal_agent_version"] == seal_agent.__version__
    assert manifest["config"] == {"lora_r": 4, "home": "/h"}
    assert manifest["metrics"] == {"gain": 0.0}
    assert set(manifest["files"]) == {WEIGHTS, "adapter_config.json", "extra/notes.txt"}
    assert manifest["files"][WEIGHTS]["size"] == (first.path / WEIGHTS).stat().st_size
    store.verify(first)

    second = add(store, seed=1, parent_id=first.id)
    assert json.loads((second.path / MANIFEST).read_text())["parent_id"] == first.id
    listed = store.list("ana", "helper")
    assert [(v.name, v.active) for v in listed] == [("v0002", True), ("v0001", False)]
    assert store.active("ana", "helper") == second
    assert store.namespaces() == [("ana", "helper")]
    assert not list(second.path.parent.glob(".tmp-*"))


def test_staged_version_is_not_active_and_cleanup_removes_it(store: AdapterStore) -> None:
    kept = add(store)
    staged = store.stage("ana", "helper", "memory", writer(1), config={}, metrics={})
    assert isinstance(staged, StagedVersion) and staged.name == "v0002"
    assert staged.path.is_dir()
    assert store.active("ana", "helper") == kept
    assert [v.name for v in store.list("ana", "helper")] == ["v0001"]

    leftover_tmp = staged.path.parent / ".tmp-v0003-deadbeef"
    leftover_tmp.mkdir()
    (leftover_tmp / WEIGHTS).write_bytes(b"half")
    assert store.cleanup("ana", "helper") == [leftover_tmp, staged.path]
    assert not staged.path.exists() and not leftover_tmp.exists()
    store.verify(kept)
    assert store.cleanup("ana", "helper") == []
    assert store.cleanup("nobody", "here") == []
    assert not (store.root / "nobody").exists()


def test_exception_in_also_changes_nothing_in_the_journal(
    store: AdapterStore, journal: Journal
) -> None:
    first = add(store)
    run = runs(store).start_run("ana", "helper", {})
    before = {t: rows(journal, t) for t in ("adapter_versions", "active_adapters", "consolidation_runs")}
    staged = store.stage("ana", "helper", "memory", writer(1), config={}, metrics={}, run_id=run)

    def also(conn: Connection) -> None:
        runs(store).finish_run(conn, run, RunStatus.PROMOTED, {"gain": 1.0})
        raise RuntimeError("probe scoring crashed")

    with pytest.raises(RuntimeError, match="probe scoring crashed"):
        store.promote(staged, also=also)
    after = {t: rows(journal, t) for t in before}
    assert after == before
    assert store.active("ana", "helper") == first
    assert last_run(store, "ana", "helper")["status"] == "running"
    assert staged.path.is_dir()  # left for cleanup
    assert store.cleanup("ana", "helper") == [staged.path]


def test_also_commits_with_the_promotion(store: AdapterStore) -> None:
    run = runs(store).start_run("ana", "helper", {"k": 3})
    staged = store.stage("ana", "helper", "memory", writer(), config={}, metrics={}, run_id=run)
    version = store.promote(
        staged, also=lambda conn: runs(store).finish_run(conn, run, "promoted", {"gain": 0.4})
    )
    last = runs(store).last_run("ana", "helper")
    assert last is not None
    assert (last["id"], last["status"], last["config"]) == (run, "promoted", {"k": 3})
    assert last["metrics"]["gain"] == 0.4 and last["metrics"]["process"]["pid"] == os.getpid()
    assert last["finished_at"] is not None
    assert store.active("ana", "helper") == version


def test_promoting_twice_or_after_cleanup_is_refused(store: AdapterStore) -> None:
    staged = store.stage("ana", "helper", "memory", writer(), config={}, metrics={})
    store.promote(staged)
    with pytest.raises(ConsolidationError, match="v0001 of ana/helper is promoted already"):
        store.promote(staged)
    gone = store.stage("ana", "helper", "memory", writer(1), config={}, metrics={})
    store.cleanup("ana", "helper")
    with pytest.raises(ConsolidationError, match="cleaned up"):
        store.promote(gone)
    assert active(store).name == "v0001"


def test_stage_checks_its_inputs(store: AdapterStore, tmp_path: Path) -> None:
    with pytest.raises(ConsolidationError, match="no consolidation run"):
        store.stage("ana", "helper", "memory", writer(), config={}, metrics={}, run_id="run_x")
    with pytest.raises(AdapterNotFoundError):
        store.stage("ana", "helper", "memory", writer(), config={}, metrics={}, parent_id="adp_x")
    bens = add(store, "ben")
    with pytest.raises(ConsolidationError, match="not of ana/helper"):
        store.stage("ana", "helper", "memory", writer(), config={}, metrics={}, parent_id=bens.id)
    with pytest.raises(ConfigError, match="unknown adapter kind"):
        store.stage("ana", "helper", "lora", writer(), config={}, metrics={})
    with pytest.raises(InvalidNamespaceError):
        store.stage("../etc", "helper", "memory", writer(), config={}, metrics={})

    def nothing(folder: Path) -> None:
        pass

    def own_manifest(folder: Path) -> None:
        (folder / MANIFEST).write_text("{}")

    def link(folder: Path) -> None:
        (folder / WEIGHTS).symlink_to(tmp_path)

    for save, message in ((nothing, "no files"), (own_manifest, "belongs to the store"),
                          (link, "symbolic link")):
        with pytest.raises(ConsolidationError, match=message):
            store.stage("ana", "helper", "memory", save, config={}, metrics={})
    kind_dir = store.root / "ana" / "helper" / "memory"
    assert sorted(p.name for p in kind_dir.iterdir()) == []


# -- the lock ----------------------------------------------------------------------------
def test_lock_refuses_a_second_holder(store: AdapterStore, journal: Journal) -> None:
    other = AdapterStore(store.root, journal)  # another agent object on the same home
    add(store)
    with store.lock("ana", "helper"):
        busy = pytest.raises(ConsolidationBusyError, match=rf"ana/helper .*pid {os.getpid()}")
        with busy, other.lock("ana", "helper"):
            pass
        with pytest.raises(ConsolidationBusyError):
            other.cleanup("ana", "helper")  # mutations take the lock themselves
        with other.lock("ben", "helper"):  # other namespaces are free
            pass
        with store.lock("ana", "helper"):  # re-entrant for the holding thread
            add(store)
        errors: list[BaseException] = []

        def elsewhere() -> None:
            try:
                with store.lock("ana", "helper"):
                    pass
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert len(errors) == 1 and isinstance(errors[0], ConsolidationBusyError)
    with other.lock("ana", "helper"):
        pass


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from seal_agent.adapters import AdapterStore
    from seal_agent.journal import Journal
    store = AdapterStore(sys.argv[1], Journal(sys.argv[2]))
    with store.lock("ana", "helper"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def spawn(script: str, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def wait_for(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    got = proc.stdout.readline().strip()
    if got != line:
        proc.kill()
        raise AssertionError(f"child said {got!r}, expected {line!r}: {proc.communicate()[1]}")


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    proc.communicate()


def until_free(store: AdapterStore, user: str = "ana", agent: str = "helper") -> None:
    """Wait until a killed holder's lock is gone.

    ``flock`` goes with the process, before ``wait`` returns.  An advisory
    lock goes when the server sees the dead client's socket close, a few
    milliseconds later: waited for here (up to 10 s), never assumed.
    """
    deadline = time.monotonic() + 10
    while store.journal.dialect == "postgresql":
        try:
            with store.lock(user, agent):
                return
        except ConsolidationBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_lock_is_free_once_its_holder_is_killed(
    store: AdapterStore, journal_target: str | Path
) -> None:
    proc = spawn(HOLD_LOCK, store.root, journal_target)
    try:
        wait_for(proc, "locked")
        with pytest.raises(ConsolidationBusyError, match=f"pid {proc.pid}"), store.lock(
            "ana", "helper"
        ):
            pass
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    until_free(store)
    with store.lock("ana", "helper"):
        add(store)


# -- verify and loadable -----------------------------------------------------------------
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: flip_byte(p / WEIGHTS), rf"failed its checksum \({WEIGHTS}\)"),
        (lambda p: flip_byte(p / "extra" / "notes.txt", 0), r"failed its checksum \(extra/notes.txt\)"),
        (lambda p: (p / WEIGHTS).unlink(), rf"is missing a file \({WEIGHTS}\)"),
        (lambda p: (p / "adapter_config.json").write_text("{}"), "failed its size check"),
        (lambda p: (p / MANIFEST).unlink(), rf"is missing a file \({MANIFEST}\)"),
        (lambda p: flip_byte(p / MANIFEST, 5), rf"failed its checksum \({MANIFEST}\)"),
        (lambda p: shutil.rmtree(p), "is missing its folder"),
    ],
    ids=["flipped-byte", "nested-file", "missing-file", "resized", "no-manifest",
         "edited-manifest", "no-folder"],
)
def test_verify_catches_damage(
    store: AdapterStore, damage: Callable[[Path], None], message: str
) -> None:
    version = add(store)
    store.verify(version)
    damage(version.path)
    with pytest.raises(CorruptAdapterError, match=rf"memory adapter v0001 of ana/helper {message}"):
        store.verify(version)


def test_verify_refuses_another_versions_folder(store: AdapterStore) -> None:
    first, second = add(store), add(store, seed=1)
    shutil.rmtree(first.path)
    shutil.copytree(second.path, first.path)
    bogus = first.model_copy(update={"manifest_sha256": second.manifest_sha256})
    with pytest.raises(CorruptAdapterError, match="another version"):
        store.verify(bogus)


def test_loadable_falls_back_to_the_newest_good_version(store: AdapterStore) -> None:
    assert store.loadable("ana", "helper") == (None, [])
    v1, v2, v3 = (add(store, seed=s) for s in range(3))
    assert store.loadable("ana", "helper") == (v3, [])

    flip_byte(v3.path / WEIGHTS)
    version, warnings = store.loadable("ana", "helper")
    assert version == v2.model_copy(update={"active": False})
    assert warnings == [f"v0003 failed its checksum ({WEIGHTS}); using v0002"]
    assert store.active("ana", "helper") == v3  # the pointer is left alone

    (v2.path / "adapter_config.json").unlink()
    version, warnings = store.loadable("ana", "helper")
    assert version is not None and version.id == v1.id
    assert warnings == [
        f"v0003 failed its checksum ({WEIGHTS})",
        "v0002 is missing a file (adapter_config.json); using v0001",
    ]

    flip_byte(v1.path / WEIGHTS)
    version, warnings = store.loadable("ana", "helper")
    assert version is None
    assert warnings[-1].endswith("no earlier memory adapter verifies, running without one")


def test_loadable_never_moves_forward_past_the_active_version(store: AdapterStore) -> None:
    v1 = add(store)
    add(store, seed=1)
    store.rollback("ana", "helper")
    flip_byte(v1.path / WEIGHTS)
    version, warnings = store.loadable("ana", "helper")
    assert version is None and "v0001 failed its checksum" in warnings[0]


# -- rollback and prune --------------------------------------------------------------------
def test_rollback(store: AdapterStore) -> None:
    with pytest.raises(AdapterNotFoundError, match="no active memory adapter"):
        store.rollback("ana", "helper")
    v1, v2, v3 = (add(store, seed=s) for s in range(3))

    back = store.rollback("ana", "helper")
    assert back.id == v2.id and back.active
    assert store.active("ana", "helper") == back
    assert store.rollback("ana", "helper").id == v1.id
    with pytest.raises(AdapterNotFoundError, match="oldest"):
        store.rollback("ana", "helper")
    assert store.rollback("ana", "helper", to_version=3).id == v3.id  # forward again
    with pytest.raises(AdapterNotFoundError, match=r"no memory adapter v0009 \(have: v0003"):
        store.rollback("ana", "helper", to_version=9)

    flip_byte(v2.path / WEIGHTS)
    with pytest.raises(CorruptAdapterError, match="v0002"):
        store.rollback("ana", "helper")
    assert active(store).id == v3.id  # unchanged by the refused rollback


def test_prune_keeps_the_newest_and_the_active_one(store: AdapterStore, journal: Journal) -> None:
    versions = [add(store, seed=s) for s in range(5)]
    store.rollback("ana", "helper", to_version=2)
    store.cleanup("ana", "helper")

    removed = store.prune("ana", "helper", keep=2)
    assert sorted(v.name for v in removed) == ["v0001", "v0003"]
    assert [(v.name, v.active) for v in store.list("ana", "helper")] == [
        ("v0005", False), ("v0004", False), ("v0002", True)
    ]
    assert not versions[0].path.exists() and not versions[2].path.exists()
    assert {r["version"] for r in rows(journal, "adapter_versions")} == {2, 4, 5}
    assert store.cleanup("ana", "helper") == []  # prune left nothing behind

    removed = store.prune("ana", "helper", keep=1)
    assert [v.name for v in removed] == ["v0004"]
    assert store.prune("ana", "helper", keep=1) == []
    with pytest.raises(ConfigError, match="keep"):
        store.prune("ana", "helper", keep=0)

    assert add(store).name == "v0006"  # numbers never go back down
    store.verify(active(store))


def test_version_numbers_skip_folders_the_journal_does_not_know(store: AdapterStore) -> None:
    add(store)
    store.stage("ana", "helper", "memory", writer(1), config={}, metrics={})  # v0002, never promoted
    assert add(store, seed=2).name == "v0003"
    assert store.cleanup("ana", "helper") == [store.root / "ana" / "helper" / "memory" / "v0002"]
    assert add(store, seed=3).name == "v0004"


# -- failures while writing ---------------------------------------------------------------
def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != ".lock")


@contextlib.contextmanager
def _unwritable(folder: Path) -> Iterator[None]:
    """The folder cannot be written to: chmod for a user; for root (whom chmod does not
    stop) the file system's immutable flag, which stops root too."""
    folder.chmod(0o500)
    immutable = False
    try:
        if os.access(folder, os.W_OK):
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"running as root and chattr +i failed ({done.stderr.strip()}): "
                            "nothing here can make the folder unwritable")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_unwritable_adapters_dir_raises_consolidation_error(store: AdapterStore) -> None:
    add(store)
    before = _tree(store.root)
    # the folder of ana's versions, then the adapters dir itself (a new user "cy")
    for locked_dir, user in ((store.root / "ana" / "helper" / "memory", "ana"), (store.root, "cy")):
        with _unwritable(locked_dir):
            with pytest.raises(ConsolidationError, match="Permission denied|Operation not permitted") as info:
                store.stage(user, "helper", "memory", writer(1), config={}, metrics={})
            assert isinstance(info.value.__cause__, PermissionError)
        assert _tree(store.root) == before
    assert active(store).name == "v0001"
    assert add(store, seed=1).name == "v0002"


def test_a_file_in_the_way_raises_consolidation_error(store: AdapterStore) -> None:
    (store.root / "ana").mkdir(parents=True)
    (store.root / "ana" / "helper").write_text("not a folder")
    # SQLite: the flock file cannot be made; PostgreSQL: the lock is fine, the folder is not.
    cannot = ("cannot create the consolidation lock" if store.journal.dialect == "sqlite"
              else "could not write memory adapter v0001")
    with pytest.raises(ConsolidationError, match=cannot):
        store.stage("ana", "helper", "memory", writer(), config={}, metrics={})
    (store.root / "ana" / "helper").unlink()
    (store.root / "ana" / "helper").mkdir()
    (store.root / "ana" / "helper" / "memory").write_text("not a folder")
    with pytest.raises(ConsolidationError, match="could not write memory adapter v0001") as info:
        store.stage("ana", "helper", "memory", writer(), config={}, metrics={})
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize(
    "error, match",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "could not write .*No space left"),
        (ValueError("tensor is not contiguous"), "saving memory adapter v0002 .*not contiguous"),
    ],
)
def test_a_failing_save_leaves_nothing_half_written(
    store: AdapterStore, error: Exception, match: str
) -> None:
    add(store)
    before = _tree(store.root)

    def save(folder: Path) -> None:
        (folder / WEIGHTS).write_bytes(b"\0" * 1000)  # partly written
        raise error

    with pytest.raises(ConsolidationError, match=match) as info:
        store.stage("ana", "helper", "memory", save, config={}, metrics={})
    assert info.value.__cause__ is error
    assert _tree(store.root) == before
    assert add(store, seed=1).name == "v0002"


def test_keyboard_interrupt_is_not_wrapped(store: AdapterStore) -> None:
    def save(folder: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.stage("ana", "helper", "memory", save, config={}, metrics={})
    assert _tree(store.root) == ["ana", "ana/helper", "ana/helper/memory"]


# -- namespaces -------------------------------------------------------------------------------
def test_namespaces_and_kinds_are_separate(store: AdapterStore) -> None:
    ana = [add(store, "ana"), add(store, "ana", seed=1)]
    ben = add(store, "ben")
    policy = add(store, "ana", kind="policy")
    other_agent = add(store, "ana", "coach")
    assert (ben.name, policy.name, other_agent.name) == ("v0001", "v0001", "v0001")
    assert {v.id for v in store.list("ana", "helper")} == {v.id for v in ana}
    assert [v.id for v in store.list("ben", "helper")] == [ben.id]
    assert [v.id for v in store.list("ana", "helper", "policy")] == [policy.id]
    assert store.active("ben", "helper") == ben
    assert active(store).id == ana[1].id
    assert store.active("cy", "helper") is None
    assert store.namespaces() == [("ana", "coach"), ("ana", "helper"), ("ben", "helper")]

    store.rollback("ana", "helper")
    assert store.active("ben", "helper") == ben
    assert store.prune("ana", "helper", keep=1) == []  # v0001 is active; v0002 is newest
    flip_byte(ben.path / WEIGHTS)
    assert store.loadable("ana", "helper") == (store.active("ana", "helper"), [])
    assert store.loadable("ben", "helper")[0] is None


def test_a_moved_home_still_verifies(store: AdapterStore, journal: Journal, tmp_path: Path) -> None:
    version = add(store)
    moved = tmp_path / "elsewhere"
    shutil.move(store.root, moved)
    again = AdapterStore(moved, journal).active("ana", "helper")
    assert again is not None and again.path == moved / "ana" / "helper" / "memory" / "v0001"
    AdapterStore(moved, journal).verify(again)
    assert again.id == version.id


# -- runs ---------------------------------------------------------------------------------------
def test_runs(store: AdapterStore, journal: Journal) -> None:
    assert runs(store).last_run() is None
    first = runs(store).start_run("ana", "helper", {"k": 3})
    second = runs(store).start_run("ben", "helper", {"k": 1})
    assert last_run(store)["id"] == second
    assert last_run(store, "ana")["id"] == first
    assert runs(store).last_run("ana", "coach") is None

    runs(store).finish_run(None, first, RunStatus.REJECTED, {"gain": -0.2})
    run = last_run(store, "ana", "helper")
    assert run["status"] == "rejected" and run["metrics"]["gain"] == -0.2
    assert run["metrics"]["process"]["host"] == socket.gethostname()
    with pytest.raises(ConfigError, match="cannot finish a run as 'running'"):
        runs(store).finish_run(None, second, "running")
    with pytest.raises(ConfigError, match="'done'"):
        runs(store).finish_run(None, second, "done")
    with pytest.raises(ConsolidationError, match="no consolidation run"):
        runs(store).finish_run(None, "run_missing", "failed")


def test_mark_abandoned_runs(
    store: AdapterStore, journal: Journal, journal_target: str | Path
) -> None:
    child = spawn(
        "import sys\n"
        "from seal_agent.journal import Journal\n"
        "from seal_agent.runs import RunStore\n"
        "print(RunStore(Journal(sys.argv[2])).start_run('ana', 'helper', {}), flush=True)\n"
        "import time; time.sleep(60)\n",
        store.root, journal_target,
    )
    try:
        assert child.stdout is not None
        dead = child.stdout.readline().strip()
        assert runs(store).mark_abandoned_runs() == []  # still alive
        kill(child)
    finally:
        if child.poll() is None:
            child.kill()
    alive = runs(store).start_run("ana", "helper", {})
    reused = runs(store).start_run("ana", "helper", {})
    remote = runs(store).start_run("ana", "helper", {})
    unknown = runs(store).start_run("ana", "helper", {})
    with journal.transaction() as conn:
        def process(run_id: str, **change: Any) -> None:
            metrics = json.loads(
                conn.execute("SELECT metrics FROM consolidation_runs WHERE id = ?", (run_id,))
                .fetchone()[0]
            )
            metrics["process"] = {**metrics["process"], **change} if change else None
            conn.execute("UPDATE consolidation_runs SET metrics = ? WHERE id = ?",
                         (json.dumps(metrics), run_id))

        process(reused, start=1)  # our pid, but a process that started at another time
        process(remote, host="another-machine", pid=999_999_999)
        process(unknown)  # no process record at all
    assert sorted(runs(store).mark_abandoned_runs()) == sorted([dead, reused])
    status = {r["id"]: r["status"] for r in rows(journal, "consolidation_runs")}
    assert status == {dead: "abandoned", reused: "abandoned", alive: "running",
                      remote: "running", unknown: "running"}
    assert runs(store).mark_abandoned_runs() == []


# -- crashes inside stage and promote ------------------------------------------------------------
CRASH = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from seal_agent.adapters import AdapterStore
    from seal_agent.journal import Journal
    from seal_agent.runs import RunStore

    root, db, point = sys.argv[1:4]
    store = AdapterStore(root, Journal(db))
    runs = RunStore(store.journal)

    def stop(where):
        print(where, flush=True)
        time.sleep(60)

    def save(folder):
        (folder / "adapter_model.safetensors").write_bytes(b"x" * 4096)
        if point == "save":
            stop("save")
        (folder / "adapter_config.json").write_text("{}")

    if point == "rename":  # the manifest is written and fsynced, the rename not done
        real_rename = os.rename
        def slow_rename(src, dst):
            stop("rename")
        os.rename = slow_rename

    def also(conn):
        runs.finish_run(conn, run, "promoted", {})
        conn.execute("UPDATE adapter_versions SET metrics = '{}'")
        stop("promote")  # inside the open transaction

    with store.lock("ana", "helper"):
        run = runs.start_run("ana", "helper", {"pid": os.getpid()})
        parent = store.active("ana", "helper")
        staged = store.stage("ana", "helper", "memory", save, config={}, metrics={},
                             run_id=run, parent_id=parent.id)
        if point == "staged":
            stop("staged")
        store.promote(staged, also=also)
    """
)


LEFTOVER = {"save": ".tmp-v0002-", "rename": ".tmp-v0002-", "staged": "v0002", "promote": "v0002"}


def test_sigkill_inside_stage_or_promote_keeps_the_old_version(
    tmp_path: Path, journal_at: Callable[[Path], str | Path]
) -> None:
    """One child per crash point, each on its own home, killed side by side (saves seconds)."""
    homes = {point: tmp_path / point for point in LEFTOVER}
    targets = {point: journal_at(home) for point, home in homes.items()}
    journals = {point: Journal(targets[point]) for point in LEFTOVER}
    stores = {point: AdapterStore(homes[point] / "adapters", journals[point]) for point in LEFTOVER}
    old = {point: add(store) for point, store in stores.items()}
    tables = ("adapter_versions", "active_adapters")
    before = {point: {t: rows(journals[point], t) for t in tables} for point in LEFTOVER}
    procs = {
        point: spawn(CRASH, stores[point].root, targets[point], point)
        for point in LEFTOVER
    }
    try:
        for point, proc in procs.items():
            wait_for(proc, point)
        for proc in procs.values():
            kill(proc)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()

    for point, store in stores.items():
        journal = journals[point]
        if journal.dialect == "sqlite":
            assert journal.execute("PRAGMA integrity_check")[0][0] == "ok", point
        assert {t: rows(journal, t) for t in tables} == before[point], point
        assert store.active("ana", "helper") == old[point], point
        assert store.loadable("ana", "helper") == (old[point], []), point
        run = last_run(store, "ana", "helper")
        assert run["status"] == "running", point
        assert runs(store).mark_abandoned_runs() == [run["id"]], point

        kind_dir = old[point].path.parent
        left = [p for p in kind_dir.iterdir() if p.name.startswith(LEFTOVER[point])]
        assert len(left) == 1, point
        assert store.cleanup("ana", "helper") == left, point
        assert sorted(p.name for p in kind_dir.iterdir()) == ["v0001"], point

        until_free(store)
        with store.lock("ana", "helper"):  # the dead process's lock is gone
            new = add(store, seed=1, parent_id=old[point].id)
        assert new.name == "v0002" and store.active("ana", "helper") == new, point
        store.verify(new)
        journal.close()


# -- forget ----------------------------------------------------------------------------
def test_forget_namespace_erases_versions_and_runs_of_that_pair_only(store: AdapterStore) -> None:
    from seal_agent.types import InteractionKind, Message, Namespace

    journal = store.journal
    for user in ("ana", "bob"):
        ns = Namespace(user_id=user, agent_id="helper", session_id="s")
        journal.log_interaction(ns, InteractionKind.CHAT, [Message(role="user", content="I like tea.")])
        add(store, user, run_id=runs(store).start_run(user, "helper", {}))
    journal.forget_namespace("ana", "helper")
    # the owners' erasers ran inside the journal's forget: no row of ana's is left
    for table in ("adapter_versions", "active_adapters", "consolidation_runs"):
        assert {r["user_id"] for r in rows(journal, table)} == {"bob"}, table
    assert store.active("ana", "helper") is None and runs(store).last_run("ana", "helper") is None
    assert active(store, "bob").name == "v0001"
    assert last_run(store, "bob", "helper")["user_id"] == "bob"
