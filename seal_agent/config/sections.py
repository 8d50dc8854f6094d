"""The settings sections: one pydantic model per part of the SDK, each validating itself.

Every section forbids unknown keys (a misspelt setting is an error, not a
silent default) and re-validates on assignment. Where two settings exclude
each other (``buffer.path`` and ``buffer.host``; remote-only model settings
on a local backend) the section refuses the pair on construction. The
field descriptions are the reference: ``scripts/gen_config_table.py``
writes docs/configuration.md from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seal_agent.types import SelfEditFormat, check_id

__all__ = [
    "AgentConfig",
    "BufferConfig",
    "ConsolidationConfig",
    "EmbedderConfig",
    "JournalConfig",
    "ModelConfig",
    "PolicyConfig",
    "SelfEditConfig",
    "ServeConfig",
    "expand_user",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def expand_user(value: Path | None) -> Path | None:
    """``~/mem`` means the user's home, as it does when load_config looks for config.toml."""
    return value.expanduser() if value is not None else None


LOCAL_BACKENDS = ("local", "transformers")  # "transformers": the local backend's older name
REMOTE_BACKENDS = ("openai",)


class ModelConfig(_Section):
    """The language model that answers and writes self-edits.

    ``backend = "local"`` loads it here (transformers); ``"openai"`` talks to
    any OpenAI-compatible server (vLLM, Ollama, `seal-agent serve`) at
    ``base_url``. A remote model holds no weights here, so consolidation
    trains on ``trainer``: the same base weights, loaded locally.
    """

    name: str = Field(
        "smollm2-135m-instruct",
        description="A packaged model alias, a Hugging Face id, or a local path "
        "(a directory or a .gguf file); with a remote backend, the model id the server serves.",
    )
    backend: str = Field(
        "local",
        description="Registered language-model backend: `local` (transformers, this process) "
        "or `openai` (an OpenAI-compatible server at `model.base_url`).",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where the local model (and the trainer) runs; auto: cuda if available, else cpu."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Decoding dtype; auto: bfloat16 on a GPU, float32 on CPU (fastest there at "
        "batch 1, measured). Training loads its own fp32 copy (bf16 autocast where faster).",
    )
    threads: int | None = Field(None, ge=1, description="torch threads; None keeps torch's choice.")
    cache_dir: Path | None = Field(
        None, description="Where converted models are cached; default <home>/models."
    )
    max_context: int | None = Field(
        None,
        ge=256,
        description="Cap on the context window; default the model's own (remote: the server's "
        "`max_model_len`, else the trainer's, else 2048).",
    )
    base_url: str | None = Field(
        None,
        description="Remote backends: the API root, as OpenAI clients take it "
        "(`http://127.0.0.1:8000/v1`).",
    )
    api_key: str | None = Field(
        None,
        repr=False,  # a secret: kept out of reprs, logs and public_dict()
        description="Remote backends: sent as `Authorization: Bearer`; None sends none.",
    )
    timeout: float = Field(
        120.0, gt=0.0, description="Remote backends: seconds to connect, and between bytes of an answer."
    )
    max_retries: int = Field(
        2, ge=0, le=10,
        description="Remote backends: retries (exponential backoff) after a refused connection, "
        "a connect timeout, a 429 or a 5xx.",
    )
    trainer: str | None = Field(
        None,
        description="Remote backends: the same base weights as the served model (packaged alias, "
        "Hugging Face id or path), loaded locally to train adapters and count tokens. "
        "None: consolidation is refused.",
    )

    _expand_cache_dir = field_validator("cache_dir")(expand_user)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"model.base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _backend_settings(self) -> ModelConfig:
        if self.backend in LOCAL_BACKENDS:
            given = [f"model.{f}" for f in ("base_url", "api_key", "trainer") if getattr(self, f)]
            if given:
                raise ValueError(
                    f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for remote backends; "
                    f"model.backend is {self.backend!r}, which loads (and trains) the model here. "
                    "Set model.backend = 'openai' to use a server"
                )
        elif self.backend in REMOTE_BACKENDS and self.base_url is None:
            raise ValueError(
                f"model.backend {self.backend!r} needs model.base_url "
                "(e.g. 'http://127.0.0.1:8000/v1')"
            )
        return self


class EmbedderConfig(_Section):
    name: str = Field(
        "all-minilm-l6-v2",
        description="A packaged embedder alias or a sentence-transformers model path.",
    )
    backend: str = "sentence-transformers"
    batch_size: int = Field(64, ge=1)


JOURNAL_SCHEMES = ("postgresql", "postgres")  # what journal.url may name besides the default file


