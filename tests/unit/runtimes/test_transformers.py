"""The transformers runtime in-process, on tiny models made here: every task against transformers' own
results (the pipelines, the model's forward, ``generate``, sentence-transformers' ``encode``), batched
requests against unbatched ones, and loading errors."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.errors import ConfigError, InvalidInput, InvalidParameter, ModelLoadError
from prebake.runtimes.base import ModelSettings
from prebake.runtimes.discover import find_models
from prebake.runtimes.hf_encoders import group_by_length
from prebake.runtimes.hf_tasks import detect_task
from prebake.runtimes.registry import create_runtime
from prebake.runtimes.transformers import TransformersRuntime
from prebake.types import GenerationChunk, GenerationEvent, GenerationRequest, InferenceRequest
from tests import hfmodels

pytest.importorskip("transformers", reason="transformers not installed")
torch = pytest.importorskip("torch", reason="torch not installed")

TEXTS = [
    "i love this movie it was great",
    "hello",
    "paris is the capital of france and berlin is the capital of germany and one two three",
    "the lazy dog",
    "alice met bob in london",
]


def texts(*values: str) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {
        "cls": hfmodels.make_classifier(root / "cls"),
        "ner": hfmodels.make_tagger(root / "ner"),
        "mlm": hfmodels.make_masked_lm(root / "mlm"),
        "enc": hfmodels.make_encoder(root / "enc"),
        "st": hfmodels.make_sentence_transformer(root / "st"),
        "nli": hfmodels.make_nli(root / "nli"),
        "llama": hfmodels.make_causal_lm(root / "llama"),
        "gpt2": hfmodels.make_causal_lm(root / "gpt2", kind="gpt2"),
        "t5": hfmodels.make_seq2seq(root / "t5"),
    }


def loaded(path: Path, **parameters: Any) -> TransformersRuntime:
    (settings,) = find_models([path], device="cpu")
    settings.parameters.update(parameters)
    runtime = create_runtime(settings)
    assert isinstance(runtime, TransformersRuntime)
    runtime.load()
    return runtime


def predict(runtime: TransformersRuntime, values: list[str], **parameters: Any) -> dict[str, np.ndarray]:
    request = InferenceRequest(inputs={"text": texts(*values)}, parameters=parameters)
    return runtime.predict(request).outputs


def test_tasks_are_found_from_the_directory(models: dict[str, Path]) -> None:
    """Discovery serves every save_pretrained directory with transformers, each with its task."""
    expected = {
        "cls": "text-classification",
        "ner": "token-classification",
        "mlm": "fill-mask",
        "enc": "feature-extraction",
        "st": "feature-extraction",
        "nli": "zero-shot-classification",
        "llama": "text-generation",
        "gpt2": "text-generation",
        "t5": "text2text-generation",
    }
    for key, task in expected.items():
        (settings,) = find_models([models[key]])
        assert settings.runtime == "transformers"
        assert detect_task(models[key], settings.parameters.get("task")) == task, key


def test_unknown_task_is_refused_naming_the_tasks(tmp_path: Path, models: dict[str, Path]) -> None:
    shutil.copytree(models["cls"], tmp_path / "m")
    (tmp_path / "m" / "model-settings.json").write_text(
        json.dumps({"parameters": {"task": "image-painting"}})
    )
    with pytest.raises(ConfigError, match="unknown task 'image-painting'.*text-classification"):
        loaded(tmp_path / "m")


def test_a_directory_without_a_tokenizer_fails_to_load_saying_so(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    shutil.copytree(models["cls"], tmp_path / "m")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "m" / name).unlink()
    with pytest.raises(ModelLoadError, match=r"has no tokenizer .*tokenizer.save_pretrained"):
        loaded(tmp_path / "m")


def test_pickled_weights_need_pickles_allowed(tmp_path: Path, models: dict[str, Path]) -> None:
    """pytorch_model.bin is a pickle: refused by default, served with allow_pickle."""
    from safetensors.torch import load_file

    (tmp_path / "m").mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(models["cls"] / name, tmp_path / "m" / name)
    torch.save(load_file(models["cls"] / "model.safetensors"), tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pytorch_model.bin, a pickle"):
        loaded(tmp_path / "m")
    expected = predict(loaded(models["cls"]), TEXTS)["output-0"]
    assert predict(loaded(tmp_path / "m", allow_pickle=True), TEXTS)["output-0"].tolist() == expected.tolist()


def test_text_classification_matches_the_pipeline(models: dict[str, Path]) -> None:
    """KServe's output-0 (class index) and the named outputs agree with transformers' pipeline."""
    from transformers import pipeline

    reference = pipeline("text-classification", model=str(models["cls"]), device="cpu")(TEXTS)
    runtime = loaded(models["cls"])
    out = runtime.predict(
        InferenceRequest(
            inputs={"text": texts(*TEXTS)}, outputs=["output-0", "label", "score", "probabilities"]
        )
    ).outputs
    assert out["label"].tolist() == [r["label"] for r in reference]
    np.testing.assert_allclose(out["score"], [r["score"] for r in reference], rtol=1e-4)
    assert out["output-0"].tolist() == [0 if r["label"] == "NEGATIVE" else 1 for r in reference]
    assert out["probabilities"].shape == (len(TEXTS), 2)
    # Undeclared outputs stay out unless asked for: KServe's one output by default.
    assert list(predict(runtime, TEXTS)) == ["output-0"]


def test_kserve_probability_flag_puts_probabilities_in_output_0(models: dict[str, Path]) -> None:
    out = predict(loaded(models["cls"], return_probabilities=True), TEXTS)
    assert out["output-0"].shape == (len(TEXTS), 2)
    np.testing.assert_allclose(out["output-0"].sum(axis=1), 1.0, rtol=1e-5)


def test_token_classification_matches_the_model(models: dict[str, Path]) -> None:
    """Class per token (-1 past a text's end) and the pipeline's entities."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(models["ner"])
    model = AutoModelForTokenClassification.from_pretrained(models["ner"]).eval()
    runtime = loaded(models["ner"])
    out = runtime.predict(
        InferenceRequest(inputs={"text": texts(*TEXTS)}, outputs=["output-0", "entities"])
    ).outputs
    for row, text in enumerate(TEXTS):
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            expected = model(**ids).logits.argmax(-1)[0].tolist()
        assert out["output-0"][row, : len(expected)].tolist() == expected
        assert set(out["output-0"][row, len(expected) :].tolist()) <= {-1}
    reference = pipeline("token-classification", model=str(models["ner"]), device="cpu")(TEXTS[0])
    mine = json.loads(out["entities"][0])
    assert [(e["entity"], e["index"], e["word"], e["start"], e["end"]) for e in mine] == [
        (e["entity"], e["index"], e["word"], e["start"], e["end"]) for e in reference
    ]


def test_fill_mask_matches_the_pipeline(models: dict[str, Path]) -> None:
    from transformers import pipeline

    samples = ["paris is the [MASK] of france", "hello [MASK]"]
    reference = pipeline("fill-mask", model=str(models["mlm"]), device="cpu", top_k=1)(samples)
    runtime = loaded(models["mlm"])
    out = runtime.predict(
        InferenceRequest(inputs={"text": texts(*samples)}, outputs=["output-0", "score", "sequence"])
    ).outputs
    for row, ref in enumerate(reference):
        best = ref[0] if isinstance(ref, list) else ref
        assert out["output-0"][row].replace(" ", "") == best["token_str"].replace(" ", "")
        assert out["score"][row] == pytest.approx(best["score"], rel=1e-4)
        assert out["sequence"][row] == best["sequence"]


def test_fill_mask_without_a_mask_is_a_clear_400(models: dict[str, Path]) -> None:
    with pytest.raises(InvalidInput, match=r"no mask token '\[MASK\]'"):
        predict(loaded(models["mlm"]), ["no mask here"])


def test_sentence_embeddings_match_sentence_transformers(models: dict[str, Path]) -> None:
    """A sentence-transformers directory is served with its own pooling (CLS here) and normalisation."""
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(models["st"]), device="cpu").encode(TEXTS)
    out = predict(loaded(models["st"]), TEXTS)["output-0"]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_plain_encoder_embeddings_are_kserve_mean_pooled_and_normalised(models: dict[str, Path]) -> None:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(models["enc"])
    model = AutoModel.from_pretrained(models["enc"]).eval()
    out = predict(loaded(models["enc"]), TEXTS)["output-0"]
    for row, text in enumerate(TEXTS):
        with torch.no_grad():
            hidden = model(**tok(text, return_tensors="pt")).last_hidden_state[0].mean(0)
        expected = torch.nn.functional.normalize(hidden, dim=0).numpy()
        np.testing.assert_allclose(out[row], expected, rtol=1e-4, atol=1e-5)


