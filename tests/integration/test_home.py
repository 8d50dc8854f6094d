"""A missing, corrupt or foreign memory home gets a typed error and is left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from seal_agent import (
    CorruptHomeError,
    HomeError,
    ModelNotFoundError,
    SchemaVersionError,
    SealAgent,
    load_config,
)


def test_missing_home_is_created(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "new-home"
    with SealAgent(load_config(home=home)) as agent:
        assert agent.status()["counts"]["interactions"] == 0
    assert (home / "journal.sqlite3").is_file()


def test_home_that_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    with pytest.raises(CorruptHomeError, match="not a directory"):
        SealAgent(load_config(home=home))
    assert home.read_text() == "not a directory"


def test_corrupt_journal_is_refused_and_untouched(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    garbage = b"this is not sqlite" * 100
    (home / "journal.sqlite3").write_bytes(garbage)
    with pytest.raises(CorruptHomeError, match="not a readable SQLite database") as err:
        SealAgent(load_config(home=home))
    assert isinstance(err.value, HomeError) and isinstance(err.value, OSError)
    assert (home / "journal.sqlite3").read_bytes() == garbage


def test_journal_from_a_newer_version(tmp_path: Path) -> None:
    import sqlite3

    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(home / "journal.sqlite3") as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaVersionError, match="upgrade seal-agent"):
        SealAgent(load_config(home=home))


@pytest.mark.parametrize("name", ["./models/nope", "/definitely/not/here.gguf", "models/a/b"])
def test_model_path_that_does_not_exist(tmp_path: Path, name: str) -> None:
    agent = SealAgent(load_config(home=tmp_path / "h", model={"name": name}))
    try:
        with pytest.raises(ModelNotFoundError, match="does not exist"):
            _ = agent.lm
    finally:
        agent.close()