class JournalConfig(_Section):
    """Where the journal lives: the SQLite file in the home (default) or a PostgreSQL server."""

    url: str | None = Field(
        None,
        description="postgresql://user@host:port/db selects a PostgreSQL journal; "
        "unset: SQLite at <home>/journal.sqlite3.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in JOURNAL_SCHEMES:
            raise ValueError(
                f"unknown journal scheme {scheme or value!r}: use postgresql://user@host:port/db, "
                "or leave journal.url unset for the SQLite file in the home"
            )
        return value


class BufferConfig(_Section):
    """The Chroma buffer: embedded (path) or a Chroma server (host), never both."""

    path: Path | None = Field(None, description="Embedded store; default <home>/chroma.")
    host: str | None = Field(None, description="Chroma server host (HttpClient mode).")
    port: int = Field(8000, ge=1, le=65535)
    collection: str = Field(
        "seal_agent_memories",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$",
        description="Chroma collection: 3-512 of [A-Za-z0-9._-], starting and ending alphanumeric.",
    )
    top_k: int = Field(5, ge=1, le=100)
    # MiniLM cosine similarity of six memory questions to their memories:
    # 0.29-0.69; to unrelated memories: up to 0.30 (docs/configuration.md).
    min_similarity: float = Field(
        0.3, ge=-1.0, le=1.0, description="Cosine-similarity floor for retrieval."
    )
    dedup_similarity: float = Field(
        0.95, ge=0.0, le=1.0, description="Hits this similar to a better one are dropped."
    )

    _expand_path = field_validator("path")(expand_user)

    @model_validator(mode="after")
    def _path_or_host(self) -> BufferConfig:
        if self.path is not None and self.host is not None:
            raise ValueError(
                "buffer.path and buffer.host exclude each other: set a path for the "
                "embedded store or a host for a Chroma server, not both"
            )
        return self


class SelfEditConfig(_Section):
    """How interactions become self-edits and probes."""

    formats: list[SelfEditFormat] = Field(
        default_factory=lambda: [
            SelfEditFormat.IMPLICATION,
            SelfEditFormat.REWRITE,
            SelfEditFormat.QA,
        ],
        description="Generated formats (statement and exchange are always kept).",
    )
    samples_per_format: int = Field(1, ge=0, le=16)
    max_items_per_sample: int = Field(8, ge=1, le=64)
    temperature: float = Field(0.8, gt=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(80, ge=8, le=1024)
    probes_per_interaction: int = Field(2, ge=0, le=16)
    check_support: bool = Field(
        True, description="Drop lines whose names and numbers do not occur in the source."
    )
    min_support: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Share of a line's content words that must occur in the source.",
    )
    batch_size: int = Field(
        8, ge=1, le=256, description="Prompts decoded together (bounds memory on long documents)."
    )
    max_source_chars: int = Field(
        1200, ge=100, description="Longer documents are split into chunks of about this size."
    )
    style: Literal["user", "passage"] = Field(
        "user",
        description="Prompts about what the user says (agents), or about passages of text "
        "(documents, third-person conversations: SEAL's knowledge-incorporation prompts).",
    )

    @model_validator(mode="after")
    def _generated_only(self) -> SelfEditConfig:
        kept = {SelfEditFormat.STATEMENT, SelfEditFormat.EXCHANGE, SelfEditFormat.DIRECTIVE}
        bad = [f.value for f in self.formats if f in kept]
        if bad:
            raise ValueError(
                f"formats {bad} cannot be derived for the buffer: list implication, rewrite or "
                "qa (directive self-edits are a consolidation format)"
            )
        return self


class ConsolidationConfig(_Section):
    """The SEAL reward loop and the gate (docs/consolidation.md has the measurements
    behind each default)."""

    mode: Literal["recall", "loglik"] = Field(
        "recall",
        description="recall: memories move into the weights only once greedy answers say them "
        "(memorize.py); loglik: the earlier reward on the gold answer's log-likelihood.",
    )
    k: int = Field(3, ge=1, le=32, description="Candidate self-edits sampled per interaction.")
    recall_k: int = Field(
        1, ge=1, le=8, description="recall mode: candidate training sets per memory (the first: "
        "its question/answer pairs; the others add a sampled SEAL self-edit). Each costs one "
        "training of the whole namespace, plus one for the winners.",
    )
    model_pairs: bool = Field(
        True, description="recall mode: the model writes question/answer pairs too (checked "
        "against the user's words), beside the relation templates.",
    )
    train_questions: int = Field(3, ge=1, le=10, description="recall mode: questions trained per fact.")
    check_questions: int = Field(
        2, ge=1, le=5, description="recall mode: check questions per fact, never trained on."
    )
    recall_lr: float = Field(1e-3, gt=0.0, le=1e-2, description="recall mode: learning rate.")
    recall_epochs: int = Field(8, ge=1, le=50, description="recall mode: epochs before the first check.")
    extra_epochs: int = Field(4, ge=1, le=50, description="recall mode: epochs per further round.")
    max_recall_epochs: int = Field(16, ge=1, le=100, description="recall mode: epoch cap.")
    criterion: float = Field(
        0.9, ge=0.0, le=1.0, description="recall mode: share of train questions said back that ends training."
    )
    recall_batch_tokens: int = Field(512, ge=64, description="recall mode: tokens per batch.")
    replay_general: int = Field(
        48, ge=0, le=88, description="recall mode: general prompts (prompts.REPLAY_PROMPTS) whose "
        "base-model answers are replayed (the pool).",
    )
    replay_ratio: float = Field(
        3.0, ge=0.0, le=100.0, description="recall mode: replay examples per epoch for each "
        "example of the memories; each epoch takes the next ones from the pool, so a small "
        "batch pays for little replay.",
    )
    replay_min: int = Field(8, ge=0, description="recall mode: replay examples per epoch at least.")
    replay_distill: bool = Field(
        True, description="recall mode: replay learns the base model's whole next-token "
        "distribution on its answers (a KL term), not just its greedy tokens "
        "(docs/consolidation.md: general answers kept 11/19 -> 14/19 on unseen questions).",
    )
    verify_share: float = Field(
        1.0, gt=0.0, le=1.0, description="recall mode: share of a memory's check questions "
        "that must be said before it leaves retrieval.",
    )
    leak_retry: bool = Field(
        True, description="recall mode: when a user's answer turns up in a general answer, train "
        "once more without the memories holding it (they stay retrievable and are tried again "
        "next run), and let the gate judge that state; false: the gate refuses the batch.",
    )
    min_general_share: float = Field(
        0.8, ge=0.0, le=1.0, description="recall mode: general answers kept, as a share of the "
        "base model's (the project's target is 0.9; today's recipe keeps about 0.83, "
        "docs/consolidation.md).",
    )
    soften_tries: int = Field(
        3, ge=0, le=8, description="recall mode: when the new state's general answers fall below "
        "min_general_share, its update (every LoRA B) is scaled down, with no retraining: a "
        "bisection between soften_min and 1 for the largest scale that keeps them, this many "
        "tries (docs/consolidation.md). 0: the gate refuses the state as it is.",
    )
    soften_min: float = Field(
        0.5, gt=0.0, lt=1.0, description="recall mode: the smallest update scale soften_tries looks at."
    )
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="Sampling temperature of candidates.")
    formats: list[SelfEditFormat] = Field(
        default_factory=lambda: [
            SelfEditFormat.DIRECTIVE,
            SelfEditFormat.IMPLICATION,
            SelfEditFormat.QA,
        ],
        description="Candidate formats, taken in turn (directive: the model picks its settings).",
    )
    scorer: Literal["loglik", "quality"] = Field(
        "loglik", description="Probe scorer: gold-answer log-likelihood, or greedy-answer quality."
    )
    lora_r: int = Field(16, ge=1, le=256, description="LoRA rank (all seven projections).")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    inner_epochs: int = Field(3, ge=1, le=50, description="Inner-loop epochs (default directive).")
    inner_lr: float = Field(1e-3, gt=0.0, le=1e-2, description="Inner-loop learning rate.")
    update_epochs: int = Field(8, ge=1, le=50, description="Epochs of the adapter update.")
    update_lr: float = Field(1e-3, gt=0.0, le=1e-2, description="Learning rate of the adapter update.")
    batch_tokens: int = Field(2048, ge=64, description="Token budget of one training batch.")
    replay: int = Field(16, ge=0, description="Earlier consolidated self-edits replayed per update.")
    retention_probes: int = Field(16, ge=0, description="Earlier probes checked by the gate.")
    min_recall_gain: float = Field(
        0.0, description="Promote only if the new probes' mean score rises by more than this."
    )
    max_retention_drop: float = Field(
        0.1, ge=0.0, description="...and earlier probes' mean score falls by no more than this."
    )
    max_tries: int = Field(3, ge=1, description="Runs an interaction may fail before it is rejected.")
    max_interactions: int | None = Field(None, ge=1, description="Per run; None: all buffered.")
    drain: bool = Field(
        True,
        description="Consolidated memories leave retrieval (False: hybrid, they stay retrievable).",
    )
    keep_versions: int = Field(5, ge=1, description="Adapter versions kept by `adapters prune`.")
    trigger_interactions: int = Field(
        5, ge=1, description="--watch: consolidate a namespace once it has this many new ones..."
    )
    trigger_idle_seconds: float = Field(
        300.0, ge=0.0, description="...or once it has been idle this long with any buffered."
    )
    watch_interval: float = Field(30.0, gt=0.0, description="--watch: seconds between checks.")
    seed: int | None = Field(0, description="Training seed (None: not seeded).")