def test_zero_shot_matches_the_pipeline(models: dict[str, Path]) -> None:
    from transformers import pipeline

    labels = ["sports", "politics", "food"]
    zero = pipeline("zero-shot-classification", model=str(models["nli"]), device="cpu")
    runtime = loaded(models["nli"])
    for multi in (False, True):
        out = predict(runtime, TEXTS[:2], candidate_labels=labels, multi_label=multi)
        for row, text in enumerate(TEXTS[:2]):
            reference = zero(text, candidate_labels=labels, multi_label=multi)
            # Random weights score the labels within 1e-6 of each other, so float rounding may order two
            # differently: compare each label's score, and that ours come best first.
            ours = dict(zip(out["labels"][row].tolist(), out["scores"][row].tolist(), strict=True))
            theirs = dict(zip(reference["labels"], reference["scores"], strict=True))
            assert sorted(ours) == sorted(theirs) == sorted(labels)
            np.testing.assert_allclose([ours[k] for k in labels], [theirs[k] for k in labels], rtol=1e-4)
            assert list(out["scores"][row]) == sorted(out["scores"][row], reverse=True)


def test_zero_shot_without_labels_names_the_parameter(models: dict[str, Path]) -> None:
    with pytest.raises(InvalidParameter, match="candidate labels") as caught:
        predict(loaded(models["nli"]), ["hello"])
    assert caught.value.param == "candidate_labels"


