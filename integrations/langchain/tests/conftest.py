"""Shared set-up: the real default model, real Chroma, real SQLite.

The converted model is the one the core tests cache in <repo>/.cache/models.
One SealAgent (one loaded model) serves every test of a session that needs
the model; see ``_shared.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
os.environ.setdefault("SEAL_AGENT_MODEL__CACHE_DIR", str(REPO / ".cache" / "models"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one torch thread each (set before
    # torch loads; subprocesses the tests start inherit it).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach for a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("SEAL_AGENT_HOME", None)
os.environ.pop("SEAL_AGENT_CONFIG", None)


def pytest_collection_modifyitems(items: list) -> None:
    """The examples (each a subprocess that consolidates) first: `make test` hands whole files
    to two pytest-xdist workers in collection order, so the longest must not start last."""
    items.sort(key=lambda item: item.path.name != "test_examples.py")  # stable
