"""One consolidation per namespace at a time, across threads, processes and hosts.

A :class:`NamespaceLock` is ``flock`` on the namespace's ``.lock`` file when
the journal is SQLite, a session-level PostgreSQL advisory lock when it is
PostgreSQL (``flock`` is unreliable across hosts on a shared folder).  Either
way the lock dies with its holder: the kernel drops a dead process's
``flock``, the server a dead session's advisory lock, so a killed
consolidation never leaves a namespace stuck.  Both re-enter for the thread
that holds them and refuse everyone else at once; :class:`NamespaceLocks`
turns a refusal into ConsolidationBusyError naming the holder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import filelock

from seal_agent.adapter_files import makedirs
from seal_agent.errors import ConsolidationBusyError, ConsolidationError
from seal_agent.journal import Journal, advisory_key
from seal_agent.types import check_id

__all__ = ["AdvisoryNamespaceLock", "FileNamespaceLock", "NamespaceLock", "NamespaceLocks"]

log = logging.getLogger("seal_agent.adapters")  # the logger these messages always had

LOCK_FILE = ".lock"


class NamespaceLocks:
    """The namespace locks of one adapter root: one lock object per namespace.

    One object per namespace, kept here, because each counts its holding
    thread's re-entries; a second ``NamespaceLocks`` (another store) is
    refused like another process.
    """

    def __init__(self, root: Path, journal: Journal) -> None:
        self.root = root
        self.journal = journal
        self._locks: dict[tuple[str, str], NamespaceLock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, user_id: str, agent_id: str) -> Iterator[None]:
        """Hold the namespace's lock, or raise ConsolidationBusyError (never queue)."""
        key = (check_id(user_id, "user_id"), check_id(agent_id, "agent_id"))
        ns_lock = self._lock(*key)
        if not ns_lock.try_acquire():
            raise ConsolidationBusyError(
                f"namespace {key[0]}/{key[1]} is being consolidated by {ns_lock.holder()}; "
                "try again when it finishes"
            )
        try:
            yield
        finally:
            ns_lock.release()

    def _lock(self, user_id: str, agent_id: str) -> NamespaceLock:
        with self._guard:
            found = self._locks.get((user_id, agent_id))
            if found is None:
                if self.journal.dialect == "postgresql":
                    found = AdvisoryNamespaceLock(self.journal, user_id, agent_id)
                else:
                    found = FileNamespaceLock(self.root / user_id / agent_id / LOCK_FILE, user_id,
                                              agent_id)
                self._locks[(user_id, agent_id)] = found
            return found


class NamespaceLock(Protocol):
    """One namespace's consolidation lock: the one interface both engines' locks share.

    ``try_acquire`` never waits: True when this thread now holds the lock
    (again, if it held it already: re-entrant per thread), False when another
    thread, store or process does.  Failing to reach the lock at all raises
    ConsolidationError.  ``holder`` says who has it, for the busy message.
    """

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...

    def holder(self) -> str: ...


class FileNamespaceLock:
    """``flock`` on ``<adapters>/<user>/<agent>/.lock`` (the SQLite journal's lock)."""

    def __init__(self, path: Path, user_id: str, agent_id: str) -> None:
        self.path = path
        self._ns = f"{user_id}/{agent_id}"
        self._lock: filelock.BaseFileLock | None = None

    def _file_lock(self) -> filelock.BaseFileLock:
        if self._lock is None:
            try:
                makedirs(self.path.parent)
            except OSError as exc:
                raise ConsolidationError(
                    f"cannot create the consolidation lock {self.path} of {self._ns}: {exc}"
                ) from exc
            # thread_local (the default): re-entrant per thread, so another thread of
            # this process is refused like another process.  blocking=False: refuse
            # at once.  The holder's pid is written for the busy message only.
            self._lock = filelock.FileLock(
                self.path, mode=0o644, blocking=False, preserve_lock_file=True,
                on_acquired=_write_pid,
            )
        return self._lock

    def try_acquire(self) -> bool:
        file_lock = self._file_lock()
        try:
            file_lock.acquire()
        except filelock.Timeout:
            return False
        except OSError as exc:
            if not self.path.is_file():
                raise ConsolidationError(
                    f"cannot create the consolidation lock {self.path} of {self._ns}: {exc}"
                ) from exc
            raise ConsolidationError(f"cannot lock {self.path}: {exc}") from exc
        return True

    def release(self) -> None:
        self._file_lock().release()

    def holder(self) -> str:
        """Who holds the lock, as far as its file says."""
        try:
            pid = int(self.path.read_text()[:32].strip())
        except (OSError, ValueError):
            return "another process"
        if pid == os.getpid():
            return f"another thread or store of this process (pid {pid})"
        return f"another process (pid {pid})"


class AdvisoryNamespaceLock:
    """A session-level PostgreSQL advisory lock (the PostgreSQL journal's lock).

    Each held lock has its own database session, opened at acquire and
    closed at release: the server frees the lock when the session ends, so a
    killed process (on any host) frees it too.  Advisory locks re-enter per
    session, not per thread, so the holding thread is tracked here and any
    other thread is refused, as ``flock`` refuses it.
    """

    def __init__(self, journal: Journal, user_id: str, agent_id: str) -> None:
        self.journal = journal
        self._ns = f"{user_id}/{agent_id}"
        self.key = advisory_key(f"seal-agent namespace {user_id}/{agent_id}")
        self._guard = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._session: Any = None

    def try_acquire(self) -> bool:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is not None:
                return False
            session = self.journal.connect_session()
            try:
                got = session.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
            except self.journal.errors as exc:
                session.close()
                raise ConsolidationError(
                    f"cannot take the consolidation lock of {self._ns} on "
                    f"{self.journal.location}: {exc}"
                ) from exc
            if not got:
                session.close()
                return False
            self._session, self._owner, self._depth = session, me, 1
            return True

    def release(self) -> None:
        with self._guard:
            self._depth -= 1
            if self._depth > 0:
                return
            session, self._session, self._owner, self._depth = self._session, None, None, 0
        try:
            session.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except self.journal.errors as exc:  # the session is closed next: the lock goes anyway
            log.warning("could not unlock %s explicitly: %s", self._ns, exc)
        finally:
            session.close()

    def holder(self) -> str:
        """The holder's session name (``seal-agent pid N on HOST``), from pg_stat_activity."""
        if self._owner is not None and self._owner != threading.get_ident():
            return f"another thread of this process (pid {os.getpid()})"
        try:
            session = self.journal.connect_session()
        except Exception:  # only the message depends on it
            return "another process"
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        try:
            row = session.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
                (unsigned >> 32, unsigned & 0xFFFFFFFF),
            ).fetchone()
        except self.journal.errors:
            row = None
        finally:
            session.close()
        name = row[0] if row is not None else ""
        return f"another process ({name.removeprefix('seal-agent ')})" if name else "another process"


def _write_pid(fd: int) -> None:
    """Only for the busy message of whoever comes next: the flock is the lock."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
