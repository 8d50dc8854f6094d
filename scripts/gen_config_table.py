"""Regenerate the settings tables of docs/configuration.md from the pydantic models.

    python scripts/gen_config_table.py          # rewrite the tables in place
    python scripts/gen_config_table.py --check  # exit 1 if the tables are out of date

Name, type, default and allowed values come from ``seal_agent.config``; the
meaning comes from ``MEANINGS`` below, falling back to the field's own
description.  A setting with neither fails the run, so a new setting cannot
ship undocumented.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from seal_agent.config import SealAgentConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"

MEANINGS = {
    "home": "The memory home: journal, Chroma store, model cache, adapters. "
    "A relative path is relative to the current directory; `~` is expanded.",
    "model.name": "Which language model answers and writes self-edits; resolved as in "
    "[Model names](#model-names).",
    "model.backend": "Registered language-model backend. Built in: `local` (transformers in "
    "this process; `transformers` is its older name) and `openai` (any OpenAI-compatible "
    "server at `model.base_url`: vLLM, Ollama, `seal-agent serve`; [backends](backends.md)).",
    "model.device": "Where the local model and the trainer run. `auto`: `cuda` when torch sees "
    "a GPU, else `cpu`. `cuda` or `mps` without one is a `ConfigError`.",
    "model.dtype": "Decoding dtype of the local model. `auto`: float32 on CPU (bf16 decoded "
    "*slower* at batch 1 there in the measurements of FINDINGS.md), bfloat16 on a GPU. "
    "Training always loads its own fp32 copy and autocasts to bf16 where faster.",
    "model.threads": "`torch.set_num_threads` (process-wide). Lower it when other work "
    "shares the cores; none keeps torch's choice.",
    "model.cache_dir": "Where a GGUF model's one-time fp32 conversion is cached (default "
    "`<home>/models`). Point several homes at one folder to convert once.",
    "model.max_context": "Cap on the context window (default: the model's own). A smaller "
    "window leaves less room for history and memories, and refuses longer messages.",
    "embedder.name": "Sentence embedder for the buffer: a packaged alias, a local "
    "sentence-transformers folder, or a hub id.",
    "embedder.backend": "Registered embedder backend (built in: `sentence-transformers`).",
    "embedder.batch_size": "Texts embedded per batch.",
    "journal.url": "Where the journal lives. Unset: SQLite at `<home>/journal.sqlite3` (WAL). "
    "`postgresql://user:password@host:5432/db` keeps it on a PostgreSQL server instead (same "
    "schema, migrations and transactions; needs `pip install 'seal-agent[postgres]'`), and the "
    "adapter store's namespace locks become PostgreSQL advisory locks. Any other scheme is a "
    "`ConfigError`.",
    "buffer.path": "Embedded Chroma store (default `<home>/chroma`). Excludes `buffer.host`.",
    "buffer.host": "Chroma server host: use `HttpClient` instead of the embedded store. "
    "Excludes `buffer.path`.",
    "buffer.port": "Chroma server port (server mode only).",
    "buffer.collection": "Collection holding every namespace's memories (namespaces are "
    "metadata filters). Chroma also wants it to start and end with a letter or digit.",
    "buffer.top_k": "Memories put into one prompt (and returned by `recall`).",
    "buffer.min_similarity": "Cosine-similarity floor: weaker hits are not shown to the "
    "model. See [Retrieval floor](#retrieval-floor).",
    "buffer.dedup_similarity": "A hit at least this similar to a better hit is skipped, so "
    "one fact written in several formats takes one slot.",
    "selfedit.formats": "Self-edit formats the model writes: `implication`, `rewrite`, `qa`. "
    "`statement` and `exchange` are always kept and may not be listed.",
    "selfedit.samples_per_format": "Samples per chunk and format (0: keep only the statement, "
    "the exchange and probes). More samples give best-of-k selection room later.",
    "selfedit.max_items_per_sample": "At most this many items are parsed from one sample; "
    "the rest count as `over_cap`.",
    "selfedit.temperature": "Sampling temperature of self-edits (probes are greedy).",
    "selfedit.top_p": "Nucleus sampling of self-edits.",
    "selfedit.max_new_tokens": "Token budget of one self-edit sample.",
    "selfedit.probes_per_interaction": "Model-written probe questions kept per interaction "
    "(0: none). Ignored when the caller supplied probes.",
    "selfedit.check_support": "Run the faithfulness checks (names and numbers, content-word "
    "support, negation) of the [quality gate](#the-self-edit-quality-gate).",
    "selfedit.min_support": "Share of a line's content words that must occur in the source.",
    "selfedit.max_source_chars": "Sources longer than this are split into chunks of about "
    "this size at sentence boundaries; each chunk is derived separately.",
    "agent.derive": "When self-edits are written: `inline` (inside the call), `background` "
    "(worker thread after the answer), `off` (left `pending` for `seal-agent reprocess`).",
    "agent.retrieval": "Put buffer memories into chat prompts (per call: `retrieval=`, "
    "`--no-retrieval`).",
    "agent.max_new_tokens": "Answer length; this many tokens are reserved in the context.",
    "agent.system_prompt": "The system message.",
    "agent.memory_header": "Line introducing the memories, appended to the system message.",
    "agent.memory_footer": "Line closing the memories (an instruction to use them).",
}


def _type(field: FieldInfo) -> str:
    text = str(field.annotation)
    for noise in ("typing.", "pathlib.", "seal_agent.types.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    value: Any = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if value is None:
        return "none"
    if isinstance(value, list):
        return json.dumps([getattr(v, "value", v) for v in value])
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(str(value))


def _allowed(field: FieldInfo) -> str:
    out = []
    for meta in field.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sym} {value}")
        if getattr(meta, "pattern", None):
            out.append(f"`{meta.pattern}`".replace("|", "\\|"))
    return ", ".join(out)


def _rows() -> list[tuple[str, str, FieldInfo]]:
    rows = []
    for name, field in SealAgentConfig.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and hasattr(section, "model_fields"):
            for sub, subfield in section.model_fields.items():
                env = f"SEAL_AGENT_{name.upper()}__{sub.upper()}"
                rows.append((f"{name}.{sub}", env, subfield))
        else:
            rows.append((name, f"SEAL_AGENT_{name.upper()}", field))
    return rows


def render() -> str:
    lines: list[str] = []
    section = None
    missing = []
    for key, env, field in _rows():
        head = key.split(".")[0] if "." in key else "(top level)"
        if head != section:
            section = head
            lines += ["", f"**`{head}`**" if head != "(top level)" else "**top level**", ""]
            lines += [
                "| setting | default | type, allowed | meaning |",
                "| --- | --- | --- | --- |",
            ]
        meaning = MEANINGS.get(key) or field.description
        if not meaning:
            missing.append(key)
        lines.append(
            f"| `{key}`<br>`{env}` | `{_default(field)}` | {_type(field)}"
            f"{'; ' + _allowed(field) if _allowed(field) else ''} | {meaning} |"
        )
    if missing:
        raise SystemExit(f"settings without a meaning: {', '.join(missing)}")
    return "\n".join(lines).strip() + "\n"


def main() -> None:
    doc = DOC.read_text(encoding="utf-8")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render()}{END}{tail}"
    if "--check" in sys.argv:
        if new != doc:
            raise SystemExit(
                "docs/configuration.md is out of date: run python scripts/gen_config_table.py"
            )
        return
    DOC.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
