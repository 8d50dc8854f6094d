"""The local language model: any transformers causal LM, the packaged
SmolLM2-135M-Instruct by default.

Decoding runs in fp32 on CPU by default: on 2 CPU cores bf16 was measured
*slower* for batch-1 decoding although bf16 matrix products are faster
(FINDINGS); on a GPU ``dtype = "auto"`` decodes in bf16. Training
(consolidation) reuses ``.tokenizer`` and loads a second fp32 copy of the base
through :meth:`TransformersLM.load_base`; :class:`LocalBase` is that
capability alone, for a remote backend's ``model.trainer``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from seal_agent.errors import InputTooLongError, ModelLoadError
from seal_agent.models.base import GREEDY, AdapterRef, GenerationParams, cut_at_stops
from seal_agent.models.packaged import prepare_language_model, resolve_language_model
from seal_agent.text import normalize
from seal_agent.types import Message

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig

__all__ = ["LocalBase", "TransformersLM", "load_base_model"]


def _load_tokenizer(name: str, source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ModelLoadError(
            f"could not load the tokenizer of model {name!r} from {source}: {exc}. Offline, use "
            "a local folder, a .gguf file, or the packaged default 'smollm2-135m-instruct'"
        ) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(
            f"model {name!r} has no chat template; seal-agent needs an instruct/chat model"
        )
    return tokenizer


def load_base_model(source: str, device: str) -> Any:
    """A fresh fp32 copy of the base on ``device``, for a LoRA trainer.

    fp32 master weights on every device: training autocasts its products to
    bf16 where that is faster, and LoRA weights and optimizer state stay fp32.
    On CPU this is exactly the load the trainer always did.
    """
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(source)
    return model if device == "cpu" else model.to(device)


class LocalBase:
    """The trainable capability alone: a tokenizer, a source folder, a device.

    A remote backend's ``model.trainer``: the served model's base weights,
    loaded here only when something trains (no decoding copy is kept).
    """

    def __init__(self, name: str, source: str, *, device: str = "cpu") -> None:
        self.name = name
        self.source = source
        self._device = device
        self.tokenizer = _load_tokenizer(name, source)

    @classmethod
    def from_config(cls, config: SealAgentConfig) -> LocalBase:
        from seal_agent.errors import ConfigError
        from seal_agent.models import resolve_device

        if config.model.trainer is None:
            raise ConfigError("model.trainer is not set")
        resolved = resolve_language_model(config.model.trainer)
        source = prepare_language_model(resolved, config.model_cache_dir)
        return cls(config.model.trainer, source, device=resolve_device(config.model.device))

    @property
    def device(self) -> str:
        return self._device

    @property
    def context_length(self) -> int:
        from transformers import AutoConfig

        own = getattr(AutoConfig.from_pretrained(self.source), "max_position_embeddings", None)
        return int(own or 2048)

    def load_base(self) -> Any:
        return load_base_model(self.source, self._device)


class TransformersLM:
    """A transformers model and its tokenizer, loaded once per process."""

    backend = "local"

    def __init__(
        self,
        name: str,
        source: str,
        *,
        dtype: str = "float32",
        threads: int | None = None,
        max_context: int | None = None,
        device: str = "cpu",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.source = source
        self._device = device
        self.tokenizer = _load_tokenizer(name, source)
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
        except OSError as exc:
            raise ModelLoadError(
                f"could not load model {name!r} from {source}: {exc}. Offline, use a local "
                "folder, a .gguf file, or the packaged default 'smollm2-135m-instruct'"
            ) from exc
        self.model = model if device == "cpu" else model.to(device)
        self.model.eval()
        own = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        self._context_length = min(own, max_context) if max_context else own
        # Sampling seeds touch torch's global RNG; keep seeded calls apart.
        self._rng_lock = threading.Lock()
        # One decoding at a time per instance: adapters are switched in place.
        self._gen_lock = threading.RLock()
        self._peft: Any = None
        self._adapter_lru: list[str] = []
        self.max_loaded_adapters = 4

    @classmethod
    def from_config(cls, config: SealAgentConfig) -> TransformersLM:
        from seal_agent.models import resolve_device, resolve_dtype

        resolved = resolve_language_model(config.model.name)
        source = prepare_language_model(resolved, config.model_cache_dir)
        device = resolve_device(config.model.device)
        return cls(
            config.model.name,
            source,
            dtype=resolve_dtype(config.model.dtype, device),
            threads=config.model.threads,
            max_context=config.model.max_context,
            device=device,
        )

    # -- the trainable capability (models.base.TrainableBase) ----------------------------
    @property
    def device(self) -> str:
        return self._device

    def load_base(self) -> Any:
        """A second copy of the base (fast from the safetensors cache), so this one keeps
        serving while the copy trains."""
        return load_base_model(self.source, self._device)

    # -- sizes ---------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def format_chat(self, messages: Sequence[Message]) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                [m.model_dump() for m in messages], tokenize=False, add_generation_prompt=True
            )
        )

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return self.count_tokens(self.format_chat(messages))

    # -- adapters --------------------------------------------------------------
    supports_adapters = True

    @contextmanager
    def _using(self, adapter: AdapterRef | None) -> Iterator[Any]:
        """The model to decode with: the base, or the base with one LoRA adapter.

        PEFT injects adapters into the loaded modules, so switching is cheap
        (no reload) but global to this instance: callers hold ``_gen_lock``.
        """
        if adapter is None:
            if self._peft is None:
                yield self.model
            else:
                with self._peft.disable_adapter():
                    yield self._peft
            return
        peft_model = self._load_adapter(adapter)
        peft_model.set_adapter(adapter.key)
        yield peft_model

    def _load_adapter(self, adapter: AdapterRef) -> Any:
        from peft import PeftModel

        if self._peft is None:
            self._peft = PeftModel.from_pretrained(
                self.model, adapter.path, adapter_name=adapter.key, is_trainable=False
            )
            self._peft.eval()
        elif adapter.key not in self._peft.peft_config:
            self._peft.load_adapter(adapter.path, adapter_name=adapter.key, is_trainable=False)
        self._adapter_lru = [k for k in self._adapter_lru if k != adapter.key] + [adapter.key]
        while len(self._adapter_lru) > self.max_loaded_adapters:
            old = self._adapter_lru.pop(0)
            self._peft.delete_adapter(old)
        return self._peft

    # -- generation ------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> str:
        return self._generate([self.format_chat(messages)], params, adapter)[0]

    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> Iterator[str]:
        """Decode one answer and yield its text as it comes (raw, untrimmed).

        Generation runs on a thread that feeds transformers'
        ``TextIteratorStreamer``.  Closing the iterator early (the reader
        stopped) cancels decoding at the next token; an error in decoding is
        re-raised here.
        """
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        tok = self.tokenizer
        enc = tok([self.format_chat(messages)], return_tensors="pt", add_special_tokens=False)
        enc = enc.to(self.model.device)
        prompt_len = enc["input_ids"].shape[1]
        kwargs = _generate_kwargs(tok, params, self.context_length - prompt_len, prompt_len)
        cancel = threading.Event()
        criteria = _StopCriteria(tok, prompt_len, params.stop, params.stop_on_repeated_line, cancel)
        kwargs["stopping_criteria"] = StoppingCriteriaList([criteria])
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            import torch

            try:
                with self._gen_lock, self._using(adapter) as model, torch.inference_mode():
                    if params.seed is not None and not params.greedy:
                        with self._rng_lock:
                            torch.manual_seed(params.seed)
                            model.generate(**enc, **kwargs, streamer=streamer)
                    else:
                        model.generate(**enc, **kwargs, streamer=streamer)
            except BaseException as exc:  # handed to the reader below
                failure.append(exc)
                streamer.end()  # type: ignore[no-untyped-call]  # generate() ends the stream only when it returns

        thread = threading.Thread(target=run, name="seal-agent-stream", daemon=True)
        thread.start()
        try:
            for text in streamer:
                if text:
                    yield text
        finally:
            cancel.set()
            thread.join()
        if failure:
            raise failure[0]

    def complete(
        self,
        prompts: Sequence[str],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> list[str]:
        return self._generate(list(prompts), params, adapter)

    def _generate(
        self, prompts: list[str], params: GenerationParams, adapter: AdapterRef | None
    ) -> list[str]:
        with self._gen_lock, self._using(adapter) as model:
            return generate(
                model, self.tokenizer, prompts, params, self.context_length, self._rng_lock
            )


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    params: GenerationParams,
    context_length: int,
    rng_lock: threading.Lock | None = None,
) -> list[str]:
    """Batched decoding of raw prompts with any causal LM (base or PEFT-wrapped)."""
    import torch
    from transformers import StoppingCriteriaList

    if not prompts:
        return []
    tok = tokenizer
    tok.padding_side = "left"  # batched decoding needs the prompts right-aligned
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = enc.to(model.device)  # a no-op on CPU
    prompt_len = enc["input_ids"].shape[1]
    kwargs = _generate_kwargs(tok, params, context_length - prompt_len, prompt_len)
    criteria = _StopCriteria(tok, prompt_len, params.stop, params.stop_on_repeated_line)
    if criteria.active:
        kwargs["stopping_criteria"] = StoppingCriteriaList([criteria])
    with torch.inference_mode():
        if params.seed is not None and not params.greedy:
            with rng_lock or threading.Lock():
                torch.manual_seed(params.seed)
                out = model.generate(**enc, **kwargs)
        else:
            out = model.generate(**enc, **kwargs)
    texts = tok.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
    return [cut_at_stops(t, params.stop, params.stop_on_repeated_line) for t in texts]


def _generate_kwargs(
    tokenizer: Any, params: GenerationParams, budget: int, prompt_len: int
) -> dict[str, Any]:
    if budget < 1:
        raise InputTooLongError(
            f"prompt of {prompt_len} tokens leaves no room in a "
            f"{prompt_len + budget}-token context"
        )
    kwargs: dict[str, Any] = {
        "max_new_tokens": min(params.max_new_tokens, budget),
        "pad_token_id": tokenizer.pad_token_id,
        "do_sample": not params.greedy,
    }
    if not params.greedy:
        kwargs["temperature"] = params.temperature
        kwargs["top_p"] = params.top_p
    return kwargs


class _StopCriteria:
    """Stops each row of a batch at a stop string or at its first repeated line.

    transformers' own ``stop_strings`` cannot express "repeated a line", and a
    small model's greedy loop ("- The user has a beagle named Biscuit." x 10)
    otherwise burns the whole token budget.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_len: int,
        stops: Sequence[str],
        repeated: bool,
        cancel: threading.Event | None = None,
    ):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stops = tuple(stops)
        self.repeated = repeated
        self.cancel = cancel  # set by a stream's reader that stopped reading
        self.active = bool(self.stops) or repeated

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.cancel is not None and self.cancel.is_set():
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.active:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [self._done(t) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _done(self, text: str) -> bool:
        if any(stop in text for stop in self.stops):
            return True
        if self.repeated and "\n" in text:
            lines = [normalize(x.lstrip("-*• ")) for x in text.split("\n")[:-1]]
            lines = [x for x in lines if x]
            return len(lines) != len(set(lines))
        return False
