"""Hugging Face transformers models, no code: a ``save_pretrained`` directory served by task.

The directory holds ``config.json``, the weights (``model.safetensors``; ``pytorch_model.bin`` pickles only
with pickles allowed) and the tokenizer's files. The task comes from the settings, the config or the
architecture (``hf_tasks``). Settings, all in ``model-settings.json`` ``parameters`` (or MLServer's
``parameters.extra``)::

    task                  text-classification token-classification fill-mask feature-extraction
                          zero-shot-classification text2text-generation text-generation
    dtype                 auto (float32 on CPU; the config's half type, else float16, on CUDA for
                          generation) | float32 | float16 | bfloat16
    max_length            tokens per text for encoders (default: the model's limit); longer texts are cut,
                          as KServe and the pipelines do
    engine                generation: auto (vLLM where it is installed and takes the model, else
                          continuous batching, else generate()) | vllm | continuous | sequential
    return_probabilities  text-classification: output-0 holds probabilities (KServe's flag)
    return_raw_logits     text-classification: output-0 holds logits (KServe's flag)
    pooling, normalize    feature-extraction: mean | cls | max, and L2 normalisation

Device from ``--device`` or the settings' ``device`` (auto | cpu | cuda). The settings' ``max_batch_size``
bounds texts per forward pass for encoders and sequences decoded together for generation.

Inputs: one BYTES tensor of texts, [N] or [N, 1], under any name (KServe's huggingfaceserver takes the
first input whatever its name; the metadata calls it ``text``). Zero-shot takes its labels from a
``candidate_labels`` parameter or BYTES input. Outputs: see ``hf_encoders``; generative models answer
``output-0`` BYTES [N], the completion of each text (request parameters max_tokens, temperature, top_p,
seed, stop). Requests with different texts are batched by ``predict_batch``, the batcher's hook.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from prebake.errors import ConfigError, InvalidInput, InvalidParameter, ModelLoadError
from prebake.runtimes.base import Runtime
from prebake.runtimes.hf_tasks import GENERATIVE, TASKS, detect_task
from prebake.runtimes.registry import missing_framework
from prebake.runtimes.torch import resolve_device
from prebake.types import (
    GenerationChunk,
    GenerationEvent,
    GenerationRequest,
    InferenceRequest,
    InferenceResponse,
    TensorSpec,
    TextGenerator,
)

log = logging.getLogger("prebake.runtimes")

#: Any one of these in the directory is a tokenizer transformers can load.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "source.spm",
)
DTYPES = {
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
}
ENGINES = ("auto", "vllm", "continuous", "sequential")
DEFAULT_MAX_SEQUENCES = 64
#: V2/V1 generation answers this many tokens where the request and the model's generation config say none.
DEFAULT_NEW_TOKENS = 64


class TransformersRuntime(Runtime):
    name = "transformers"
    merges_requests = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task = ""
        self.device = "cpu"
        self.model: Any = None
        self.tokenizer: Any = None
        self.encoder: Any = None
        self.engine: Any = None
        self._default_new_tokens = DEFAULT_NEW_TOKENS
        self._inputs = [TensorSpec("text", "BYTES", [-1])]

    # -- loading ------------------------------------------------------------------------------------------
    def load(self) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise missing_framework("transformers", exc) from None
        directory = Path(self.settings.path)
        params = self.settings.parameters
        self.task = detect_task(directory, _opt_str(params, "task"))
        check_tokenizer(directory)
        self.device = resolve_device(self.settings.device, torch.cuda.is_available())
        dtype = self._dtype(torch, params)
        generative = self.task in GENERATIVE
        engine = str(params.get("engine", "auto"))
        if engine not in ENGINES:
            raise ConfigError(f"{directory}: engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if generative and engine in ("auto", "vllm"):
            from prebake.runtimes import hf_vllm

            if engine == "vllm" or hf_vllm.usable(directory, self.device):
                self._load_tokenizer(transformers, directory)
                self.engine = hf_vllm.VllmEngine(self.settings, directory, self.tokenizer, dtype=str(dtype))
                self.engine.start(self.settings.name)
                self._describe()
                return
        self._load_tokenizer(transformers, directory)
        model_class = getattr(transformers, TASKS[self.task])
        allow_pickle = bool(params.get("allow_pickle", False))
        try:
            model = model_class.from_pretrained(
                str(directory),
                dtype=dtype,
                local_files_only=True,
                use_safetensors=None if allow_pickle else True,
            )
        except OSError as exc:
            if not allow_pickle and (directory / "pytorch_model.bin").is_file():
                raise ModelLoadError(
                    f"{directory} holds its weights only as pytorch_model.bin, a pickle, which runs code when "
                    "loaded: save the model with safetensors (model.save_pretrained(dir), the default), or "
                    "allow pickles (--allow-pickle)"
                ) from None
            raise ModelLoadError(f"cannot load the model in {directory}: {exc}") from None
        self.model = model.to(self.device).eval()
        if generative:
            self.engine = self._generation_engine(engine)
            self.engine.start(self.settings.name)
            self._default_new_tokens = _configured_new_tokens(self.model) or DEFAULT_NEW_TOKENS
        else:
            self.encoder = self._encoder(directory, params)
        self._describe()

    def _load_tokenizer(self, transformers: Any, directory: Path) -> None:
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load the tokenizer in {directory}: {type(exc).__name__}: {exc}"
            ) from exc
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token  # padding is masked; any id will do

    def _dtype(self, torch: Any, params: dict[str, Any]) -> Any:
        name = str(params.get("dtype", "auto")).lower()
        if name == "auto":
            if self.device != "cuda":
                return torch.float32
            if self.task not in GENERATIVE:
                return torch.float32  # KServe's choice for encoders: results as on CPU
            from prebake.runtimes.hf_tasks import read_config

            configured = read_config(Path(self.settings.path))
            wanted = str(configured.get("dtype") or configured.get("torch_dtype") or "float16")
            return getattr(torch, DTYPES.get(wanted, "float16"))
        if name not in DTYPES:
            raise ConfigError(f"dtype must be auto, {', '.join(DTYPES)}; not {name!r}")
        if self.device == "cpu" and DTYPES[name] == "float16":
            log.warning(
                "model %r: float16 on CPU is slow and often unsupported; bfloat16 or float32 suit CPUs",
                self.settings.name,
            )
        return getattr(torch, DTYPES[name])

    def _generation_engine(self, engine: str) -> Any:
        from prebake.runtimes.hf_generate import ContinuousEngine, SequentialEngine
        from prebake.runtimes.hf_prompts import Prompter, context_length, end_token_ids

        limit = context_length(self.model.config, self.tokenizer)
        prompter = Prompter(self.tokenizer, limit, name=self.settings.name)
        ends = end_token_ids(self.model, self.tokenizer)
        common = {"device": self.device}
        if engine in ("auto", "continuous") and ContinuousEngine.supports(self.model):
            sequences = self.settings.max_batch_size or DEFAULT_MAX_SEQUENCES
            return ContinuousEngine(
                self.model, self.tokenizer, prompter, ends, max_sequences=sequences, **common
            )
        if engine == "continuous":
            raise ConfigError(
                f"model {self.settings.name!r}: its cache cannot be batched continuously "
                "(encoder-decoder, sliding-window or recurrent); use engine 'auto' or 'sequential'"
            )
        return SequentialEngine(self.model, self.tokenizer, prompter, ends, **common)

    def _encoder(self, directory: Path, params: dict[str, Any]) -> Any:
        from prebake.runtimes.hf_encoders import DEFAULT_OUTPUTS, KNOWN_OUTPUTS, EncoderTask
        from prebake.runtimes.hf_prompts import context_length

        declared = [spec.name for spec in self.settings.outputs]
        unknown = [n for n in declared if n not in KNOWN_OUTPUTS[self.task]]
        if unknown:
            raise ConfigError(
                f"{directory}: a {self.task} model has no output {unknown[0]!r}; it gives "
                f"{', '.join(KNOWN_OUTPUTS[self.task])}"
            )
        limit = int(params.get("max_length") or _encoder_length(self.model.config, self.tokenizer, directory))
        return EncoderTask(
            self.task,
            self.model,
            self.tokenizer,
            device=self.device,
            directory=directory,
            max_length=min(limit, context_length(self.model.config, self.tokenizer)),
            outputs=declared or DEFAULT_OUTPUTS[self.task],
            parameters=params,
            max_group=self.settings.max_batch_size or 64,
        )

    def _describe(self) -> None:
        inputs = [TensorSpec("text", "BYTES", [-1])]
        if self.task == "zero-shot-classification":
            inputs.append(TensorSpec("candidate_labels", "BYTES", [-1]))
        self.output_specs = [TensorSpec(name, "BYTES", [-1]) for name in ("output-0",)]
        if self.encoder is not None:
            self.output_specs = [_output_spec(self.task, name) for name in self.encoder.outputs]
        self._inputs = inputs
        engine = getattr(self.engine, "kind", "") if self.engine is not None else ""
        log.info(
            "model %r: transformers %s on %s%s",
            self.settings.name,
            self.task,
            self.device,
            f", {engine} generation" if engine else "",
        )

    def metadata(self) -> Any:
        meta = super().metadata()
        if not self.settings.inputs:
            meta.inputs = list(self._inputs)
        return meta

    def platform(self) -> str:
        return f"transformers_{self.task.replace('-', '_')}" if self.task else "transformers"

    def generator(self) -> TextGenerator | None:
        return self.engine if self.engine is not None else None

    def unload(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        self.engine = self.encoder = self.model = None

    # -- predict ------------------------------------------------------------------------------------------
    def predict(self, request: InferenceRequest) -> InferenceResponse:
        return self.predict_batch([request])[0]

    def predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        texts = [self._texts(request) for request in requests]
        if self.engine is not None:
            return [self._complete(r, t) for r, t in zip(requests, texts, strict=True)]
        options = [self._options(request) for request in requests]
        return [
            InferenceResponse(outputs=out, parameters={"prompt_tokens": tokens})
            for out, tokens in self.encoder.run(texts, options)
        ]

    def _texts(self, request: InferenceRequest) -> list[str]:
        texts = [n for n in request.inputs if n != "candidate_labels"]
        if len(texts) != 1:
            raise InvalidInput(
                f"a {self.task} model takes one BYTES tensor of texts (and for zero-shot, candidate_labels); "
                f"got {len(texts)}: {', '.join(texts) or 'none'}"
            )
        return decode_texts(texts[0], request.inputs[texts[0]])

    def _options(self, request: InferenceRequest) -> dict[str, Any]:
        from prebake.runtimes.hf_encoders import zero_shot_options

        options: dict[str, Any] = {"outputs": tuple(request.outputs or ())}
        if self.task == "zero-shot-classification":
            labels = request.inputs.get("candidate_labels")
            given = decode_texts("candidate_labels", labels) if labels is not None else None
            options.update(zero_shot_options(request.parameters, given))
        return options

    def _complete(self, request: InferenceRequest, texts: list[str]) -> InferenceResponse:
        """V2/V1 generation: each text's completion, through the model's engine (on this scoring thread,
        which waits; texts of one batch run in the engine together)."""
        base = generation_parameters(request.parameters, self._default_new_tokens)
        waits = []
        for text in texts:
            gather = _Gather()
            cancel = self.engine.submit(_replace(base, prompt=text), gather)
            waits.append((gather, cancel))
        completions, prompt_tokens, completion_tokens = [], 0, 0
        for gather, cancel in waits:
            try:
                text, used, made = gather.wait()
            finally:
                cancel()
            completions.append(text)
            prompt_tokens += used
            completion_tokens += made
        out = np.empty(len(completions), dtype=object)
        out[:] = completions
        return InferenceResponse(
            outputs={"output-0": out},
            parameters={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        )


class _Gather:
    """A sink that collects one request's text on a scoring thread."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def __call__(self, event: GenerationEvent) -> None:
        if isinstance(event, GenerationChunk):
            self.parts.append(event.text)
            self.prompt_tokens = event.prompt_tokens
            self.completion_tokens = event.completion_tokens
        else:
            self.error = event
            self.done.set()

    def wait(self) -> tuple[str, int, int]:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return "".join(self.parts), self.prompt_tokens, self.completion_tokens