@pytest.mark.parametrize("key", ["cls", "ner", "enc", "st", "nli"])
def test_batched_requests_equal_unbatched(models: dict[str, Path], key: str) -> None:
    """The batch hook: requests of different lengths merged (and regrouped by length) answer exactly
    what each answers alone, up to float rounding; class indices exactly."""
    runtime = loaded(models[key])
    params = {"candidate_labels": ["sports", "food"]} if key == "nli" else {}
    wanted = ["labels", "scores"] if key == "nli" else ["output-0"]
    requests = [
        InferenceRequest(inputs={"text": texts(*TEXTS[i : i + 2])}, parameters=params, outputs=wanted)
        for i in range(len(TEXTS) - 1)
    ]
    batched = runtime.predict_batch(requests)
    for request, together in zip(requests, batched, strict=True):
        alone = runtime.predict(request).outputs
        assert set(alone) == set(together.outputs)
        for name, value in alone.items():
            if value.dtype == object or value.dtype.kind == "i":
                assert together.outputs[name].tolist() == value.tolist(), name
            else:
                np.testing.assert_allclose(together.outputs[name], value, rtol=1e-4, atol=1e-5)


def test_group_by_length_keeps_short_texts_apart_from_long_ones() -> None:
    groups = group_by_length([3, 50, 4, 52, 3, 5], max_items=8, max_tokens=4096)
    assert groups == [[0, 4, 2, 5], [1, 3]]
    assert group_by_length([10] * 5, max_items=2, max_tokens=4096) == [[0, 1], [2, 3], [4]]


