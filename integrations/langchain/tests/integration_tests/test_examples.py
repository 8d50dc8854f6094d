"""Both LangChain examples run end to end, as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _run(script: str, home, *extra: str) -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / script), "--home", str(home), *extra],
        capture_output=True, text=True, timeout=600, env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_langchain_chat_example(tmp_path):
    out = _run("langchain_chat.py", tmp_path / "home", "--k", "1")
    assert "fact retrieved into the prompt: yes" in out  # the example's own real check
    assert "\n== session 'friday': retrieval OFF" in out
    assert "memories in the prompt: 0" in out
    assert "answer from the weights says it:" in out


def test_langchain_callback_example(tmp_path):
    out = _run("langchain_callback.py", tmp_path / "home")
    assert "logged turns: 2;" in out
    assert "fact retrieved into the local prompt: yes" in out
