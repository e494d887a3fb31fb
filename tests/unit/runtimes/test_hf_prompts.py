"""Text streamed token by token: stop strings cut out even across tokens, held back only while they might
still begin, unfinished characters waited for; prompts checked against the context."""

from __future__ import annotations

from typing import Any

import pytest

from prebake.errors import InvalidParameter
from prebake.runtimes.hf_prompts import Prompter, TextStream, context_length
from prebake.types import GenerationRequest

pytest.importorskip("transformers", reason="transformers not installed")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from tests import hfmodels

    return hfmodels.bpe_tokenizer()


def _stream(tokenizer: Any, text: str, stops: list[str]) -> tuple[list[str], TextStream]:
    stream = TextStream(tokenizer, stops)
    pieces = []
    for token in tokenizer(text)["input_ids"]:
        pieces.append(stream.add(token))
        if stream.finish is not None:
            break
    else:
        pieces.append(stream.end("length"))
    return pieces, stream


def test_without_stops_the_pieces_join_to_the_decoded_text(tokenizer: Any) -> None:
    text = "hello world this is a tiny model é ü 中"
    pieces, stream = _stream(tokenizer, text, [])
    assert "".join(pieces) == tokenizer.decode(tokenizer(text)["input_ids"])
    assert stream.finish == "length"
    assert all("\ufffd" not in p for p in pieces), "a split character was sent before it was whole"


def test_a_stop_string_ends_the_text_before_it(tokenizer: Any) -> None:
    pieces, stream = _stream(tokenizer, "the quick brown fox jumps over the lazy dog", ["fox j"])
    assert "".join(pieces) == "the quick brown "
    assert stream.finish == "stop"


def test_text_that_might_begin_a_stop_is_held_back_then_released(tokenizer: Any) -> None:
    stream = TextStream(tokenizer, ["brown cow"])
    sent = ""
    for token in tokenizer("the quick brown fox")["input_ids"]:
        sent += stream.add(token)
        assert not sent.endswith("brown"), "a possible stop string was sent early"
    sent += stream.end("length")
    assert sent == "the quick brown fox" and stream.finish == "length"


def test_the_earliest_of_several_stops_wins(tokenizer: Any) -> None:
    pieces, stream = _stream(tokenizer, "one two three four five", ["four", "two"])
    assert "".join(pieces) == "one " and stream.finish == "stop"


def test_prompts_are_checked_against_the_context(tokenizer: Any) -> None:
    prompter = Prompter(tokenizer, 32, name="m")
    assert prompter.prepare(GenerationRequest(prompt="hello")).max_new_tokens == 32 - len(
        tokenizer("hello")["input_ids"]
    )
    with pytest.raises(InvalidParameter, match="maximum context length is 32 tokens") as caught:
        prompter.prepare(GenerationRequest(prompt="hello " * 40))
    assert (caught.value.param, caught.value.code) == ("prompt", "context_length_exceeded")
    with pytest.raises(InvalidParameter, match=r"requested \d+ tokens") as caught:
        prompter.prepare(GenerationRequest(prompt="hello", max_tokens=40))
    assert caught.value.param == "max_tokens"
    chat = prompter.prepare(GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=3))
    assert tokenizer.decode(chat.ids) == "<s>user: hi\n<s>assistant:"


def test_a_template_that_refuses_messages_is_a_400_on_messages(tokenizer: Any) -> None:
    prompter = Prompter(tokenizer, 64, name="m")
    with pytest.raises(InvalidParameter, match="roles must be") as caught:
        prompter.prepare(GenerationRequest(messages=[{"role": "tool", "content": "x"}]))
    assert caught.value.param == "messages"


def test_context_length_comes_from_the_config() -> None:
    class Config:
        max_position_embeddings = 77

    class NoLimit:
        model_max_length = int(1e30)

    assert context_length(Config(), NoLimit()) == 77
    assert context_length(object(), NoLimit()) == 2048