def test_non_text_input_is_a_400_naming_it(models: dict[str, Path]) -> None:
    runtime = loaded(models["cls"])
    with pytest.raises(InvalidInput, match="input 'x' must be BYTES"):
        runtime.predict(InferenceRequest(inputs={"x": np.zeros((2, 3), np.float32)}))


class Collect:
    def __init__(self) -> None:
        self.chunks: list[GenerationChunk] = []
        self.end: GenerationEvent = None
        self.done = threading.Event()

    def __call__(self, event: GenerationEvent) -> None:
        if isinstance(event, GenerationChunk):
            self.chunks.append(event)
        else:
            self.end = event
            self.done.set()

    def text(self, index: int = 0) -> str:
        assert self.done.wait(60), "generation did not finish"
        if isinstance(self.end, BaseException):
            raise self.end
        return "".join(c.text for c in self.chunks if c.index == index)


def _generate_alone(path: Path, prompt: str, tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=tokens,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=tok.pad_token_id,
    )
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_continuous_batching_equals_generate_alone(models: dict[str, Path], kind: str) -> None:
    """Requests of different lengths arriving while others decode share steps (the batch widens), and
    each greedy completion is token for token what generate() makes for it alone."""
    runtime = loaded(models[kind])
    engine: Any = runtime.generator()
    assert engine.kind == "continuous"
    prompts = [
        "the quick brown fox",
        "hello",
        "paris is the capital of france and berlin",
        "one two",
        "i love",
    ]
    sinks = []
    for i, prompt in enumerate(prompts):
        sink = Collect()
        engine.submit(GenerationRequest(prompt=prompt, max_tokens=12 + 4 * i, temperature=0), sink)
        sinks.append(sink)
    for i, (prompt, sink) in enumerate(zip(prompts, sinks, strict=True)):
        assert sink.text() == _generate_alone(models[kind], prompt, 12 + 4 * i), prompt
        assert sink.chunks[-1].finish_reason == "length"
        assert sink.chunks[-1].completion_tokens == 12 + 4 * i
    assert engine.widest > 1, "requests were generated one after another, not in one batch"
    runtime.unload()


def test_seeded_sampling_repeats_and_choices_differ(models: dict[str, Path]) -> None:
    runtime = loaded(models["llama"])
    engine: Any = runtime.generator()

    def run(seed: int) -> list[str]:
        sink = Collect()
        engine.submit(GenerationRequest(prompt="hello", max_tokens=10, temperature=1.0, seed=seed, n=3), sink)
        sink.text()
        return [sink.text(i) for i in range(3)]

    first = run(7)
    assert run(7) == first
    assert len(set(first)) > 1, "the n choices should sample differently"
    runtime.unload()


def test_stop_strings_end_the_choice_before_them(models: dict[str, Path]) -> None:
    runtime = loaded(models["llama"])
    engine: Any = runtime.generator()
    sink = Collect()
    engine.submit(GenerationRequest(prompt="hello", max_tokens=20, temperature=0), sink)
    full = sink.text()
    stop = full[5:8]
    sink = Collect()
    engine.submit(GenerationRequest(prompt="hello", max_tokens=20, temperature=0, stop=[stop]), sink)
    assert sink.text() == full[: full.index(stop)]
    assert sink.chunks[-1].finish_reason == "stop"
    runtime.unload()


def test_cancelled_requests_leave_the_batch(models: dict[str, Path]) -> None:
    runtime = loaded(models["llama"], engine="continuous")
    engine: Any = runtime.generator()
    sink = Collect()
    cancel = engine.submit(GenerationRequest(prompt="hello", max_tokens=100, temperature=0), sink)
    while not sink.chunks:
        threading.Event().wait(0.001)
    cancel()
    quick = Collect()
    engine.submit(GenerationRequest(prompt="hi", max_tokens=2, temperature=0), quick)
    quick.text()
    threading.Event().wait(0.05)
    assert not engine.rows, "the cancelled sequence is still decoding"
    assert sink.chunks[-1].completion_tokens < 100
    runtime.unload()


