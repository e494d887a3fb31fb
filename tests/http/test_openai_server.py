"""The OpenAI API of a real `prebake serve` process, through the official ``openai`` client unchanged:
chats with the tokenizer's template, completions, streaming read chunk by chunk, embeddings, usage; bad
input in OpenAI's error shape with the server serving on; a streaming client that goes away cancels."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from prebake.testing import ServerProcess
from tests import hfmodels

pytest.importorskip("transformers", reason="transformers not installed")
torch = pytest.importorskip("torch", reason="torch not installed")
openai = pytest.importorskip("openai", reason="the openai client is a test-only extra")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openai-models")
    return {
        "llama": hfmodels.make_causal_lm(root / "llama"),
        "gpt2": hfmodels.make_causal_lm(root / "gpt2", kind="gpt2", chat=False),
        "st": hfmodels.make_sentence_transformer(root / "st"),
        "cls": hfmodels.make_classifier(root / "cls"),
    }


@pytest.fixture(scope="module")
def server(models: dict[str, Path]) -> Iterator[ServerProcess]:
    with ServerProcess([str(p) for p in models.values()], start_timeout=180) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Any]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


def _greedy(path: Path, prompt_ids: list[int], tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = torch.tensor([prompt_ids])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
    )
    return str(tok.decode(out[0, len(prompt_ids) :], skip_special_tokens=True))


def _chat_ids(path: Path, messages: list[dict[str, str]]) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tok(text, add_special_tokens=False)["input_ids"])


def test_models_are_listed_for_openai_and_kserve_v1(client: Any, server: ServerProcess) -> None:
    assert {m.id for m in client.models.list()} == {"llama", "gpt2", "st", "cls"}
    doc = httpx.get(server.url + "/v1/models").json()
    assert set(doc["models"]) == {"llama", "gpt2", "st", "cls"}  # KServe V1's key on the same path
    kserve = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0)
    assert kserve.models.retrieve("llama").id == "llama"
    with pytest.raises(openai.NotFoundError):
        kserve.models.retrieve("nope")


def test_chat_uses_the_chat_template_and_counts_usage(client: Any, models: dict[str, Path]) -> None:
    """A greedy chat answers what generate() makes from the template's prompt, with usage counted."""
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
    reply = client.chat.completions.create(model="llama", messages=messages, max_tokens=7, temperature=0)
    ids = _chat_ids(models["llama"], messages)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == _greedy(models["llama"], ids, 7)
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(ids), 7)
    assert reply.usage.total_tokens == len(ids) + 7


