"""Hugging Face models served with no code by a real `prebake serve` process, through real clients:
tritonclient (V2 over HTTP and gRPC, BYTES in, named outputs out) and KServe V1, against transformers'
own results; concurrent requests batched by length and equal to unbatched; bad input and bad models."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from prebake.testing import ServerProcess, free_port
from tests import hfmodels

pytest.importorskip("transformers", reason="transformers not installed")
pytest.importorskip("torch", reason="torch not installed")
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient is a test-only extra")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient is a test-only extra")

TEXTS = [
    "i love this movie it was great",
    "hello",
    "paris is the capital of france and berlin is the capital of germany and one two three four",
    "the lazy dog",
    "alice met bob in london on monday",
    "a b c",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-models")
    return {
        "cls": hfmodels.make_classifier(root / "cls"),
        "ner": hfmodels.make_tagger(root / "ner"),
        "mlm": hfmodels.make_masked_lm(root / "mlm"),
        "st": hfmodels.make_sentence_transformer(root / "st"),
        "nli": hfmodels.make_nli(root / "nli"),
        "llama": hfmodels.make_causal_lm(root / "llama"),
        "t5": hfmodels.make_seq2seq(root / "t5"),
    }


@pytest.fixture(scope="module")
def server(models: dict[str, Path]) -> Iterator[tuple[ServerProcess, int]]:
    grpc_port = free_port()
    args = [str(p) for p in models.values()]
    with ServerProcess([*args, "--grpc-port", str(grpc_port)], start_timeout=180) as process:
        yield process, grpc_port


def _bytes_input(module: Any, values: list[str], name: str = "text") -> Any:
    tensor = module.InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object))
    return tensor


def _pipeline(task: str, path: Path, inputs: Any, **kwargs: Any) -> Any:
    from transformers import pipeline

    return pipeline(task, model=str(path), device="cpu")(inputs, **kwargs)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http_text_classification_like_the_pipeline(
    server: tuple[ServerProcess, int], models: dict[str, Path], binary: bool
) -> None:
    """BYTES texts in; KServe's output-0 and the named label and score outputs as the pipeline answers."""
    process, _ = server
    reference = _pipeline("text-classification", models["cls"], TEXTS)
    client = httpclient.InferenceServerClient(process.url.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("cls")
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert meta["platform"] == "transformers_text_classification"
        outputs = [
            httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("output-0", "label", "score")
        ]
        result = client.infer("cls", [_bytes_input(httpclient, TEXTS)], outputs=outputs)
        labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label").tolist()]
        assert labels == [r["label"] for r in reference]
        np.testing.assert_allclose(result.as_numpy("score"), [r["score"] for r in reference], rtol=1e-4)
        assert result.as_numpy("output-0").tolist() == [int(r["label"] == "POSITIVE") for r in reference]
    finally:
        client.close()


def test_tritonclient_grpc_embeddings_token_classes_and_zero_shot(
    server: tuple[ServerProcess, int], models: dict[str, Path]
) -> None:
    """Over gRPC: sentence embeddings as sentence-transformers encodes them, token classes, zero-shot."""
    from sentence_transformers import SentenceTransformer

    _, grpc_port = server
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        result = client.infer("st", [_bytes_input(grpcclient, TEXTS)])
        expected = SentenceTransformer(str(models["st"]), device="cpu").encode(TEXTS)
        np.testing.assert_allclose(result.as_numpy("output-0"), expected, rtol=1e-4, atol=1e-5)

        result = client.infer(
            "ner",
            [_bytes_input(grpcclient, TEXTS[:2])],
            outputs=[grpcclient.InferRequestedOutput("entities")],
        )
        reference = _pipeline("token-classification", models["ner"], TEXTS[0])
        entities = json.loads(result.as_numpy("entities")[0])
        assert [(e["entity"], e["word"], e["start"]) for e in entities] == [
            (e["entity"], e["word"], e["start"]) for e in reference
        ]

        labels = ["sports", "politics", "food"]
        result = client.infer(
            "nli",
            [_bytes_input(grpcclient, TEXTS[:1]), _bytes_input(grpcclient, labels, "candidate_labels")],
        )
        reference = _pipeline("zero-shot-classification", models["nli"], TEXTS[0], candidate_labels=labels)
        # Random weights score the labels within 1e-6 of each other: compare each label's score, not the order.
        ours = dict(
            zip([v.decode() for v in result.as_numpy("labels")[0]], result.as_numpy("scores")[0], strict=True)
        )
        theirs = dict(zip(reference["labels"], reference["scores"], strict=True))
        assert sorted(ours) == sorted(theirs)
        np.testing.assert_allclose([ours[k] for k in labels], [theirs[k] for k in labels], rtol=1e-4)
    finally:
        client.close()


def test_kserve_v1_predictions_have_kserves_shape(
    server: tuple[ServerProcess, int], models: dict[str, Path]
) -> None:
    """{"instances": [texts]} -> {"predictions": [...]}, as KServe's huggingfaceserver answers."""
    process, _ = server
    reference = _pipeline("text-classification", models["cls"], TEXTS)
    answer = httpx.post(process.url + "/v1/models/cls:predict", json={"instances": TEXTS}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [int(r["label"] == "POSITIVE") for r in reference]}
    fill = httpx.post(
        process.url + "/v1/models/mlm:predict", json={"instances": ["paris is the [MASK] of france"]}
    )
    top = _pipeline("fill-mask", models["mlm"], "paris is the [MASK] of france", top_k=1)[0]
    assert [p.replace(" ", "") for p in fill.json()["predictions"]] == [top["token_str"].replace(" ", "")]


def test_generation_over_v2_and_v1(server: tuple[ServerProcess, int], models: dict[str, Path]) -> None:
    """Generative models answer V2 and V1 too: each text's greedy completion, max_tokens honoured."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    process, _ = server
    tok = AutoTokenizer.from_pretrained(models["llama"])
    model = AutoModelForCausalLM.from_pretrained(models["llama"]).eval()
    ids = tok("hello", return_tensors="pt")["input_ids"]
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=5,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
    )
    expected = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    body = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hello"]}],
        "parameters": {"max_tokens": 5},
    }
    answer = httpx.post(process.url + "/v2/models/llama/infer", json=body, timeout=60).json()
    assert answer["outputs"][0]["data"] == [expected]
    assert answer["parameters"] == {"prompt_tokens": ids.shape[1], "completion_tokens": 5}
    v1 = httpx.post(
        process.url + "/v1/models/t5:predict",
        json={"instances": ["hello world"], "parameters": {"max_tokens": 3}},
    )
    assert v1.status_code == 200 and len(v1.json()["predictions"]) == 1


def test_concurrent_requests_are_batched_and_equal_unbatched(
    server: tuple[ServerProcess, int], models: dict[str, Path]
) -> None:
    """Thirty-two clients at once (their requests merged by the batcher, tests/unit/server/test_batching.py
    shows how): every answer equals the same request sent alone."""
    process, _ = server

    def body(i: int) -> dict[str, Any]:
        rows = [TEXTS[i % len(TEXTS)], TEXTS[(i * 7 + 1) % len(TEXTS)]]
        return {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": rows}],
            "outputs": [{"name": "output-0"}, {"name": "probabilities"}],
        }

    with httpx.Client(base_url=process.url, timeout=60) as http:
        alone = [http.post("/v2/models/cls/infer", json=body(i)).json() for i in range(32)]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            together = list(
                pool.map(lambda i: http.post("/v2/models/cls/infer", json=body(i)).json(), range(32))
            )
        for one, many in zip(alone, together, strict=True):
            assert one["outputs"][0] == many["outputs"][0]
            np.testing.assert_allclose(
                one["outputs"][1]["data"], many["outputs"][1]["data"], rtol=1e-4, atol=1e-6
            )


def test_bad_input_is_a_400_and_the_server_keeps_serving(server: tuple[ServerProcess, int]) -> None:
    process, _ = server
    with httpx.Client(base_url=process.url, timeout=30) as http:
        no_mask = http.post("/v1/models/mlm:predict", json={"instances": ["there is no mask"]})
        assert no_mask.status_code == 400 and "no mask token" in no_mask.json()["error"]
        numbers = http.post(
            "/v2/models/cls/infer",
            json={"inputs": [{"name": "text", "datatype": "FP32", "shape": [2], "data": [1, 2]}]},
        )
        assert numbers.status_code == 400 and "must be BYTES" in numbers.json()["error"]
        no_labels = http.post("/v1/models/nli:predict", json={"instances": ["hello"]})
        assert no_labels.status_code == 400 and "candidate" in no_labels.json()["error"]
        unknown_output = http.post(
            "/v2/models/cls/infer",
            json={
                "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
                "outputs": [{"name": "nope"}],
            },
        )
        assert unknown_output.status_code == 400
        assert http.post("/v1/models/cls:predict", json={"instances": ["fine"]}).status_code == 200


def test_bad_model_directories_fail_alone_with_their_reason(tmp_path: Path, models: dict[str, Path]) -> None:
    """A directory without a tokenizer and one with an unknown task are FAILED, saying why; the good
    model beside them serves. Alone, such a model stops the server with exit code 3."""
    shutil.copytree(models["cls"], tmp_path / "notok")
    (tmp_path / "notok" / "tokenizer.json").unlink()
    (tmp_path / "notok" / "tokenizer_config.json").unlink()
    shutil.copytree(models["cls"], tmp_path / "badtask")
    (tmp_path / "badtask" / "model-settings.json").write_text(
        json.dumps({"parameters": {"task": "painting"}})
    )
    shutil.copytree(models["cls"], tmp_path / "good")
    with ServerProcess(["--model-repository", str(tmp_path)], start_timeout=120) as process:
        index = {m["name"]: m for m in httpx.post(process.url + "/v2/repository/index").json()}
        assert index["good"]["state"] == "READY"
        assert index["notok"]["state"] == "FAILED" and "no tokenizer" in index["notok"]["reason"]
        assert (
            index["badtask"]["state"] == "FAILED" and "unknown task 'painting'" in index["badtask"]["reason"]
        )
        assert (
            httpx.post(process.url + "/v1/models/good:predict", json={"instances": ["ok"]}).status_code == 200
        )
    alone = ServerProcess([str(tmp_path / "notok")], wait_ready=False)
    alone.start()
    try:
        assert alone.process is not None and alone.process.wait(120) == 3
        assert "has no tokenizer" in alone.logs()
    finally:
        alone.stop()