class PolicyConfig(_Section):
    """Training the self-edit policy (``seal-agent policy train``; docs/policy.md)."""

    method: Literal["rest-em", "grpo"] = Field(
        "rest-em", description="ReST-EM (keep the best sample per context, fine-tune on it) or "
        "GRPO (weight every sample by its group-relative advantage)."
    )
    rounds: int = Field(2, ge=1, le=100, description="Rounds: sample, reward, update, select.")
    contexts: int = Field(12, ge=1, description="Training contexts per round.")
    select_contexts: int = Field(
        4, ge=1, description="Held-apart contexts on which a new policy must beat the current one."
    )
    k: int = Field(3, ge=2, le=32, description="Self-edits sampled per context.")
    repeats: int = Field(1, ge=1, le=10, description="Inner loops per sample (rewards averaged).")
    temperature: float = Field(0.7, gt=0.0, le=2.0, description="Sampling temperature.")
    formats: list[SelfEditFormat] = Field(
        default_factory=lambda: [SelfEditFormat.IMPLICATION],
        description="Self-edit prompts the policy is trained with, taken in turn.",
    )
    positive_only: bool = Field(
        False, description="ReST-EM: keep a context's best sample only if its reward is positive."
    )
    lora_r: int = Field(16, ge=1, le=256, description="Policy LoRA rank (all seven projections).")
    lora_alpha: int = Field(32, ge=1, description="Policy LoRA alpha.")
    lr: float = Field(3e-4, gt=0.0, le=1e-2, description="Policy update learning rate (SEAL: 3e-4).")
    epochs: int = Field(2, ge=1, le=50, description="Policy update epochs (SEAL: 2; GRPO uses 1).")
    batch_tokens: int = Field(1024, ge=64, description="Token budget of one policy-update batch.")
    max_seq_len: int = Field(1024, ge=64, description="Prompt + completion tokens; prompts are cut from the left.")
    seed: int = Field(0, description="Seeds sampling, inner loops and context choice.")


