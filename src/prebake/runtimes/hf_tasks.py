"""Which task a saved Hugging Face model serves, from its settings or its ``config.json``.

Nothing here imports transformers: discovery uses it to recognise a ``save_pretrained`` directory, and
the runtime to pick the model class. The order of precedence:

1. ``"task"`` in the model's settings (``model-settings.json`` ``parameters``, MLServer's
   ``parameters.extra.task`` too);
2. ``"task"`` or ``"pipeline_tag"`` in ``config.json`` (the hub's model card tag, where a tool wrote it);
3. the architecture in ``config.json`` ``architectures``, as KServe's huggingfaceserver reads it
   (``...ForSequenceClassification`` is text-classification, ``...ForCausalLM`` text-generation, ...);
   a sentence-transformers directory (``modules.json``) serves sentence embeddings.

Task names are the pipeline names of transformers; KServe's names and the pipelines' aliases are taken too.

Example::

    detect_task(Path("my-bert"), None)   # "text-classification"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prebake.errors import ConfigError

CONFIG_FILE = "config.json"
#: sentence-transformers writes this beside the transformer's own files.
SENTENCE_MODULES = "modules.json"

#: task -> the transformers auto class that loads its model.
TASKS: dict[str, str] = {
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "fill-mask": "AutoModelForMaskedLM",
    "feature-extraction": "AutoModel",
    "zero-shot-classification": "AutoModelForSequenceClassification",
    "text2text-generation": "AutoModelForSeq2SeqLM",
    "text-generation": "AutoModelForCausalLM",
}
GENERATIVE = ("text-generation", "text2text-generation")

ALIASES = {
    "sentiment-analysis": "text-classification",
    "sequence_classification": "text-classification",
    "ner": "token-classification",
    "token_classification": "token-classification",
    "fill_mask": "fill-mask",
    "embeddings": "feature-extraction",
    "embedding": "feature-extraction",
    "text_embedding": "feature-extraction",
    "sentence-similarity": "feature-extraction",
    "sentence-embeddings": "feature-extraction",
    "zero_shot_classification": "zero-shot-classification",
    "summarization": "text2text-generation",
    "translation": "text2text-generation",
    "text2text_generation": "text2text-generation",
    "text_generation": "text-generation",
}

#: Architecture name endings -> task, tried in order (KServe's table, where it has the task).
ARCHITECTURE_SUFFIXES = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("MTModel", "text2text-generation"),
    ("EncoderDecoderModel", "text2text-generation"),
    ("Model", "feature-extraction"),
)


def task_name(name: str, *, where: str) -> str:
    """The canonical name of task ``name``; ConfigError naming the tasks served for one that is not."""
    key = name.strip().lower()
    task = ALIASES.get(key, key)
    if task not in TASKS:
        raise ConfigError(
            f"{where}: unknown task {name!r}; prebake serves {', '.join(TASKS)} "
            "(set 'task' in the model's model-settings.json parameters)"
        )
    return task


def read_config(directory: Path) -> dict[str, Any]:
    """The model's ``config.json``; ConfigError where it is unreadable."""
    path = directory / CONFIG_FILE
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the model's config: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model config holds one JSON object")
    return data


#: Weights that ``save_pretrained`` writes (safetensors by default; sharded ones with an index).
WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def is_transformers_dir(directory: Path) -> bool:
    """True for a directory that ``save_pretrained`` (or sentence-transformers' ``save``) wrote: weights
    and a ``config.json`` naming a model type or architecture (an ONNX export beside a config is not)."""
    path = directory / CONFIG_FILE
    if not path.is_file() or not any((directory / name).is_file() for name in WEIGHTS):
        return False
    try:
        with path.open("rb") as f:
            head = f.read(65536)
    except OSError:
        return False
    return b'"model_type"' in head or b'"architectures"' in head


def detect_task(directory: Path, configured: str | None) -> str:
    """The task to serve the model in ``directory`` with (see the module docstring for the order)."""
    if configured:
        return task_name(configured, where=str(directory))
    config = read_config(directory)
    for key in ("task", "pipeline_tag"):
        value = config.get(key)
        if isinstance(value, str) and value:
            return task_name(value, where=str(directory / CONFIG_FILE))
    if (directory / SENTENCE_MODULES).is_file():
        return "feature-extraction"
    architectures = config.get("architectures") or []
    for architecture in architectures if isinstance(architectures, list) else []:
        for suffix, task in ARCHITECTURE_SUFFIXES:
            if isinstance(architecture, str) and architecture.endswith(suffix):
                return task
    raise ConfigError(
        f"{directory}: cannot tell the task from config.json (architectures: {architectures or 'none'}); "
        f"set 'task' in its model-settings.json parameters to one of {', '.join(TASKS)}"
    )
