"""One adapter version's folder on disk: written so a crash never half-writes it, sealed by
its manifest, and checked against that manifest before anyone loads it.

:func:`write_version` builds the folder under a temp name, fsyncs every file
and folder, writes ``manifest.json`` (the checksum of every file) last, and
renames the folder into place; a crash leaves a temp folder or a complete
one, never a half-written folder under a version's name.
:func:`folder_problem` is the check.  Which folders count, and which one is
active, is the journal's business (adapters.py); this module knows files only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seal_agent.errors import ConsolidationError

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "TMP_PREFIX",
    "dirname",
    "folder_problem",
    "fsync_dir",
    "hash_file",
    "makedirs",
    "remove_leftovers",
    "remove_pruned",
    "version_numbers",
    "write_version",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1  # bump when the manifest's shape changes
TMP_PREFIX = ".tmp-"  # a folder being written; whatever carries it after a crash is debris
log = logging.getLogger("seal_agent.adapters")  # the logger these messages always had

_VERSION_DIR = re.compile(r"^v(\d{4,})$")
_CHUNK = 1 << 20


def write_version(
    kind_dir: Path,
    name: str,
    save: Callable[[Path], None],
    describe: Callable[[], dict[str, Any]],
    *,
    label: str,
) -> tuple[Path, str, dict[str, Any]]:
    """Write ``kind_dir/name`` durably and atomically: its path, its manifest's sha256, ``describe()``.

    ``save(folder)`` writes the adapter files.  ``describe()`` is called once
    they are written (so a ``created_at`` it stamps follows them) and gives the
    manifest's fields; the format, the seal-agent version and every file's
    checksum are added.  The final rename fails if ``name`` exists: a version
    is never overwritten.  On any error what was written is removed and a
    ConsolidationError raised (``from`` the original) that calls it ``label``.
    """
    try:
        return _write_version(kind_dir, name, save, describe)
    except ConsolidationError:
        raise
    except OSError as exc:
        raise ConsolidationError(f"could not write {label} under {kind_dir}: {exc}") from exc
    except Exception as exc:
        raise ConsolidationError(f"saving {label} failed: {exc!r}") from exc


def dirname(version: int) -> str:
    """A version's folder name, ``v0003``: what messages and the CLI show."""
    return f"v{version:04d}"


def version_numbers(kind_dir: Path) -> set[int]:
    """The numbers of the version folders on disk, whether the journal knows them or not."""
    if not kind_dir.is_dir():
        return set()
    return {int(m[1]) for entry in kind_dir.iterdir() if (m := _VERSION_DIR.match(entry.name))}


def remove_leftovers(kind_dir: Path, known: set[int]) -> list[Path]:
    """Remove temp folders and the version folders whose number is not ``known``; what went.

    The caller holds the namespace lock, so no folder here is still being written.
    """
    removed: list[Path] = []
    for entry in sorted(kind_dir.iterdir()):
        match = _VERSION_DIR.match(entry.name)
        orphan = match is not None and int(match[1]) not in known
        if not (orphan or entry.name.startswith(TMP_PREFIX)):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise ConsolidationError(f"could not remove leftover {entry}: {exc}") from exc
        removed.append(entry)
    if removed:
        with contextlib.suppress(OSError):
            fsync_dir(kind_dir)
    return removed


def folder_problem(folder: Path, manifest_sha256: str, version_id: str) -> str | None:
    """What is wrong with a version's files, as the end of a sentence; None if nothing.

    ``manifest_sha256`` is the checksum the journal trusts; once the manifest
    matches it, the manifest's own checksums are trusted for every file.
    """
    if not folder.is_dir():
        return "is missing its folder"
    try:
        data = (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        return f"is missing a file ({MANIFEST})"
    except OSError as exc:
        return f"could not be read ({MANIFEST}: {exc.strerror or exc})"
    if hashlib.sha256(data).hexdigest() != manifest_sha256:
        return f"failed its checksum ({MANIFEST})"
    manifest = json.loads(data)  # its checksum matched the journal's: trusted from here
    if manifest.get("id") != version_id:
        return f"holds another version's files ({MANIFEST})"
    for rel, expected in sorted(manifest["files"].items()):
        path = folder / rel
        try:
            if not path.is_file() or path.is_symlink():
                return f"is missing a file ({rel})"
            digest, size = hash_file(path)
        except OSError as exc:
            return f"could not be read ({rel}: {exc.strerror or exc})"
        if size != expected["size"]:
            return f"failed its size check ({rel}: {size} bytes, expected {expected['size']})"
        if digest != expected["sha256"]:
            return f"failed its checksum ({rel})"
    return None


def hash_file(path: Path, *, fsync: bool = False) -> tuple[str, int]:
    """sha256 and size of a file, streamed; optionally flushed to disk on the way."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if fsync:
            os.fsync(fh.fileno())
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (new names, renames, removals) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: Path) -> None:
    """mkdir -p, fsyncing the parent of every folder it creates (so the path survives a crash)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # another process made it
        fsync_dir(folder.parent)


def remove_pruned(folders: list[Path], kind_dir: Path) -> None:
    """Remove pruned versions' folders; one that will not go is logged and left to cleanup."""
    for folder in folders:
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:  # the journal is consistent; cleanup retries
            log.warning("pruned %s but could not remove %s: %s", folder.name, folder, exc)
    if folders:
        with contextlib.suppress(OSError):
            fsync_dir(kind_dir)


def _write_version(
    kind_dir: Path, name: str, save: Callable[[Path], None], describe: Callable[[], dict[str, Any]]
) -> tuple[Path, str, dict[str, Any]]:
    final = kind_dir / name
    tmp: Path | None = None
    renamed = False
    try:
        makedirs(kind_dir)
        tmp = kind_dir / f"{TMP_PREFIX}{name}-{secrets.token_hex(4)}"
        tmp.mkdir()
        save(tmp)
        files = _seal_files(tmp)  # hashes and fsyncs what save wrote
        fields = describe()
        manifest = {**fields, "format": MANIFEST_FORMAT,
                    "seal_agent_version": _seal_agent_version(), "files": files}
        data = json.dumps(
            manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str
        ).encode()
        _write_durable(tmp / MANIFEST, data)
        fsync_dir(tmp)
        os.rename(tmp, final)  # fails if `final` exists: never overwrite a version
        renamed = True
        fsync_dir(kind_dir)  # the rename itself survives power loss
    except BaseException:
        if renamed:
            shutil.rmtree(final, ignore_errors=True)
        elif tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, hashlib.sha256(data).hexdigest(), fields


def _seal_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Checksum and fsync everything ``save`` wrote; refuse what a manifest cannot vouch for."""
    files: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise ConsolidationError(f"save wrote a symbolic link ({rel}); write real files")
            if name in dirnames:
                continue
            if not path.is_file():
                raise ConsolidationError(f"save wrote something that is not a file ({rel})")
            if rel == MANIFEST:
                raise ConsolidationError(f"save wrote {MANIFEST}; that name belongs to the store")
            digest, size = hash_file(path, fsync=True)
            files[rel] = {"sha256": digest, "size": size}
        if here != folder:
            fsync_dir(here)
    if not files:
        raise ConsolidationError("save wrote no files: nothing to version")
    return files


def _write_durable(path: Path, data: bytes) -> None:
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _seal_agent_version() -> str:
    from seal_agent import __version__  # late: the package may import this module

    return __version__
