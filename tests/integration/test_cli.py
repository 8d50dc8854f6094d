"""The command line, through typer's CliRunner (in process) and as a real
subprocess where start-up cost is what is being checked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seal_agent.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(home: Path, *args: str, input: str | None = None):
    return runner.invoke(app, [*args, "--home", str(home)], input=input, catch_exceptions=False)


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from seal_agent.cli import main\n"
        "sys.argv = ['seal-agent', '--help']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'sentence_transformers', 'numpy')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=60)  # a hang guard: --help imports no heavy library
    assert done.returncode == 0, done.stderr
    assert "remember" in done.stdout and "memories" in done.stdout


def test_status_on_a_new_home_loads_no_model(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from seal_agent.cli import main\n"
        f"sys.argv = ['seal-agent', 'status', '--home', {str(tmp_path / 'h')!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert re.search(r"interactions\W+0\b", done.stdout), done.stdout  # a new home: none


def test_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    home = tmp_path / "h"
    result = run(home, "chat", "--message", "   ")
    assert result.exit_code == 1
    assert "EmptyInputError" in result.output
    assert "Traceback" not in result.output
    result = run(home, "memories", "forget", "--all", "--yes", "--user", "nobody")
    assert result.exit_code == 1
    assert "NamespaceNotFoundError" in result.output
    result = run(home, "memories", "forget", "--id", "x", "--all", "--yes")
    assert result.exit_code == 1 and "exactly one" in result.output
    result = run(home, "remember", "--user", "bad user", "hello")
    assert result.exit_code == 1 and "InvalidNamespaceError" in result.output
    result = run(home, "memories", "list", "--status", "sideways")
    assert result.exit_code == 1 and "sideways" in result.output


def test_bad_config_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[buffer]\npath = '/tmp/x'\nhost = 'localhost'\n")
    result = runner.invoke(app, ["status", "--config", str(bad)])
    assert result.exit_code == 1
    assert "ConfigError" in result.output and "exclude each other" in result.output


def test_missing_model_path_is_a_typed_error(tmp_path: Path) -> None:
    import os

    os.environ["SEAL_AGENT_MODEL__NAME"] = str(tmp_path / "no-such-model")
    try:
        result = run(tmp_path / "h", "chat", "--message", "hello")
    finally:
        del os.environ["SEAL_AGENT_MODEL__NAME"]
    assert result.exit_code == 1
    assert "ModelNotFoundError" in result.output and "does not exist" in result.output


@pytest.mark.slow
def test_remember_search_list_forget_round_trip(tmp_path: Path, lm) -> None:
    home = tmp_path / "h"
    result = run(
        home, "remember", "--user", "lee", "My boat is called Marigold.",
        "--probe", "What is my boat called?|Marigold",
    )
    assert result.exit_code == 0, result.output
    assert "self-edits" in result.output

    result = run(home, "memories", "search", "name of my boat", "--user", "lee")
    assert result.exit_code == 0 and "Marigold" in result.output
    result = run(home, "memories", "search", "name of my boat", "--user", "someone-else")
    assert result.exit_code == 0 and "Marigold" not in result.output

    result = run(home, "memories", "list", "--user", "lee", "--format", "statement")
    assert result.exit_code == 0 and "Marigold" in result.output
    memory_id = next(w for w in result.output.split() if w.startswith("mem_"))

    result = run(home, "status", "--user", "lee")
    assert result.exit_code == 0 and "probes" in result.output

    result = run(home, "chat", "--user", "lee", "--session", "new", "--no-retrieval",
                 "--derive", "off", "--message", "What is my boat called?")
    assert result.exit_code == 0 and "agent>" in result.output
    assert "memory " not in result.output  # retrieval off: no memory shown

    result = run(home, "memories", "forget", "--user", "lee", "--all", "--yes")
    assert result.exit_code == 0 and "forgot" in result.output
    result = run(home, "memories", "search", "name of my boat", "--user", "lee")
    assert "Marigold" not in result.output
    assert memory_id


@pytest.mark.slow
def test_remember_from_file_rejects_invalid_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"caf\xe9 au lait")  # latin-1, not UTF-8
    result = run(tmp_path / "h", "remember", "--file", str(bad))
    assert result.exit_code == 1 and "InvalidTextError" in result.output
    result = run(tmp_path / "h", "status")
    assert "interactions" in result.output
