"""Configuration: defaults, SEAL_AGENT_* variables, the TOML file, and their precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from seal_agent.config import DEFAULT_HOME, BufferConfig, SealAgentConfig, load_config
from seal_agent.errors import ConfigError, SealAgentError
from seal_agent.types import SelfEditFormat


@pytest.fixture(autouse=True)
def in_empty_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A cwd without .seal-agent/ (SEAL_AGENT_* variables are cleared by conftest)."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults --------------------------------------------------------------------


def test_defaults() -> None:
    cfg = load_config()
    assert cfg.home == DEFAULT_HOME == Path(".seal-agent")
    assert cfg.model.name == "smollm2-135m-instruct"
    assert cfg.model.backend == "local"
    assert cfg.model.dtype == "auto" and cfg.model.device == "auto"
    assert cfg.model.base_url is None and cfg.model.trainer is None
    assert cfg.embedder.name == "all-minilm-l6-v2"
    assert cfg.buffer.path is None and cfg.buffer.host is None
    assert cfg.buffer.top_k == 5
    # Tuned numbers are not pinned here, only their sense: a floor below the dedup bar.
    assert 0.0 < cfg.buffer.min_similarity < cfg.buffer.dedup_similarity <= 1.0
    assert cfg.selfedit.formats == [
        SelfEditFormat.IMPLICATION,
        SelfEditFormat.REWRITE,
        SelfEditFormat.QA,
    ]
    assert cfg.agent.derive == "background"
    assert cfg.agent.retrieval is True


def test_defaults_do_not_share_mutable_state() -> None:
    first = load_config()
    first.selfedit.formats.append(SelfEditFormat.QA)
    assert load_config().selfedit.formats == [
        SelfEditFormat.IMPLICATION,
        SelfEditFormat.REWRITE,
        SelfEditFormat.QA,
    ]


def test_public_dict_is_json_ready() -> None:
    data = json.loads(json.dumps(load_config(home="h", buffer={"top_k": 7}).public_dict()))
    assert data["home"] == "h"
    assert data["buffer"]["top_k"] == 7
    assert data["selfedit"]["formats"] == ["implication", "rewrite", "qa"]


# -- environment -----------------------------------------------------------------


def test_env_overrides_top_level_and_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAL_AGENT_HOME", "/srv/memory")
    monkeypatch.setenv("SEAL_AGENT_BUFFER__TOP_K", "3")
    monkeypatch.setenv("SEAL_AGENT_MODEL__NAME", "org/some-model")
    monkeypatch.setenv("SEAL_AGENT_AGENT__RETRIEVAL", "false")
    cfg = load_config()
    assert cfg.home == Path("/srv/memory")
    assert cfg.buffer.top_k == 3
    assert isinstance(cfg.buffer.top_k, int)
    assert cfg.model.name == "org/some-model"
    assert cfg.agent.retrieval is False
    # A nested variable sets one field; the section's other fields keep their defaults.
    assert cfg.buffer.min_similarity == BufferConfig().min_similarity
    assert cfg.model.backend == "local"


def test_env_list_value_is_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAL_AGENT_SELFEDIT__FORMATS", '["qa", "rewrite"]')
    assert load_config().selfedit.formats == [SelfEditFormat.QA, SelfEditFormat.REWRITE]


def test_invalid_env_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAL_AGENT_BUFFER__TOP_K", "many")
    with pytest.raises(ConfigError, match=r"buffer\.top_k"):
        load_config()


def test_unknown_env_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAL_AGENT_BUFER__TOP_K", "3")  # typo
    with pytest.raises(ConfigError, match="bufer"):
        load_config()


# -- the TOML file ---------------------------------------------------------------


TOML = """
[model]
name = "./my-model"

[buffer]
top_k = 2
min_similarity = 0.5
collection = "from_file"

