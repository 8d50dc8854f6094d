"""Every object the SDK hands between stages shares one base: frozen, extras refused."""

from __future__ import annotations

import importlib

import pytest
from pydantic import BaseModel, ValidationError

from seal_agent.consolidation import ConsolidationReport, ProgressEvent
from seal_agent.policy.rounds import PolicyEvent
from seal_agent.types import FrozenModel, Namespace

MODULES = [
    "seal_agent.types",
    "seal_agent.turns",
    "seal_agent.intake",
    "seal_agent.derivation",
    "seal_agent.adapters",
    "seal_agent.consolidation",
    "seal_agent.training.settings",
    "seal_agent.policy.rounds",
    "seal_agent.eval.facts_data",
]


@pytest.mark.parametrize("name", MODULES)
def test_frozen_models_share_one_base(name: str) -> None:
    module = importlib.import_module(name)
    models = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == name
    ]
    assert models, name
    for model in models:
        if model is not FrozenModel:
            assert issubclass(model, FrozenModel), model
        assert model.model_config.get("frozen") is True, model
        assert model.model_config.get("extra") == "forbid", model


def test_a_misspelt_field_is_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="extra"):
        ProgressEvent(stage="train", mesage="typo")
    with pytest.raises(ValidationError, match="extra"):
        PolicyEvent(stage="round", round=1, rounds=1, reward_=0.5)
    with pytest.raises(ValidationError, match="extra"):
        ConsolidationReport(run_id=None, namespace=Namespace(), status="empty", reason="",
                            verison=3)


def test_reports_are_frozen() -> None:
    report = ConsolidationReport(run_id=None, namespace=Namespace(), status="empty", reason="")
    with pytest.raises(ValidationError):
        report.reason = "changed"  # type: ignore[misc]
