"""`seal-agent models prepare|list`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.table import Table

from seal_agent.cli._common import (
    ConfigOpt,
    HomeOpt,
    cli_config,
    console,
    friendly_errors,
    quiet_libraries,
)

app = typer.Typer(help="Prepare and list language models and embedders.", no_args_is_help=True)

T = TypeVar("T")


def _timed(status: str, build: Callable[[], T]) -> tuple[T, float]:
    """``build()`` under a spinner saying ``status``, and the seconds it took."""
    started = time.perf_counter()
    with console.status(status):
        built = build()
    return built, time.perf_counter() - started


@app.command("prepare")
@friendly_errors
def prepare(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Convert the configured model once (GGUF → cached safetensors) and load the embedder."""
    from seal_agent.models import build_embedder, build_language_model

    quiet_libraries()
    cfg = cli_config(home, config)
    lm, seconds = _timed(f"preparing {cfg.model.name} (first time: converting, ~20 s)…",
                         lambda: build_language_model(cfg))
    console.print(
        f"language model [bold]{lm.name}[/] ready in {seconds:.1f} s "
        f"(context {lm.context_length} tokens, cache {cfg.model_cache_dir})"
    )
    emb, seconds = _timed(f"loading embedder {cfg.embedder.name}…", lambda: build_embedder(cfg))
    console.print(
        f"embedder [bold]{emb.name}[/] ready in {seconds:.1f} s "
        f"({emb.dimension} dimensions)"
    )


@app.command("list")
@friendly_errors
def list_(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Packaged models, whether their wheels are installed, and what is cached."""
    from seal_agent.errors import ModelNotFoundError
    from seal_agent.models.packaged import (
        PACKAGED_EMBEDDERS,
        PACKAGED_LANGUAGE_MODELS,
        locate_packaged,
    )

    cfg = cli_config(home, config)
    table = Table("kind", "alias", "installed", "cached", "configured", "install")
    for kind, models, configured in (
        ("language model", PACKAGED_LANGUAGE_MODELS, cfg.model.name),
        ("embedder", PACKAGED_EMBEDDERS, cfg.embedder.name),
    ):
        for alias, pm in models.items():
            try:
                locate_packaged(pm)
                installed = "yes"
            except ModelNotFoundError:
                installed = "no"
            cached = (
                "yes" if (cfg.model_cache_dir / alias / "config.json").is_file() else
                ("n/a" if kind == "embedder" else "no")
            )
            table.add_row(kind, alias, installed, cached, "yes" if configured == alias else "",
                          pm.install_hint)
    console.print(table)
    if cfg.model.name not in PACKAGED_LANGUAGE_MODELS:
        console.print(f"configured language model: {cfg.model.name}")
