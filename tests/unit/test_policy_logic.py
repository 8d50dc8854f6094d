"""Policy training: the pure pieces (advantages, training completions, run log, episodes)
and the policy store on real SQLite and real files (no model)."""

from __future__ import annotations

import json
import statistics

import pytest

from seal_agent.adapters import AdapterStore
from seal_agent.errors import AdapterNotFoundError, ConfigError, CorruptAdapterError
from seal_agent.journal import Journal
from seal_agent.policy import DEPLOYMENT, PolicyStore, scope_of
from seal_agent.policy.episodes import EpisodeSet, load_episodes
from seal_agent.policy.runlog import RunLog
from seal_agent.policy.update import completion_for_training, group_advantages
from seal_agent.types import SelfEditFormat


def test_group_advantages_are_centred_and_scaled():
    adv = group_advantages([0.1, 0.4, 0.7])
    assert adv is not None
    assert statistics.fmean(adv) == pytest.approx(0.0, abs=1e-9)
    assert adv[0] < 0 < adv[2]
    assert statistics.stdev(adv) == pytest.approx(1.0, rel=1e-3)
    assert group_advantages([0.3, 0.3, 0.3]) is None  # ties carry no signal
    assert group_advantages([0.5]) is None


def test_training_completion_continues_the_prompt_with_gated_lines():
    raw = "Paris is big.\n- Paris was founded by Zorg.\n- Paris is in France."
    items = ["Paris is big.", "Paris is in France."]  # the gate dropped Zorg
    assert completion_for_training(SelfEditFormat.IMPLICATION, items, raw) == " Paris is big.\n- Paris is in France."
    assert completion_for_training(SelfEditFormat.REWRITE, ["A rewrite."], "A rewrite. more") == " A rewrite."
    qa = completion_for_training(SelfEditFormat.QA, ["Q: Where?\nA: Paris", "Q: What?\nA: A city"], "")
    assert qa == " Where?\nA: Paris\nQ: What?\nA: A city"
    directive = completion_for_training(SelfEditFormat.DIRECTIVE, ["Paris is big."],
                                        "Paris is big.\nTraining: epochs=3 lr=0.001 data=facts")
    assert directive.endswith("\nTraining: epochs=3 lr=0.001 data=facts")


def test_run_log_survives_a_line_cut_short(tmp_path):
    log = RunLog(tmp_path)
    log.append({"kind": "sample", "round": 1, "context": "a"})
    with log.path.open("a") as fh:
        fh.write('{"kind": "sample", "round": 1, "cont')  # killed mid-write
    again = RunLog(tmp_path)
    assert [e["context"] for e in again.events] == ["a"]
    again.append({"kind": "sample", "round": 1, "context": "b"})
    assert [e["context"] for e in RunLog(tmp_path).events] == ["a", "b"]
    assert again.find("sample", context="b") and again.find("sample", context="c") is None


def _save(marker: str):
    def save(folder):
        (folder / "adapter_model.safetensors").write_bytes(marker.encode() * 10)
        (folder / "adapter_config.json").write_text("{}")
    return save


@pytest.fixture
def store(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    yield PolicyStore(AdapterStore(tmp_path / "adapters", journal))
    journal.close()


def test_policy_promotion_listing_and_rollback(store):
    with pytest.raises(AdapterNotFoundError, match="no active policy"):
        store.resolve(None)
    v1 = store.promote(_save("one"), config={}, metrics={"round": 1})
    v2 = store.promote(_save("two"), config={}, metrics={"round": 2}, parent_id=v1.id)
    assert [v.version for v in store.list()] == [2, 1]
    assert store.active().id == v2.id and v2.kind == "policy"
    assert store.resolve(None)[0].id == v2.id
    assert store.resolve("v0001")[0].id == v1.id and store.resolve(1)[0].id == v1.id
    assert store.resolve(v1.id)[0].id == v1.id
    with pytest.raises(AdapterNotFoundError, match="v0009|9"):
        store.resolve(9)
    assert store.rollback().id == v1.id
    assert store.active().id == v1.id
    # memory adapters of the reserved namespace are untouched: policies are their own kind
    assert store.adapters.list(*DEPLOYMENT, "memory") == []
    # per-namespace scope is separate from the deployment's
    ns = scope_of("maya", None)
    assert ns == ("maya", "default") and store.list(ns) == []


def test_corrupt_policy_is_refused_and_the_previous_kept(store):
    v1 = store.promote(_save("one"), config={}, metrics={})
    v2 = store.promote(_save("two"), config={}, metrics={})
    (v2.path / "adapter_model.safetensors").write_bytes(b"owt" * 10)  # same size, other bytes
    with pytest.raises(CorruptAdapterError, match="checksum"):
        store.resolve(2)  # asked for exactly that one: refused
    found, warnings = store.resolve(None)  # the active one: fall back, say why
    assert found.id == v1.id and "v0002" in warnings[0] and "using v0001" in warnings[0]
    assert store.active().id == v2.id  # a read never moves the pointer
    with pytest.raises(CorruptAdapterError):
        store.rollback(to_version=2)


def test_policy_writer_without_a_policy_is_a_clear_error(tmp_path):
    from seal_agent.config import load_config
    from seal_agent.policy import policy_writer

    class FakeLM:  # only what policy_writer looks at before it needs a model
        name = "fake"
        supports_adapters = True

    with pytest.raises(AdapterNotFoundError, match="policy train"):
        policy_writer(FakeLM(), load_config(home=tmp_path), None)


def test_file_episodes_skip_contexts_without_probes(tmp_path):
    path = tmp_path / "passages.jsonl"
    rows = [
        {"context": "The Ember canal has 14 locks.", "questions": [{"question": "How many locks?", "answer": "14"}]},
        {"text": "No questions here.", "questions": []},
        {"passage": "Mora is an island.", "probes": [["What is Mora?", "an island"]]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    found = load_episodes(str(path), n=10)
    assert isinstance(found, EpisodeSet)
    assert len(found.episodes) == 2 and found.skipped_no_probes == 1
    assert {e.probes[0][1] for e in found.episodes} == {"14", "an island"}
    with pytest.raises(ConfigError, match="needs 2 to train and 1 held apart|has 2 usable"):
        found.split(2, 1)


def test_no_episodes_and_bad_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps([{"context": "x", "questions": []}]))
    with pytest.raises(ConfigError, match="no episodes available.*1 contexts had no probe"):
        load_episodes(str(empty), n=5)
    bad = tmp_path / "bad.json"
    bad.write_text("[{not json")
    with pytest.raises(ConfigError, match="neither a JSON list nor JSON lines"):
        load_episodes(str(bad), n=5)
    with pytest.raises(ConfigError, match="not journal, squad, locomo"):
        load_episodes(str(tmp_path / "missing.json"), n=5)
    journal = Journal(tmp_path / "j.sqlite3")
    with pytest.raises(ConfigError, match="no episodes available from the journal"):
        load_episodes("journal", n=5, journal=journal)
    journal.close()