[agent]
derive = "inline"
"""


def test_config_file_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _write(tmp_path / "elsewhere" / "settings.toml", TOML)
    monkeypatch.setenv("SEAL_AGENT_CONFIG", str(path))
    cfg = load_config()
    assert cfg.model.name == "./my-model"
    assert cfg.buffer.top_k == 2
    assert cfg.buffer.collection == "from_file"
    assert cfg.agent.derive == "inline"
    assert cfg.buffer.dedup_similarity == pytest.approx(0.95)  # untouched default


def test_config_file_argument(tmp_path: Path) -> None:
    path = _write(tmp_path / "settings.toml", TOML)
    assert load_config(path).buffer.top_k == 2
    assert load_config(str(path)).agent.derive == "inline"


def test_config_toml_in_home_given_as_keyword(tmp_path: Path) -> None:
    home = tmp_path / "mem"
    _write(home / "config.toml", TOML)
    cfg = load_config(home=home)
    assert cfg.buffer.top_k == 2
    assert cfg.home == home


def test_config_toml_in_home_given_by_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "mem"
    _write(home / "config.toml", TOML)
    monkeypatch.setenv("SEAL_AGENT_HOME", str(home))
    assert load_config().buffer.collection == "from_file"


def test_config_toml_in_default_home(tmp_path: Path) -> None:
    _write(Path.cwd() / ".seal-agent" / "config.toml", "[buffer]\ntop_k = 9\n")
    assert load_config().buffer.top_k == 9


def test_no_config_toml_means_defaults(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    assert load_config(home=home).buffer.top_k == 5


def test_explicit_config_file_beats_home_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "mem"
    _write(home / "config.toml", "[buffer]\ntop_k = 9\n")
    explicit = _write(tmp_path / "explicit.toml", "[buffer]\ntop_k = 4\n")
    monkeypatch.setenv("SEAL_AGENT_CONFIG", str(explicit))
    assert load_config(home=home).buffer.top_k == 4


def test_missing_explicit_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEAL_AGENT_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()


def test_invalid_toml(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.toml", "[buffer\ntop_k = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_unknown_key_in_file_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", "[buffer]\ntop_kk = 3\n")
    with pytest.raises(ConfigError, match=r"buffer\.top_kk"):
        load_config(path)


# -- precedence ------------------------------------------------------------------


def test_precedence_kwargs_over_env_over_file_over_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _write(tmp_path / "c.toml", TOML)
    monkeypatch.setenv("SEAL_AGENT_CONFIG", str(path))
    monkeypatch.setenv("SEAL_AGENT_BUFFER__TOP_K", "3")
    monkeypatch.setenv("SEAL_AGENT_BUFFER__MIN_SIMILARITY", "0.6")
    cfg = load_config(buffer={"top_k": 4})
    assert cfg.buffer.top_k == 4  # keyword beats env and file
    assert cfg.buffer.min_similarity == pytest.approx(0.6)  # env beats file
    assert cfg.buffer.collection == "from_file"  # file beats default
    assert cfg.buffer.dedup_similarity == pytest.approx(0.95)  # default
    assert cfg.agent.derive == "inline"  # file section untouched by env/kwargs


def test_env_beats_file_without_kwargs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", TOML)
    monkeypatch.setenv("SEAL_AGENT_CONFIG", str(path))
    monkeypatch.setenv("SEAL_AGENT_AGENT__DERIVE", "off")
    cfg = load_config()
    assert cfg.agent.derive == "off"
    assert cfg.buffer.top_k == 2


def test_kwargs_beat_env_at_top_level(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEAL_AGENT_HOME", str(tmp_path / "from-env"))
    assert load_config(home=tmp_path / "from-kwargs").home == tmp_path / "from-kwargs"


# -- invalid values --------------------------------------------------------------


def test_buffer_path_and_host_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exclude each other") as info:
        load_config(buffer={"path": str(tmp_path / "chroma"), "host": "localhost"})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SealAgentError)


def test_buffer_path_in_file_and_host_in_env_conflict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _write(tmp_path / "c.toml", '[buffer]\npath = "/data/chroma"\n')
    monkeypatch.setenv("SEAL_AGENT_BUFFER__HOST", "chroma.internal")
    with pytest.raises(ConfigError, match="exclude each other"):
        load_config(path)


def test_journal_defaults_to_the_sqlite_file_in_the_home(tmp_path: Path) -> None:
    cfg = load_config(home=tmp_path)
    assert cfg.journal.url is None and cfg.journal_path == tmp_path / "journal.sqlite3"


def test_journal_url_takes_postgresql(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEAL_AGENT_JOURNAL__URL", "postgresql://seal@db.internal:5432/seal")
    assert load_config(home=tmp_path).journal.url == "postgresql://seal@db.internal:5432/seal"
    assert load_config(home=tmp_path, journal={"url": "postgres://h/db"}).journal.url


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite:///tmp/j.sqlite3", "db.internal:5432"])
def test_journal_url_with_another_scheme_is_a_config_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="journal.url: .*unknown journal scheme"):
        load_config(home=tmp_path, journal={"url": url})


def test_buffer_host_alone_is_fine() -> None:
    cfg = load_config(buffer={"host": "localhost", "port": 8001})
    assert cfg.buffer.host == "localhost"
    assert cfg.buffer.port == 8001


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ConfigError, SealAgentError)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"buffer": {"top_k": 0}}, r"buffer\.top_k"),
        ({"buffer": {"top_k": 101}}, r"buffer\.top_k"),
        ({"buffer": {"port": 70000}}, r"buffer\.port"),
        ({"buffer": {"collection": "a b"}}, r"buffer\.collection"),
        ({"model": {"dtype": "int3"}}, r"model\.dtype"),
        ({"selfedit": {"temperature": 0}}, r"selfedit\.temperature"),
        ({"agent": {"derive": "sometimes"}}, r"agent\.derive"),
        ({"bogus": 1}, "bogus"),
        ({"buffer": {"topk": 3}}, r"buffer\.topk"),
    ],
)
def test_invalid_value_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        load_config(**overrides)
    # The pydantic error stays visible as the cause.
    assert isinstance(info.value.__cause__, ValidationError)


@pytest.mark.parametrize("kept", ["statement", "exchange"])
def test_kept_formats_cannot_be_listed(kept: str) -> None:
    with pytest.raises(ConfigError, match=kept):
        load_config(selfedit={"formats": ["qa", kept]})


def test_generated_formats_can_be_chosen() -> None:
    cfg = load_config(selfedit={"formats": ["qa"]})
    assert cfg.selfedit.formats == [SelfEditFormat.QA]


# -- resolved paths --------------------------------------------------------------


def test_resolved_paths_live_under_home(tmp_path: Path) -> None:
    home = tmp_path / "mem"
    cfg = load_config(home=home)
    for path in (cfg.journal_path, cfg.chroma_path, cfg.model_cache_dir, cfg.adapters_dir):
        assert path.is_relative_to(home)
        assert path != home
    assert len({cfg.journal_path, cfg.chroma_path, cfg.model_cache_dir, cfg.adapters_dir}) == 4
    assert cfg.journal_path.suffix == ".sqlite3"


def test_explicit_store_and_cache_paths_win(tmp_path: Path) -> None:
    cfg = load_config(
        home=tmp_path / "mem",
        buffer={"path": str(tmp_path / "chroma")},
        model={"cache_dir": str(tmp_path / "models")},
    )
    assert cfg.chroma_path == tmp_path / "chroma"
    assert cfg.model_cache_dir == tmp_path / "models"
    assert cfg.journal_path.is_relative_to(tmp_path / "mem")


def test_home_with_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user_home = tmp_path / "user"
    _write(user_home / "mem" / "config.toml", "[buffer]\ntop_k = 8\n")
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("SEAL_AGENT_HOME", "~/mem")
    cfg = load_config()
    assert cfg.buffer.top_k == 8  # the file was found under the expanded home ...
    assert cfg.home == user_home / "mem"  # ... and the journal goes there too
    assert cfg.journal_path == user_home / "mem" / "journal.sqlite3"


def test_store_and_cache_paths_with_tilde_are_expanded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(buffer={"path": "~/chroma"}, model={"cache_dir": "~/models"})
    assert cfg.chroma_path == tmp_path / "chroma"
    assert cfg.model_cache_dir == tmp_path / "models"


def test_settings_class_validates_on_construction() -> None:
    with pytest.raises(ValidationError):
        SealAgentConfig(buffer={"top_k": 0})