def test_streaming_chat_arrives_chunk_by_chunk(client: Any, server: ServerProcess) -> None:
    """Server-sent events: the role first, then the text in pieces as it is made, the finish reason,
    usage when asked, and the whole equals the unstreamed answer."""
    messages = [{"role": "user", "content": "the quick brown fox"}]
    whole = client.chat.completions.create(model="llama", messages=messages, max_tokens=40, temperature=0)
    stream = client.chat.completions.create(
        model="llama",
        messages=messages,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, arrived = [], []
    for chunk in stream:
        chunks.append(chunk)
        arrived.append(time.perf_counter())
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 5, "the text should come in many chunks"
    assert "".join(pieces) == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 40
    # Raw SSE read line by line: the stream is chunked, events separated by blank lines, ended by [DONE].
    body = {"model": "llama", "messages": messages, "max_tokens": 5, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"


def test_completions_prompts_n_seed_and_stop(client: Any, models: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(models["gpt2"])
    prompts = ["hello", "one two three"]
    reply = client.completions.create(model="gpt2", prompt=prompts, max_tokens=6, temperature=0)
    assert [c.index for c in reply.choices] == [0, 1]
    for choice, prompt in zip(reply.choices, prompts, strict=True):
        assert choice.text == _greedy(models["gpt2"], list(tok(prompt)["input_ids"]), 6)
    sampled = dict(model="gpt2", prompt="hello", max_tokens=8, temperature=1.0, top_p=0.9, n=3, seed=11)
    first = [c.text for c in client.completions.create(**sampled).choices]
    assert [c.text for c in client.completions.create(**sampled).choices] == first  # seeded: repeatable
    assert len(first) == 3
    default = client.completions.create(model="gpt2", prompt="hello", temperature=0)
    assert default.usage.completion_tokens == 16  # the API's default max_tokens for completions
    text = reply.choices[0].text
    stop = text[2:4]
    stopped = client.completions.create(
        model="gpt2", prompt="hello", max_tokens=6, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].text == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_concurrent_streams_share_the_engine_and_match_alone(client: Any) -> None:
    """Sixteen chats at once each answer exactly what they answer alone (greedy), all streamed."""
    prompts = [f"{'one two three ' * (i % 4)}hello {i}" for i in range(16)]

    def chat(prompt: str, stream: bool) -> str:
        messages = [{"role": "user", "content": prompt}]
        if not stream:
            reply = client.chat.completions.create(
                model="llama", messages=messages, max_tokens=12, temperature=0
            )
            return str(reply.choices[0].message.content)
        parts = client.chat.completions.create(
            model="llama", messages=messages, max_tokens=12, temperature=0, stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in parts if c.choices)

    alone = [chat(p, False) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda p: chat(p, True), prompts))
    assert together == alone


def test_embeddings_match_sentence_transformers(client: Any, models: dict[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    inputs = ["hello world", "paris is the capital of france", "a"]
    expected = SentenceTransformer(str(models["st"]), device="cpu").encode(inputs)
    reply = client.embeddings.create(model="st", input=inputs)
    got = np.array([d.embedding for d in reply.data], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert reply.usage.prompt_tokens > len(inputs)
    raw = httpx.post(
        client.base_url.join("embeddings").__str__(),
        json={"model": "st", "input": "hello world", "encoding_format": "base64"},
    ).json()
    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, expected[0], rtol=1e-4, atol=1e-5)


def _error(call: Any) -> Any:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    body = caught.value.body
    assert set(body) == {"message", "type", "param", "code"}, body
    return caught.value.status_code, body


def test_bad_input_is_a_4xx_in_openais_shape_and_the_server_serves_on(
    client: Any, server: ServerProcess
) -> None:
    chat = client.chat.completions.create
    user = [{"role": "user", "content": "hello"}]
    status, body = _error(lambda: chat(model="llama", messages=[{"role": "user", "content": "hello " * 300}]))
    assert (status, body["param"], body["code"]) == (400, "messages", "context_length_exceeded")
    assert "maximum context length is 128 tokens" in body["message"]
    status, body = _error(lambda: chat(model="llama", messages=user, max_tokens=1000))
    assert (status, body["param"], body["code"]) == (400, "max_tokens", "context_length_exceeded")
    status, body = _error(lambda: client.completions.create(model="llama", prompt="hello " * 300))
    assert (status, body["param"]) == (400, "prompt")
    for messages, param in (
        ([{"content": "no role"}], "messages[0].role"),
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages[0].content",
        ),
        ([], "messages"),
    ):
        status, body = _error(lambda m=messages: chat(model="llama", messages=m))
        assert (status, body["param"], body["type"]) == (400, param, "invalid_request_error"), messages
    status, body = _error(lambda: chat(model="llama", messages=[{"role": "tool", "content": "x"}]))
    assert (status, body["param"]) == (400, "messages")  # the template's own raise_exception
    status, body = _error(lambda: chat(model="gpt2", messages=user))
    assert (status, body["code"]) == (400, "chat_template_missing")
    status, body = _error(lambda: chat(model="nope", messages=user))
    assert (status, body["param"], body["code"]) == (404, "model", "model_not_found")
    status, body = _error(lambda: chat(model="cls", messages=user))
    assert (status, body["param"]) == (400, "model")
    status, body = _error(lambda: client.embeddings.create(model="llama", input="x"))
    assert (status, body["param"]) == (400, "model")
    for extra, param in (
        ({"temperature": 5}, "temperature"),
        ({"n": 0}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"top_p": -1}, "top_p"),
    ):
        status, body = _error(lambda e=extra: chat(model="llama", messages=user, **e))
        assert (status, body["param"]) == (400, param), extra
    bad_json = httpx.post(server.url + "/v1/chat/completions", content=b"{not json", timeout=10)
    assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"
    reply = chat(model="llama", messages=user, max_tokens=2)
    assert reply.usage.completion_tokens == 2


def test_a_streaming_client_that_goes_away_cancels_its_generation(tmp_path: Path) -> None:
    """One sequence at a time (max_batch_size 1) and a long generation: the client reads two chunks and
    leaves; the next request is answered at once, which it could not be were the first still running."""
    path = hfmodels.make_causal_lm(
        tmp_path / "long",
        context=8192,
        settings={"max_batch_size": 1, "parameters": {"engine": "continuous"}},
    )
    with ServerProcess([str(path)], start_timeout=120) as process:
        c = openai.OpenAI(base_url=process.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        user = [{"role": "user", "content": "hello"}]
        started = time.perf_counter()
        c.chat.completions.create(model="long", messages=user, max_tokens=400, temperature=0)
        per_token = (time.perf_counter() - started) / 400
        stream = c.chat.completions.create(
            model="long", messages=user, max_tokens=8000, temperature=0, stream=True
        )
        for i, _ in enumerate(stream):
            if i == 2:
                break
        stream.close()
        started = time.perf_counter()
        reply = c.chat.completions.create(model="long", messages=user, max_tokens=2, temperature=0)
        waited = time.perf_counter() - started
        assert reply.usage.completion_tokens == 2
        assert waited < max(2.0, 8000 * per_token / 4), f"waited {waited:.2f} s: was the stream cancelled?"
