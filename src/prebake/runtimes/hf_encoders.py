"""The encoder tasks of the transformers runtime: texts in, one padded forward pass per group of texts
of similar length, named arrays out.

Texts from every request of a batch are tokenized once, sorted by length and cut into groups whose
padding stays small (``group_by_length``), so a 5-token text never pays for a 500-token one; each
group is one forward pass, and results go back to their requests in order. With attention masks,
a text's result does not depend on the texts it was batched with (up to float rounding, tested).

Outputs, per task (``output-0`` is what KServe's huggingfaceserver answers; the others by name)::

    text-classification       output-0 INT64 [N] class index; label BYTES [N]; score FP32 [N];
                              probabilities FP32 [N, C]; logits FP32 [N, C]
    token-classification      output-0 INT64 [N, T] class per token (-1 past a text's end);
                              entities BYTES [N] (JSON: entity, score, index, word, start, end, as the
                              pipeline's); logits FP32 [N, T, C]
    fill-mask                 output-0 BYTES [N] the predicted token(s); score FP32 [N]; token INT64 [N];
                              sequence BYTES [N] the text with its mask filled
    feature-extraction        output-0 FP32 [N, H] pooled, L2-normalised (sentence-transformers' own
                              pooling and normalisation where the directory has them)
    zero-shot-classification  labels BYTES [N, K] best first; scores FP32 [N, K]; output-0 BYTES [N]
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prebake.errors import ConfigError, InvalidInput, InvalidParameter

#: Per task: the outputs answered when the model's settings declare none, and every output it can give.
DEFAULT_OUTPUTS: dict[str, tuple[str, ...]] = {
    "text-classification": ("output-0",),
    "token-classification": ("output-0",),
    "fill-mask": ("output-0",),
    "feature-extraction": ("output-0",),
    "zero-shot-classification": ("labels", "scores"),
}
KNOWN_OUTPUTS: dict[str, tuple[str, ...]] = {
    "text-classification": ("output-0", "label", "score", "probabilities", "logits"),
    "token-classification": ("output-0", "entities", "logits"),
    "fill-mask": ("output-0", "score", "token", "sequence"),
    "feature-extraction": ("output-0",),
    "zero-shot-classification": ("labels", "scores", "output-0"),
}
DEFAULT_HYPOTHESIS = "This example is {}."
#: A group closes when its padding would pass this share of its real tokens (plus a little slack).
PADDING_SHARE = 0.25
PADDING_SLACK = 16


@dataclass(slots=True)
class Item:
    """One sequence to encode: a text (or, for zero-shot, a text and one hypothesis)."""

    request: int
    row: int
    text: str
    pair: str | None = None
    ids: list[int] = field(default_factory=list)
    type_ids: list[int] | None = None
    offsets: list[tuple[int, int]] | None = None
    result: Any = None


def group_by_length(lengths: Sequence[int], *, max_items: int, max_tokens: int) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length: sorted, a group closes when padding to its
    longest would pass ``PADDING_SHARE`` of its real tokens, or at ``max_items`` / ``max_tokens``.

    >>> group_by_length([3, 50, 4, 52, 3], max_items=8, max_tokens=4096)
    [[0, 4, 2], [1, 3]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        length = lengths[index]
        padded = length * (len(current) + 1)  # sorted: this one is the group's longest
        if current and (
            padded - (real + length) > PADDING_SHARE * (real + length) + PADDING_SLACK
            or len(current) >= max_items
            or padded > max_tokens
        ):
            groups.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        groups.append(current)
    return groups


class EncoderTask:
    """Tokenize, group, forward and shape the outputs of one encoder model (on a scoring thread)."""

    def __init__(
        self,
        task: str,
        model: Any,
        tokenizer: Any,
        *,
        device: str,
        directory: Path,
        max_length: int,
        outputs: Sequence[str],
        parameters: dict[str, Any],
        max_group: int,
    ) -> None:
        import torch

        self.torch = torch
        self.task = task
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.outputs = tuple(outputs)
        self.max_group = max_group
        self.max_group_tokens = max(max_length, 16384)
        config = model.config
        self.id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
        self.return_probabilities = bool(parameters.get("return_probabilities", False))
        self.return_raw_logits = bool(parameters.get("return_raw_logits", False))
        self.sigmoid = getattr(config, "problem_type", None) == "multi_label_classification" or (
            task == "text-classification" and getattr(config, "num_labels", 2) == 1
        )
        self.special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.pooling, self.normalize = ("mean", True)
        if task == "feature-extraction":
            self.pooling, self.normalize = sentence_pooling(directory, parameters)
        if task == "fill-mask" and tokenizer.mask_token_id is None:
            raise ConfigError(f"{directory}: a fill-mask model needs a tokenizer with a mask token")
        self.entail, self.contradict = (-1, -1)
        if task == "zero-shot-classification":
            self.entail, self.contradict = nli_labels(self.id2label, directory)
        self.offsets = task == "token-classification" and bool(getattr(tokenizer, "is_fast", False))

    # -- the batch hook -----------------------------------------------------------------------------------
    def run(
        self, texts: list[list[str]], options: list[dict[str, Any]]
    ) -> list[tuple[dict[str, np.ndarray], int]]:
        """The outputs for each request's texts, and the tokens they took (``options``: zero-shot labels
        and the like, per request)."""
        items: list[Item] = []
        for r, rows in enumerate(texts):
            if self.task == "zero-shot-classification":
                labels, template = options[r]["labels"], options[r]["template"]
                items.extend(
                    Item(r, i, text, template.format(label))
                    for i, text in enumerate(rows)
                    for label in labels
                )
            else:
                items.extend(Item(r, i, text) for i, text in enumerate(rows))
        self._tokenize(items)
        lengths = [len(item.ids) for item in items]
        for group in group_by_length(lengths, max_items=self.max_group, max_tokens=self.max_group_tokens):
            self._forward([items[i] for i in group])
        per_request: list[list[Item]] = [[] for _ in texts]
        for item in items:
            per_request[item.request].append(item)
        return [
            (self._outputs(mine, len(texts[r]), options[r]), sum(len(item.ids) for item in mine))
            for r, mine in enumerate(per_request)
        ]

    def _tokenize(self, items: list[Item]) -> None:
        if not items:
            return
        firsts = [item.text for item in items]
        pairs = [item.pair for item in items] if items[0].pair is not None else None
        encoded = self.tokenizer(
            firsts,
            pairs,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=self.offsets,
            return_attention_mask=False,
        )
        type_ids = encoded.get("token_type_ids")
        for index, item in enumerate(items):
            item.ids = list(encoded["input_ids"][index])
            if type_ids is not None:
                item.type_ids = list(type_ids[index])
            if self.offsets:
                item.offsets = [tuple(o) for o in encoded["offset_mapping"][index]]
            if self.task == "fill-mask" and self.tokenizer.mask_token_id not in item.ids:
                raise InvalidInput(
                    f"text {item.row} has no mask token {self.tokenizer.mask_token!r} (or it was cut at the "
                    f"model's {self.max_length} tokens); a fill-mask model fills the text's "
                    f"{self.tokenizer.mask_token}"
                )

    def _forward(self, group: list[Item]) -> None:
        torch = self.torch
        width = max(len(item.ids) for item in group)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        types = torch.zeros((len(group), width), dtype=torch.long) if group[0].type_ids is not None else None
        for row, item in enumerate(group):
            ids[row, : len(item.ids)] = torch.tensor(item.ids)
            mask[row, : len(item.ids)] = 1
            if types is not None and item.type_ids is not None:
                types[row, : len(item.ids)] = torch.tensor(item.type_ids)
        inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        if types is not None:
            inputs["token_type_ids"] = types.to(self.device)
        with torch.inference_mode():
            out = self.model(**inputs)
        if self.task == "feature-extraction":
            pooled = pool(torch, out.last_hidden_state, inputs["attention_mask"], self.pooling)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            values = pooled.float().cpu().numpy()
            for row, item in enumerate(group):
                item.result = values[row]
            return
        logits = out.logits.float().cpu().numpy()
        for row, item in enumerate(group):
            if self.task == "token-classification":
                item.result = logits[row, : len(item.ids)]
            elif self.task == "fill-mask":
                where = [i for i, t in enumerate(item.ids) if t == self.tokenizer.mask_token_id]
                item.result = (where, logits[row, where])
            else:
                item.result = logits[row]

    # -- shaping ----------------------------------------------------------------------------------------
    def _outputs(self, items: list[Item], rows: int, options: dict[str, Any]) -> dict[str, np.ndarray]:
        wanted = set(self.outputs) | set(options.get("outputs", ()))
        shape = _SHAPERS[self.task]
        outputs = shape(self, items, rows, options, wanted)
        return {
            name: outputs[name] for name in KNOWN_OUTPUTS[self.task] if name in wanted and name in outputs
        }

    def _classification(
        self, items: list[Item], rows: int, options: dict[str, Any], wanted: set[str]
    ) -> dict[str, np.ndarray]:
        logits = np.stack([item.result for item in items]) if items else np.zeros((0, len(self.id2label)))
        probs = _sigmoid(logits) if self.sigmoid else _softmax(logits)
        best = probs.argmax(axis=1).astype(np.int64)
        primary: np.ndarray = best
        if self.return_raw_logits:
            primary = logits.astype(np.float32)
        elif self.return_probabilities:
            primary = probs.astype(np.float32)
        return {
            "output-0": primary,
            "label": _strings(self.id2label.get(int(i), str(int(i))) for i in best),
            "score": probs.max(axis=1).astype(np.float32) if len(probs) else np.zeros(0, np.float32),
            "probabilities": probs.astype(np.float32),
            "logits": logits.astype(np.float32),
        }

    def _tokens(
        self, items: list[Item], rows: int, options: dict[str, Any], wanted: set[str]
    ) -> dict[str, np.ndarray]:
        width = max((len(item.ids) for item in items), default=0)
        classes = len(self.id2label) or (items[0].result.shape[1] if items else 0)
        best = np.full((rows, width), -1, dtype=np.int64)
        logits = np.zeros((rows, width, classes), dtype=np.float32)
        entities = []
        for item in items:
            scores = _softmax(item.result)
            best[item.row, : len(item.ids)] = scores.argmax(axis=1)
            logits[item.row, : len(item.ids)] = item.result
            if "entities" in wanted:
                entities.append(json.dumps(self._entities(item, scores), ensure_ascii=False))
        out: dict[str, np.ndarray] = {"output-0": best, "logits": logits}
        if "entities" in wanted:
            out["entities"] = _strings(entities)
        return out

    def _entities(self, item: Item, scores: np.ndarray) -> list[dict[str, Any]]:
        found = []
        tokens = self.tokenizer.convert_ids_to_tokens(item.ids)
        for index, token_id in enumerate(item.ids):
            if token_id in self.special_ids:
                continue
            label_id = int(scores[index].argmax())
            label = self.id2label.get(label_id, str(label_id))
            if label == "O":
                continue
            entity: dict[str, Any] = {
                "entity": label,
                "score": round(float(scores[index, label_id]), 6),
                "index": index,
                "word": tokens[index],
            }
            if item.offsets is not None:
                entity["start"], entity["end"] = (int(item.offsets[index][0]), int(item.offsets[index][1]))
            found.append(entity)
        return found

    def _fill_mask(
        self, items: list[Item], rows: int, options: dict[str, Any], wanted: set[str]
    ) -> dict[str, np.ndarray]:
        predicted, scores, first_tokens, sequences = [], [], [], []
        for item in items:
            where, logits = item.result
            probs = _softmax(logits)
            ids = probs.argmax(axis=1)
            predicted.append(self.tokenizer.decode(ids.tolist()))  # KServe's: every mask's token, decoded
            scores.append(float(probs[0, ids[0]]))
            first_tokens.append(int(ids[0]))
            if "sequence" in wanted:
                filled = list(item.ids)
                for position, token in zip(where, ids.tolist(), strict=True):
                    filled[position] = token
                sequences.append(self.tokenizer.decode(filled, skip_special_tokens=True))
        out = {
            "output-0": _strings(predicted),
            "score": np.asarray(scores, dtype=np.float32),
            "token": np.asarray(first_tokens, dtype=np.int64),
        }
        if "sequence" in wanted:
            out["sequence"] = _strings(sequences)
        return out

    def _embeddings(
        self, items: list[Item], rows: int, options: dict[str, Any], wanted: set[str]
    ) -> dict[str, np.ndarray]:
        hidden = self.model.config.hidden_size
        values = np.stack([item.result for item in items]) if items else np.zeros((0, hidden), np.float32)
        return {"output-0": values.astype(np.float32)}

    def _zero_shot(
        self, items: list[Item], rows: int, options: dict[str, Any], wanted: set[str]
    ) -> dict[str, np.ndarray]:
        labels: list[str] = options["labels"]
        k = len(labels)
        logits = np.stack([item.result for item in items]).reshape(rows, k, -1)
        if options["multi_label"] or k == 1:
            # Each label on its own: entailment against contradiction (the pipeline's multi_label).
            pair = logits[:, :, [self.contradict, self.entail]]
            scores = _softmax(pair)[:, :, 1]
        else:
            scores = _softmax(logits[:, :, self.entail])
        order = np.argsort(-scores, axis=1, kind="stable")
        sorted_labels = np.empty((rows, k), dtype=object)
        for r in range(rows):
            sorted_labels[r] = [labels[j] for j in order[r]]
        return {
            "labels": sorted_labels,
            "scores": np.take_along_axis(scores, order, axis=1).astype(np.float32),
            "output-0": sorted_labels[:, 0] if rows else np.empty(0, dtype=object),
        }


_SHAPERS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "text-classification": EncoderTask._classification,
    "token-classification": EncoderTask._tokens,
    "fill-mask": EncoderTask._fill_mask,
    "feature-extraction": EncoderTask._embeddings,
    "zero-shot-classification": EncoderTask._zero_shot,
}


def zero_shot_options(parameters: dict[str, Any], labels_input: list[str] | None) -> dict[str, Any]:
    """Candidate labels (a list, or one comma-separated string, as the pipeline takes them), the
    hypothesis template and multi_label, from a request's parameters (or its candidate_labels input)."""
    labels: Any = labels_input if labels_input is not None else parameters.get("candidate_labels")
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise InvalidParameter(
            "a zero-shot-classification model needs candidate labels: a 'candidate_labels' request "
            'parameter (["sports", "politics"] or "sports, politics") or a candidate_labels BYTES input',
            param="candidate_labels",
        )
    template = parameters.get("hypothesis_template", DEFAULT_HYPOTHESIS)
    if not isinstance(template, str) or "{}" not in template:
        raise InvalidParameter(
            "'hypothesis_template' must be a string with {} where the label goes, e.g. "
            f"{DEFAULT_HYPOTHESIS!r}",
            param="hypothesis_template",
        )
    multi = parameters.get("multi_label", False)
    if not isinstance(multi, bool):
        raise InvalidParameter("'multi_label' must be true or false", param="multi_label")
    return {"labels": labels, "template": template, "multi_label": multi}


