"""One loaded model per test session, shared by fixtures and by the standard
suites (whose parameters are class properties, so they cannot take fixtures)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from seal_agent import SealAgent, load_config

# Small budgets keep the real-model tests fast; the settings are the library's own.
FAST = {
    "agent": {"derive": "off", "max_new_tokens": 24},
    "selfedit": {"max_new_tokens": 48, "probes_per_interaction": 1},
    # relation templates only: the model's own question/answer pairs cost seconds a
    # statement and are the core tests' business (tests/integration/test_memorize.py)
    "consolidation": {"model_pairs": False},
}


@functools.cache
def models() -> tuple[Any, Any]:
    """The session's language model and embedder, loaded once."""
    from seal_agent.models import build_embedder, build_language_model, quiet_model_loading

    quiet_model_loading()
    cfg = load_config(home=Path(tempfile.mkdtemp(prefix="lc-models-")))
    return build_language_model(cfg), build_embedder(cfg)


def make_agent(home: Path, **overrides: Any) -> SealAgent:
    """A SealAgent on ``home`` sharing the session's loaded models."""
    lm, embedder = models()
    settings = {**FAST, **overrides}
    return SealAgent(load_config(home=home, **settings), lm=lm, embedder=embedder)


@functools.cache
def suite_agent() -> SealAgent:
    """The agent the standard chat-model suite runs against (derivation off: the
    suite checks the LangChain contract, our own tests check derivation)."""
    return make_agent(Path(tempfile.mkdtemp(prefix="lc-suite-")))
