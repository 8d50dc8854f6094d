"""Smoke runs of `seal-agent eval` on one or two items each, with the real model, the
real agent (SQLite journal, embedded Chroma) and the real data sets (../shared/data).

They check the structure of what is written and that every score comes from
the real generation it sits beside (re-scored here), not from anywhere else.
Small budgets keep them fast: one inner-loop epoch, short answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seal_agent.cli import app
from seal_agent.eval.conversations import score_answer
from seal_agent.eval.data import MemoryQuestion
from seal_agent.eval.scoring import squad_scores

# The shared data sets, never copied into the repo. Missing, they fail the run (a skip
# would hide the eval harness going untested).
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _shared_data() -> None:
    if not DATA.is_dir():
        pytest.fail(f"the eval tests read ../shared/data ({DATA}); it is not here", pytrace=False)
runner = CliRunner()


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "SEAL_AGENT_CONSOLIDATION__INNER_EPOCHS": "1",
        "SEAL_AGENT_CONSOLIDATION__UPDATE_EPOCHS": "2",
        "SEAL_AGENT_SELFEDIT__MAX_NEW_TOKENS": "48",
        "SEAL_AGENT_SELFEDIT__PROBES_PER_INTERACTION": "1",
        "SEAL_AGENT_SELFEDIT__FORMATS": '["implication"]',
    }.items():
        monkeypatch.setenv(key, value)


def _result(folder: Path, kind: str) -> dict:
    (path,) = folder.glob(f"{kind}-*.json")
    assert path.with_suffix(".md").is_file()
    return json.loads(path.read_text())


def test_eval_squad_smoke(tmp_path: Path, fast: None) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, [
        "eval", "squad", "--split", "dev", "--n", "1", "--k", "1", "--data", str(DATA),
        "--conditions", "base,passage,seal,teacher,context", "--output", str(out), "--plot",
    ])
    assert res.exit_code == 0, res.output
    data = _result(out, "squad")
    assert data["split"] == "dev" and data["items"] == 1 and data["data_hash"].startswith("sha256:")
    assert data["commit"] and data["config"]["selfedit"]["style"] == "passage"
    for rec in data["records"]:
        conds = rec["conditions"]
        assert set(conds) == {"base", "passage", "seal", "teacher", "context"}
        for name, c in conds.items():
            answers = c["answers"]
            assert len(answers) == rec["questions"] and all(isinstance(a, str) for a in answers)
            assert c["loglik"] < 0.0  # a log-probability of real tokens
            # the stored metric is the mean of the answers' own scores
            passage_questions = _gold(data, rec["passage"])
            per = [squad_scores(a, [g]) for a, g in zip(answers, passage_questions, strict=True)]
            assert c["f1"] == pytest.approx(sum(s["f1"] for s in per) / len(per))
            assert c["contains"] == pytest.approx(sum(s["contains"] for s in per) / len(per))
            if name in ("passage", "seal", "teacher"):
                assert c["tokens"] > 0  # it trained
        assert conds["seal"]["selection"] in ("reward", "no_probes", "no_candidates")
    # a different state answers differently somewhere: the passage in context changes things
    assert any(r["conditions"]["context"]["loglik"] != r["conditions"]["base"]["loglik"]
               for r in data["records"])
    assert set(data["aggregates"]) == {"base", "passage", "seal", "teacher", "context"}
    assert "loglik_vs_base" in data["aggregates"]["passage"]
    assert list(out.glob("squad-*.loglik.png"))
    # the report reads it back
    rep = runner.invoke(app, ["eval", "report", *map(str, out.glob("squad-*.json"))])
    assert rep.exit_code == 0 and "passage" in rep.output


def _gold(data: dict, passage_id: str) -> list[str]:
    from seal_agent.eval.data import load_squad

    passages, _ = load_squad(DATA, data["split"])
    (p,) = [p for p in passages if p.id == passage_id]
    return [a for _, a in p.questions]


def test_eval_squad_sequential_writes_a_retention_matrix(tmp_path: Path, fast: None) -> None:
    out = tmp_path / "seq"
    res = runner.invoke(app, [
        "eval", "squad", "--split", "dev", "--sequential", "2", "--data", str(DATA),
        "--output", str(out), "--plot",
    ])
    assert res.exit_code == 0, res.output
    data = _result(out, "squad-sequential")
    matrix = data["records"]["matrix"]
    assert len(matrix) == 3 and all(len(row) == 2 for row in matrix)
    assert matrix[1][0] != matrix[0][0]  # training on passage 1 moved its recall
    assert list(out.glob("*.retention.png"))


@pytest.mark.parametrize("dataset", ["locomo", "longmemeval"])
def test_eval_memory_smoke(tmp_path: Path, fast: None, dataset: str) -> None:
    out = tmp_path / dataset
    # LoCoMo also consolidates and asks through the weights; LongMemEval stops before
    # (the same code path, and the default test run has a time budget).
    modes = ["none", "buffer", "full-context"] + (["weights"] if dataset == "locomo" else [])
    args = ["eval", dataset, "--split", "dev", "--k", "1", "--data", str(DATA), "--output", str(out),
            "--modes", ",".join(modes)]
    args += (["--conversations", "1", "--questions-per-conversation", "2"] if dataset == "locomo"
             else ["--conversations", "1"])
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = _result(out, dataset)
    assert data["items"] == (2 if dataset == "locomo" else 1) and data["kind"] == dataset
    for rec in data["records"]:
        assert rec["turns_fed"] >= 1
        if "weights" in modes:
            assert rec["consolidation"]["status"] in (
                "promoted", "gate_rejected", "nothing_to_promote", "empty")
        else:
            assert rec["consolidation"] == {}
        for q in rec["questions"]:
            question = MemoryQuestion(id=q["id"], question=q["question"], answer=q["gold"],
                                      category=q["category"], abstention=q["abstention"])
            assert set(q["modes"]) == set(modes)
            for mode, a in q["modes"].items():
                assert isinstance(a["answer"], str) and a["prompt_tokens"] > 0
                assert a["score"] == pytest.approx(score_answer(dataset, question, a["answer"])["score"])
                if mode in ("none", "weights", "full-context"):
                    assert a["memories"] == []
            # retrieval puts memories in the prompt, so the prompt is longer than without
            assert q["modes"]["buffer"]["prompt_tokens"] > q["modes"]["none"]["prompt_tokens"]
    assert set(data["by_category"]) and set(data["aggregates"]) == set(modes)


def test_eval_squad_takes_a_policy_version(tmp_path: Path, fast: None, lm) -> None:
    """``--policy N`` adds seal+policy, sampled through that policy adapter."""
    from test_policy import _randomised_policy  # the test module beside this one

    from seal_agent.adapters import AdapterStore
    from seal_agent.config import load_config
    from seal_agent.journal import Journal
    from seal_agent.policy import PolicyStore

    home = tmp_path / "home"
    config = load_config(home=home)
    home.mkdir()
    store = PolicyStore(AdapterStore(config.adapters_dir, Journal(config.journal_path)))
    _randomised_policy(lm, config, store, 1)
    out = tmp_path / "out"
    args = ["eval", "squad", "--split", "dev", "--n", "1", "--k", "1", "--data", str(DATA),
            "--conditions", "base", "--home", str(home)]
    res = runner.invoke(app, [*args, "--policy", "1", "--output", str(out)])
    assert res.exit_code == 0, res.output
    data = _result(out, "squad")
    (rec,) = data["records"]
    assert set(rec["conditions"]) == {"base", "seal+policy"}
    assert data["settings"]["policy"] == "1"
    # a policy that does not exist is one clear error
    res = runner.invoke(app, [*args, "--policy", "7", "--output", str(tmp_path / "x")])
    assert res.exit_code == 1 and "AdapterNotFoundError" in res.output