def nli_labels(id2label: dict[int, str], directory: Path) -> tuple[int, int]:
    """The entailment and contradiction class indices of an NLI model (its id2label names them)."""
    entail = [i for i, name in id2label.items() if name.lower().startswith("entail")]
    contradict = [i for i, name in id2label.items() if name.lower().startswith("contradict")]
    if not entail:
        raise ConfigError(
            f"{directory}: zero-shot-classification needs an NLI model whose config names an 'entailment' "
            f"label (id2label is {id2label or 'empty'})"
        )
    return entail[0], (contradict[0] if contradict else (1 - entail[0] if len(id2label) == 2 else 0))


def sentence_pooling(directory: Path, parameters: dict[str, Any]) -> tuple[str, bool]:
    """Pooling ("mean", "cls", "max") and whether to L2-normalise: sentence-transformers' modules where
    the directory has them, KServe's mean and normalise otherwise; ``pooling``/``normalize`` parameters win."""
    pooling, normalize = "mean", True
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        pooling, normalize = "mean", False
        try:
            modules = json.loads(modules_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{modules_file}: cannot read: {exc}") from None
        for module in modules if isinstance(modules, list) else []:
            kind = str(module.get("type", ""))
            if kind.endswith("Transformer") or kind.endswith(".Transformer"):
                continue
            if kind.endswith("Pooling"):
                pooling = _pooling_mode(directory / str(module.get("path", "")) / "config.json")
            elif kind.endswith("Normalize"):
                normalize = True
            else:
                raise ConfigError(
                    f"{modules_file}: sentence-transformers module {kind!r} is not served by prebake "
                    "(it serves Transformer, Pooling and Normalize)"
                )
    pooling = str(parameters.get("pooling", pooling))
    if pooling not in ("mean", "cls", "max"):
        raise ConfigError(f"pooling must be mean, cls or max, not {pooling!r}")
    return pooling, bool(parameters.get("normalize", normalize))


def _pooling_mode(path: Path) -> str:
    try:
        config = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the pooling config: {exc}") from None
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        mode = {"mean": "mean", "cls": "cls", "max": "max"}.get(mode, mode)
    elif config.get("pooling_mode_cls_token"):
        mode = "cls"
    elif config.get("pooling_mode_max_tokens"):
        mode = "max"
    elif config.get("pooling_mode_mean_tokens", True):
        mode = "mean"
    if mode not in ("mean", "cls", "max"):
        raise ConfigError(f"{path}: pooling {mode!r} is not served by prebake (mean, cls or max are)")
    return str(mode)


def pool(torch: Any, hidden: Any, mask: Any, mode: str) -> Any:
    """Pooled token embeddings: padding never counts (the mask zeroes it, or -inf for max)."""
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(weights == 0, -math.inf).max(dim=1).values
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def _softmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x.astype(np.float64)
    shifted = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x.astype(np.float64))))


def _strings(values: Any) -> np.ndarray:
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
