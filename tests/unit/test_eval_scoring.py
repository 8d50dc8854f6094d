"""Scoring, intervals, data splits and result files of the evaluation harness
(pure logic). The loaders are checked on the real data sets in ../shared/data (never
copied into the repo; missing, they fail the run)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seal_agent.errors import ConfigError
from seal_agent.eval.conversations import score_answer
from seal_agent.eval.data import (
    MemoryQuestion,
    data_dir,
    load_locomo,
    load_longmemeval,
    load_squad,
    load_teacher_edits,
)
from seal_agent.eval.results import (
    aggregate,
    markdown_table,
    plot_conditions,
    plot_retention,
    render_report,
    write_result,
)
from seal_agent.eval.scoring import (
    abstains,
    bootstrap_ci,
    contains,
    exact_match,
    f1,
    locomo_score,
    paired_bootstrap_ci,
    squad_scores,
)
from seal_agent.eval.squad import parse_teacher_edit

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def sources(*files: str) -> list[Path]:
    """The shared data folder, which must hold ``files`` (checked when the test runs)."""
    return [SHARED]


def ids(folder: Path) -> str:
    return "shared"


# -- SQuAD conventions ---------------------------------------------------------------------
def test_squad_normalisation_ignores_case_punctuation_and_articles() -> None:
    assert exact_match("The Denver Broncos!", "denver broncos") == 1.0
    assert exact_match("an apple", "Apple.") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0


def test_squad_f1_is_token_overlap() -> None:
    assert f1("Denver Broncos", "Denver Broncos") == 1.0
    assert f1("Carolina Panthers", "Denver Broncos") == 0.0
    # one of two predicted tokens right, one of one gold: P=1/2, R=1 -> 2/3
    assert f1("Denver city", "Denver") == pytest.approx(2 / 3)


def test_contains_needs_whole_tokens() -> None:
    assert contains("It was the Denver Broncos, in 2016.", "Denver Broncos") == 1.0
    assert contains("Denverite", "Denver") == 0.0
    assert contains("anything", "") == 0.0


def test_squad_scores_take_the_best_gold() -> None:
    s = squad_scores("Santa Clara", ["Levi's Stadium", "Santa Clara, California", "Santa Clara"])
    assert s == {"em": 1.0, "f1": 1.0, "contains": 1.0}
    wrong = squad_scores("Miami", ["Santa Clara"])
    assert wrong == {"em": 0.0, "f1": 0.0, "contains": 0.0}


# -- LoCoMo conventions --------------------------------------------------------------------
def test_locomo_multi_hop_gives_partial_credit_per_comma_part() -> None:
    gold = "Pottery, camping, painting"
    assert locomo_score("pottery, camping, painting", gold, "1") == pytest.approx(1.0)
    assert locomo_score("pottery", gold, "1") == pytest.approx(1 / 3)
    assert locomo_score("swimming", gold, "1") == 0.0


def test_locomo_open_domain_gold_is_cut_at_semicolon() -> None:
    assert locomo_score("Psychology", "Psychology; counseling because she wants to help", "3") == 1.0


def test_locomo_adversarial_scores_only_a_refusal() -> None:
    assert locomo_score("That was not mentioned in the conversation.", "self-care", "5") == 1.0
    assert locomo_score("self-care is important", "self-care", "5") == 0.0


def test_abstention_phrases() -> None:
    assert abstains("I don't know.")
    assert abstains("There is no information about your hamster.")
    assert not abstains("Your hamster is called Biscuit.")


def test_longmemeval_abstention_question_scores_a_refusal() -> None:
    q = MemoryQuestion(id="x_abs", question="Hamster?", answer="You did not mention this",
                       category="single-session-user", abstention=True)
    assert score_answer("longmemeval", q, "You did not mention a hamster, no information.")["score"] == 1.0
    assert score_answer("longmemeval", q, "Biscuit")["score"] == 0.0
    plain = MemoryQuestion(id="x", question="Cat?", answer="Luna", category="multi-session",
                           abstention=False)
    assert score_answer("longmemeval", plain, "Your cat is Luna.")["contains"] == 1.0
    assert score_answer("longmemeval", plain, "Your cat is Tom.")["contains"] == 0.0


# -- intervals -------------------------------------------------------------------------------
def test_bootstrap_interval_brackets_the_mean_and_narrows_with_n() -> None:
    small = [0.0, 1.0] * 5
    large = [0.0, 1.0] * 200
    m1, lo1, hi1 = bootstrap_ci(small)
    m2, lo2, hi2 = bootstrap_ci(large)
    assert m1 == m2 == 0.5
    assert lo1 <= m1 <= hi1 and lo2 <= m2 <= hi2
    assert hi2 - lo2 < hi1 - lo1
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_bootstrap_is_seeded_and_takes_another_statistic() -> None:
    values = [math.sin(i) for i in range(60)]
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7)[1:] != bootstrap_ci(values, seed=8)[1:]
    assert bootstrap_ci([2.0]) == (2.0, 2.0, 2.0)
    spread, low, high = bootstrap_ci([1.0, 2.0, 3.0, 4.0] * 5, stat=lambda xs: max(xs) - min(xs))
    assert spread == 3.0 and 0.0 <= low <= high <= 3.0


def test_paired_bootstrap_sees_a_consistent_small_gain() -> None:
    a = [float(i) for i in range(30)]
    b = [x + 0.1 for x in a]  # every item gains 0.1: the paired interval is tight
    d, lo, hi = paired_bootstrap_ci(a, b)
    assert d == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    with pytest.raises(ConfigError):  # a SealAgentError, still a ValueError
        paired_bootstrap_ci([1.0], [1.0, 2.0])


# -- data and splits -------------------------------------------------------------------------
def test_missing_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SEAL_AGENT_DATA"):
        data_dir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="squad_val.json"):
        load_squad(tmp_path, "dev")


@pytest.mark.parametrize("data", sources("squad_val.json"), ids=ids)
def test_squad_split_follows_the_first_24_titles(data: Path) -> None:
    dev, h1 = load_squad(data, "dev")
    held, h2 = load_squad(data, "heldout")
    # data/README.md
    expected = (1048, 1019, "Super Bowl 50")
    assert (len(dev), len(held), dev[0].title) == expected
    assert len({p.title for p in dev}) == 24
    assert h1 == h2 and h1.startswith("sha256:")
    assert {p.title for p in dev}.isdisjoint({p.title for p in held})
    assert all(p.questions and all(q and a for q, a in p.questions) for p in dev + held)
    sample, _ = load_squad(data, "dev", n=5, seed=3)
    again, _ = load_squad(data, "dev", n=5, seed=3)
    assert len(sample) == 5 and [p.id for p in sample] == [p.id for p in again]
    with pytest.raises(ConfigError, match="split"):
        load_squad(data, "test")  # type: ignore[arg-type]


@pytest.mark.parametrize("data", sources("squad_val.json", "seal_selfedits_gpt41_val.json"), ids=ids)
def test_teacher_edits_cover_heldout_passages(data: Path) -> None:
    edits = load_teacher_edits(data, "gpt41")
    held, _ = load_squad(data, "heldout")
    covered = [p for p in held if p.context in edits]
    assert len(covered) == 108  # data/README.md: 108 of the 200
    lines = parse_teacher_edit(edits[covered[0].context][0])
    assert lines and all(len(x.split()) >= 3 for x in lines)


@pytest.mark.parametrize("data", sources("locomo10.json"), ids=ids)
def test_locomo_split_and_evidence(data: Path) -> None:
    dev, _ = load_locomo(data, "dev", questions_per_conversation=4)
    held, _ = load_locomo(data, "heldout")
    assert (len(dev), len(held)) == (5, 5)
    assert {c.id for c in dev}.isdisjoint({c.id for c in held})
    conv = dev[0]
    assert len(conv.questions) == 4 and all(q.category in "1234" for q in conv.questions)
    evidence = conv.turns("evidence")
    assert evidence and all(t.evidence for t in evidence)
    assert len(conv.turns("evidence")) <= len(conv.turns("sessions")) <= len(conv.turns("all"))
    adversarial, _ = load_locomo(data, "dev", conversations=1, categories={"5"})
    assert adversarial[0].questions and all(q.abstention for q in adversarial[0].questions)


@pytest.mark.parametrize("data", sources("longmemeval_oracle.json"), ids=ids)
def test_longmemeval_split_and_types(data: Path) -> None:
    dev, _ = load_longmemeval(data, "dev")
    held, _ = load_longmemeval(data, "heldout")
    assert (len(dev), len(held)) == (250, 250)
    assert {c.id for c in dev}.isdisjoint({c.id for c in held})
    split = "heldout"
    only, _ = load_longmemeval(data, split, question_types={"knowledge-update"})
    assert only and all(c.questions[0].category == "knowledge-update" for c in only)
    assert any(t.evidence for c in (held or dev)[:20] for t in c.turns("all"))
    assert any(c.questions[0].abstention for c in dev)


def test_teacher_edit_parsing() -> None:
    text = "1. The canal opened in 1834.\n- It has 14 locks along it.\n\nshort\n* Built by the city council."
    assert parse_teacher_edit(text) == [
        "The canal opened in 1834.", "It has 14 locks along it.", "Built by the city council.",
    ]


# -- result files ------------------------------------------------------------------------------
def _rows() -> list[dict]:
    return [{"base": {"loglik": -5.0 + 0.1 * i}, "passage": {"loglik": -4.5 + 0.1 * i}} for i in range(6)]


def test_aggregate_reports_paired_difference_to_baseline() -> None:
    agg = aggregate(_rows(), ["base", "passage"], ["loglik"], baseline="base")
    assert agg["base"]["n"] == 6
    assert agg["passage"]["loglik_vs_base"]["mean"] == pytest.approx(0.5)
    table = markdown_table(agg, [("loglik", "log-lik", 1.0), ("loglik_vs_base", "Δ", 1.0)])
    assert "| passage | 6 |" in table and "0.50 [0.50, 0.50]" in table


def test_results_and_report_round_trip(tmp_path: Path) -> None:
    agg = aggregate(_rows(), ["base", "passage"], ["loglik"], baseline="base")
    payload = {"kind": "squad", "split": "dev", "items": 6, "aggregates": agg,
               "headline": ["loglik", "log-lik", 1.0]}
    path = write_result(tmp_path, "squad", payload, "# md\n")
    assert json.loads(path.read_text())["items"] == 6
    assert path.with_suffix(".md").read_text() == "# md\n"
    report = render_report([path, path])
    assert report.count("passage") == 1 and report.count("-4.25") == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="not a seal-agent eval result"):
        render_report([bad])


def test_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    agg = aggregate(_rows(), ["base", "passage"], ["loglik"], baseline="base")
    bars = plot_conditions(agg, "loglik", tmp_path / "bars.png", title="t", ylabel="y")
    heat = plot_retention([[-5.0, -5.1], [-4.0, -5.0], [-4.2, -4.1]], tmp_path / "heat.png", title="t")
    for p in (bars, heat):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