def test_prompt_and_max_tokens_are_checked_against_the_context(models: dict[str, Path]) -> None:
    runtime = loaded(models["llama"])
    engine: Any = runtime.generator()
    for request, param in (
        (GenerationRequest(prompt="hello " * 200, max_tokens=4), "prompt"),
        (GenerationRequest(prompt="hello", max_tokens=1000), "max_tokens"),
    ):
        sink = Collect()
        engine.submit(request, sink)
        with pytest.raises(InvalidParameter, match="maximum context length is 128 tokens") as caught:
            sink.text()
        assert caught.value.param == param
        assert caught.value.code == "context_length_exceeded"
    runtime.unload()


def test_v2_generation_and_text2text_go_through_the_engines(models: dict[str, Path]) -> None:
    """V2/V1 requests to generative models answer each text's completion: greedy, max_tokens honoured."""
    llama = loaded(models["llama"])
    out = predict(llama, ["hello", "the quick brown fox"], max_tokens=6)
    assert out["output-0"].tolist() == [
        _generate_alone(models["llama"], p, 6) for p in ["hello", "the quick brown fox"]
    ]
    t5 = loaded(models["t5"])
    assert t5.generator().kind == "sequential"  # type: ignore[union-attr]
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(models["t5"])
    model = AutoModelForSeq2SeqLM.from_pretrained(models["t5"]).eval()
    ids = tok("hello world", return_tensors="pt")
    reference = tok.decode(
        model.generate(**ids, max_new_tokens=5, do_sample=False)[0], skip_special_tokens=True
    )
    assert predict(t5, ["hello world"], max_tokens=5)["output-0"].tolist() == [reference]
    llama.unload()
    t5.unload()


def test_sequential_engine_streams_the_same_greedy_text(models: dict[str, Path]) -> None:
    runtime = loaded(models["llama"], engine="sequential")
    engine: Any = runtime.generator()
    assert engine.kind == "sequential"
    sink = Collect()
    engine.submit(GenerationRequest(prompt="hello", max_tokens=9, temperature=0), sink)
    assert sink.text() == _generate_alone(models["llama"], "hello", 9)
    assert len(sink.chunks) > 1
    runtime.unload()


def test_cuda_device_without_cuda_is_refused(models: dict[str, Path]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    runtime = create_runtime(
        ModelSettings(name="m", path=models["cls"], runtime="transformers", device="cuda")
    )
    with pytest.raises(ModelLoadError, match="device 'cuda'"):
        runtime.load()


def test_the_growing_cache_layer_holds_what_concatenation_would() -> None:
    """The continuous engine's cache layer writes steps into spare room, grows past it, and takes over
    keys and values the engine replaced (joining, leaving): always the tensors DynamicLayer would hold."""
    import torch
    from transformers.cache_utils import DynamicLayer

    from prebake.runtimes.hf_generate import growing_layer_class

    torch.manual_seed(0)
    mine, reference = growing_layer_class()(), DynamicLayer()
    steps = [torch.randn(2, 4, 30, 8)] + [torch.randn(2, 4, 1, 8) for _ in range(200)]
    for number, step in enumerate(steps):
        if number == 100:  # the engine drops a row, as when a sequence leaves
            for layer in (mine, reference):
                layer.keys, layer.values = layer.keys[:1], layer.values[:1]
        step = step[:1] if number >= 100 else step
        keys, values = mine.update(step, step * 2)
        want_keys, want_values = reference.update(step, step * 2)
        assert torch.equal(keys, want_keys) and torch.equal(values, want_values), number
    assert mine.keys.shape == (1, 4, 230, 8)
    assert mine.room[0].shape[-2] > 230, "the room grew past its first size"
