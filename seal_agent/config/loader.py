"""The root settings object and where its values come from: keyword arguments, environment, TOML.

Precedence, highest first: keyword arguments, environment variables
(``SEAL_AGENT_HOME``, ``SEAL_AGENT_MODEL__NAME``, ``SEAL_AGENT_BUFFER__TOP_K``,
... nested fields joined by ``__``), the TOML file (``SEAL_AGENT_CONFIG``, or
``<home>/config.toml`` when it exists), then the defaults of the sections.
pydantic-settings would put the environment above nothing but the keyword
arguments, so :func:`load_config` merges the file below the environment by
hand and validates the merge once.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from seal_agent.config.sections import (
    AgentConfig,
    BufferConfig,
    ConsolidationConfig,
    EmbedderConfig,
    JournalConfig,
    ModelConfig,
    PolicyConfig,
    SelfEditConfig,
    ServeConfig,
    expand_user,
)
from seal_agent.errors import ConfigError

__all__ = ["DEFAULT_HOME", "SealAgentConfig", "load_config"]

DEFAULT_HOME = Path(".seal-agent")


class SealAgentConfig(BaseSettings):
    """All settings of one memory home."""

    model_config = SettingsConfigDict(
        env_prefix="SEAL_AGENT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(DEFAULT_HOME, description="The memory home directory.")
    journal: JournalConfig = Field(default_factory=JournalConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    selfedit: SelfEditConfig = Field(default_factory=SelfEditConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    consolidation: ConsolidationConfig = Field(default_factory=ConsolidationConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    _expand_home = field_validator("home")(expand_user)

    # Whether the model reads SEAL_AGENT_* itself. load_config merges them by hand
    # (above the file) and validates with _Resolved, which reads its init arguments only.
    _reads_env: ClassVar[bool] = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No dotenv, no secrets dir: only what the caller, the environment and
        # the TOML file (merged in load_config) say.
        return (init_settings, env_settings) if cls._reads_env else (init_settings,)

    # Resolved paths: every component asks these, so a default never hides.
    @property
    def journal_path(self) -> Path:
        return self.home / "journal.sqlite3"

    @property
    def chroma_path(self) -> Path:
        return self.buffer.path if self.buffer.path is not None else self.home / "chroma"

    @property
    def model_cache_dir(self) -> Path:
        return self.model.cache_dir if self.model.cache_dir is not None else self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    def public_dict(self) -> dict[str, Any]:
        """The full resolved configuration, JSON-ready (recorded in manifests).

        API keys are secrets: the record keeps only which tenants had one, and
        whether the model had a key.
        """
        data = self.model_dump(mode="json")
        if self.model.api_key is not None:
            data["model"]["api_key"] = "<set>"
        data["serve"]["api_keys"] = {
            f"<key {n}>": tenant for n, tenant in enumerate(self.serve.api_keys.values(), 1)
        }
        return data


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_view() -> dict[str, Any]:
    """The SEAL_AGENT_* variables as a nested dict (so they can beat the file)."""
    view: dict[str, Any] = {}
    for key, value in os.environ.items():
        if not key.startswith("SEAL_AGENT_") or key == "SEAL_AGENT_CONFIG":
            continue
        if key in ("SEAL_AGENT_DATA",):  # read by other commands, not a setting
            continue
        parts = key[len("SEAL_AGENT_") :].lower().split("__")
        node = view
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _env_value(value)
    return view


def _env_value(value: str) -> Any:
    """Lists and tables arrive as JSON (``SEAL_AGENT_SELFEDIT__FORMATS='["qa"]'``),
    as pydantic-settings reads them; everything else stays a string for pydantic."""
    if value.lstrip().startswith(("[", "{")):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def load_config(config_file: str | Path | None = None, **overrides: Any) -> SealAgentConfig:
    """Resolve the configuration; every problem becomes one :class:`ConfigError`.

    ``overrides`` are keyword arguments in the model's shape, e.g.
    ``load_config(home="/tmp/h", buffer={"top_k": 3})``.
    """
    file_data: dict[str, Any] = {}
    explicit = config_file or os.environ.get("SEAL_AGENT_CONFIG")
    if explicit:
        file_data = _read_toml(Path(explicit).expanduser())
    else:
        home = Path(
            overrides.get("home") or os.environ.get("SEAL_AGENT_HOME") or DEFAULT_HOME
        ).expanduser()
        candidate = home / "config.toml"
        if candidate.is_file():
            file_data = _read_toml(candidate)
    # File < environment < keyword arguments.  pydantic-settings would put
    # init kwargs above env; the file has to be merged below env by hand.
    merged = _deep_merge(_deep_merge(file_data, _env_view()), overrides)
    try:
        # Everything arrives through init: environment already merged above.
        return _Resolved(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc


class _Resolved(SealAgentConfig):
    """SealAgentConfig that reads only its init arguments (the merge is done already)."""

    _reads_env: ClassVar[bool] = False