class AgentConfig(_Section):
    derive: Literal["inline", "background", "off"] = Field(
        "background",
        description="When self-edits are written: inside the turn, on a worker thread "
        "after it, or not at all (then `seal-agent reprocess` does it).",
    )
    retrieval: bool = True
    max_new_tokens: int = Field(96, ge=1, le=4096)
    # Chosen by trying three prompt shapes on six memory questions with the
    # default model (docs/configuration.md): memories in the system message,
    # closed by an instruction to use them, answered 5 of 6.
    system_prompt: str = "You are a helpful assistant. Answer briefly."
    memory_header: str = "What you remember about the user:"
    memory_footer: str = "Answer using these memories."
    backstop: bool = Field(
        True,
        description="Drained memories back the weights: when one matches the message and "
        "the answer through the adapter holds none of its answers, the turn is answered "
        "again with it in the prompt, and it returns to retrieval (docs/consolidation.md).",
    )
    backstop_top_k: int = Field(
        2, ge=1, le=20, description="Drained memories searched per message by the backstop."
    )


class ServeConfig(_Section):
    """`seal-agent serve`, the OpenAI-compatible server (docs/serving.md)."""

    host: str = Field(
        "127.0.0.1",
        description="Address to listen on. Anything but loopback needs `serve.api_keys`.",
    )
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        repr=False,  # secrets: kept out of reprs and logs
        description="API key -> tenant. Empty: no key is asked for, and only loopback is "
        "served. A tenant is the agent id of every namespace its keys reach.",
    )
    model_id: str | None = Field(
        None, description="The model name clients send and `/v1/models` lists; default model.name."
    )
    session_id: str = Field(
        "api", description="Session of turns whose request names none (header `X-Seal-Session`)."
    )

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tenant in value.items():
            if len(key) < 16 or any(c.isspace() for c in key):
                raise ValueError(
                    "an API key needs at least 16 characters and no white space "
                    f"(the key of tenant {tenant!r} does not)"
                )
            check_id(tenant, "tenant")
        return value

    @field_validator("session_id")
    @classmethod
    def _session(cls, value: str) -> str:
        return check_id(value, "session_id")
