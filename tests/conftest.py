"""Shared fixtures.

Tests use the real parts: the packaged SmolLM2-135M model, the packaged
MiniLM embedder, real SQLite and real embedded Chroma.  The converted model
is cached once in <repo>/.cache/models (gitignored) and shared by every test
and subprocess through SEAL_AGENT_MODEL__CACHE_DIR.
"""

from __future__ import annotations

import os
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
# collection order (--dist loadfile): a long file that started last would run alone at
# the end while the other worker idles. Longest first, the rest fill in around them.
LONGEST_FIRST = (
    "test_memorize.py", "test_consolidation_crash.py", "test_eval.py", "test_policy.py",
    "test_consolidation.py", "test_agent.py", "test_crash.py", "test_serve.py",
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


@pytest.fixture
def make_agent(tmp_path: Path, lm: Any, embedder: Any) -> Iterator[Callable[..., Any]]:
    """Build agents on a fresh home that share the session's loaded models."""
    from seal_agent.agent import SealAgent
    from seal_agent.config import load_config

    made: list[Any] = []

    def factory(home: Path | None = None, **overrides: Any) -> Any:
        namespace = {k: overrides.pop(k) for k in ("user_id", "agent_id", "session_id") if k in overrides}
        overrides.setdefault("agent", {}).setdefault("derive", "inline")
        overrides.setdefault("selfedit", FAST_SELFEDIT)
        # Relation templates only at derivation: the model's own pairs cost ~5 s a
        # statement; test_memorize.py runs them (and the rest of recall mode) for real.
        overrides["consolidation"] = {"model_pairs": False, **overrides.get("consolidation", {})}
        cfg = load_config(home=home or tmp_path / "home", **overrides)
        agent = SealAgent(cfg, lm=lm, embedder=embedder, **namespace)
        made.append(agent)
        return agent

    yield factory
    for agent in made:
        agent.close()