def generation_parameters(parameters: dict[str, Any], default_tokens: int) -> GenerationRequest:
    """A GenerationRequest from V2/V1 request parameters (max_tokens or max_new_tokens, temperature,
    top_p, seed, stop); greedy unless a temperature is given, as generate() is by default."""
    tokens = parameters.get("max_tokens", parameters.get("max_new_tokens", default_tokens))
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise InvalidParameter("'max_tokens' must be a whole number >= 1", param="max_tokens")
    temperature = parameters.get("temperature", 0.0)
    top_p = parameters.get("top_p", 1.0)
    for key, value, low, high in (("temperature", temperature, 0.0, 2.0), ("top_p", top_p, 0.0, 1.0)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidParameter(f"'{key}' must be a number from {low:g} to {high:g}", param=key)
    seed = parameters.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidParameter("'seed' must be a whole number", param="seed")
    stop = parameters.get("stop", [])
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidParameter("'stop' must be a string or a list of strings", param="stop")
    return GenerationRequest(
        max_tokens=tokens, temperature=float(temperature), top_p=float(top_p), seed=seed, stop=stop
    )


def _replace(request: GenerationRequest, **changes: Any) -> GenerationRequest:
    import dataclasses

    return dataclasses.replace(request, **changes)


def decode_texts(name: str, array: np.ndarray) -> list[str]:
    """The texts of a BYTES tensor ([N] or [N, 1]); InvalidInput naming the input for anything else."""
    if array.dtype != object and array.dtype.kind not in ("U", "S"):
        raise InvalidInput(f"input '{name}' must be BYTES (texts), not {array.dtype}", input=name)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise InvalidInput(
            f"input '{name}' must be texts of shape [N] or [N, 1], not {list(array.shape)}", input=name
        )
    texts = []
    for index, value in enumerate(array.tolist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"input '{name}': text {index} is not UTF-8", input=name) from None
        if not isinstance(value, str):
            raise InvalidInput(f"input '{name}': element {index} is not a text", input=name)
        texts.append(value)
    return texts


def check_tokenizer(directory: Path) -> None:
    """ModelLoadError where the directory holds no tokenizer (the model alone cannot take text)."""
    if any((directory / name).is_file() for name in TOKENIZER_FILES):
        return
    raise ModelLoadError(
        f"{directory} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save it beside the model with "
        "tokenizer.save_pretrained(directory)"
    )


def _encoder_length(config: Any, tokenizer: Any, directory: Path) -> int:
    """Tokens per text: sentence-transformers' max_seq_length, else the tokenizer's, else the config's
    position limit (RoBERTa-like models offset positions by the padding id, so two fewer)."""
    import json

    sbert = directory / "sentence_bert_config.json"
    if sbert.is_file():
        try:
            value = json.loads(sbert.read_bytes()).get("max_seq_length")
        except (OSError, ValueError):
            value = None
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10_000_000:
        return value
    limit = getattr(config, "max_position_embeddings", None) or 512
    if "roberta" in str(getattr(config, "model_type", "")):
        limit -= (getattr(config, "pad_token_id", 1) or 1) + 1
    return int(limit)


def _configured_new_tokens(model: Any) -> int | None:
    config = getattr(model, "generation_config", None)
    value = getattr(config, "max_new_tokens", None)
    return value if isinstance(value, int) and value > 0 else None


def _output_spec(task: str, name: str) -> TensorSpec:
    specs = {
        "output-0": {
            "text-classification": ("INT64", [-1]),
            "token-classification": ("INT64", [-1, -1]),
            "fill-mask": ("BYTES", [-1]),
            "feature-extraction": ("FP32", [-1, -1]),
            "zero-shot-classification": ("BYTES", [-1]),
        }[task],
        "label": ("BYTES", [-1]),
        "score": ("FP32", [-1]),
        "probabilities": ("FP32", [-1, -1]),
        "logits": ("FP32", [-1, -1, -1] if task == "token-classification" else [-1, -1]),
        "entities": ("BYTES", [-1]),
        "token": ("INT64", [-1]),
        "sequence": ("BYTES", [-1]),
        "labels": ("BYTES", [-1, -1]),
        "scores": ("FP32", [-1, -1]),
    }
    datatype, shape = specs[name]
    return TensorSpec(name, datatype, shape)


def _opt_str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"'{key}' must be a string, not {value!r}")
    return value
