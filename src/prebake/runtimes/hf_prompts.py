"""What every generation engine shares: prompts made and checked, and text streamed back.

- ``Prompter`` turns a ``GenerationRequest`` into prompt token ids: a chat through the tokenizer's own
  chat template, a completion as it is; it refuses, with the field at fault, prompts over the context
  and ``max_tokens`` beyond it (as vLLM and OpenAI word it).
- ``TextStream`` turns one choice's tokens into text as they come: incremental detokenization (a
  character split over tokens waits for its end), stop strings cut out (text that might begin one is
  held back until it is clear), and the reason the choice ended.

Nothing here knows threads or HTTP; the engines (``hf_generate``, ``hf_vllm``) call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prebake.errors import InvalidParameter
from prebake.types import FinishReason, GenerationRequest


@dataclass(slots=True)
class Prompt:
    """A request made ready for an engine: its prompt tokens and how many it may add."""

    ids: list[int]
    max_new_tokens: int


class Prompter:
    def __init__(self, tokenizer: Any, context_length: int, *, name: str) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.name = name

    def prepare(self, request: GenerationRequest) -> Prompt:
        """Prompt token ids for ``request`` and its completion budget; InvalidParameter naming the field."""
        field = "messages" if request.messages is not None else "prompt"
        if request.messages is not None:
            text = self._chat(request.messages)
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            ids = list(self.tokenizer(request.prompt or "")["input_ids"])
        if not ids:
            bos = getattr(self.tokenizer, "bos_token_id", None)
            if bos is None:
                raise InvalidParameter("the prompt is empty; send some text", param="prompt")
            ids = [bos]
        limit = self.context_length
        if len(ids) >= limit:
            raise InvalidParameter(
                f"This model's maximum context length is {limit} tokens. However, your {field} resulted in "
                f"{len(ids)} tokens. Please reduce the length of the {field}.",
                param=field,
                code="context_length_exceeded",
            )
        if request.max_tokens is None:
            return Prompt(ids, limit - len(ids))
        if len(ids) + request.max_tokens > limit:
            raise InvalidParameter(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{len(ids) + request.max_tokens} tokens ({len(ids)} in the {field}, {request.max_tokens} in "
                f"the completion). Please reduce the length of the {field} or completion (max_tokens).",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return Prompt(ids, request.max_tokens)

    def _chat(self, messages: list[dict[str, Any]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidParameter(
                f"model '{self.name}' has no chat template (its tokenizer_config.json or chat_template.jinja "
                "holds none), so it cannot take messages; use /v1/completions with a prompt, or save the "
                "tokenizer with a chat_template",
                param="messages",
                code="chat_template_missing",
            )
        try:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - a template's raise_exception() is the client's error
            raise InvalidParameter(
                f"the model's chat template refused these messages: {exc}", param="messages"
            ) from None
        return str(text)


class TextStream:
    """One choice's text, token by token. ``add`` returns the text that is safe to send now."""

    __slots__ = ("tokenizer", "stops", "ids", "text", "sent", "_prefix", "_read", "finish")

    def __init__(self, tokenizer: Any, stops: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self._prefix = 0
        self._read = 0
        self.finish: FinishReason | None = None

    def add(self, token: int) -> str:
        """Take one generated token (not an end-of-sequence one); the new text to send ('' for none yet).
        Sets ``finish`` to "stop" when a stop string appeared (the text up to it is sent, not the stop)."""
        self.ids.append(token)
        # Decode a small window, as vLLM and TGI do: a token's text depends on its neighbours (spaces,
        # bytes of one character split over several tokens), so compare the window with and without it.
        before = self.tokenizer.decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.text += after[len(before) :]
        self._prefix, self._read = self._read, len(self.ids)
        return self._release()

    def end(self, reason: FinishReason) -> str:
        """The choice ended (end-of-sequence, or its length): whatever was held back, the bytes of an
        unfinished character too (decoded as U+FFFD, as the tokenizer decodes them)."""
        before = self.tokenizer.decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self._prefix :], skip_special_tokens=True)
        self._prefix = self._read = len(self.ids)
        if len(after) > len(before):
            self.text += after[len(before) :]
        out = self._release() if self.finish is None else ""
        if self.finish is None:
            self.finish = reason
        rest = self.text[self.sent :]
        self.sent = len(self.text)
        return out + rest

    def _release(self) -> str:
        if not self.stops:
            rest = self.text[self.sent :]
            self.sent = len(self.text)
            return rest
        start = max(0, self.sent - max(len(s) for s in self.stops))
        found = [i for i in (self.text.find(stop, start) for stop in self.stops) if i >= 0]
        if found:
            cut = min(found)
            out = self.text[self.sent : cut] if cut > self.sent else ""
            self.text = self.text[:cut]
            self.sent = len(self.text)
            self.finish = "stop"
            return out
        # Hold back the longest ending that could still grow into a stop string.
        hold = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.text) - self.sent), hold, -1):
                if self.text.endswith(stop[:size]):
                    hold = size
                    break
        end = len(self.text) - hold
        out = self.text[self.sent : end]
        self.sent = max(self.sent, end)
        return out


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a sequence: the generation config's (chat models list several) and the
    tokenizer's end-of-sequence token."""
    found: set[int] = set()
    config = getattr(model, "generation_config", None)
    for source in (getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(source, int):
            found.add(source)
        elif isinstance(source, list | tuple):
            found.update(int(t) for t in source)
    return found


def context_length(config: Any, tokenizer: Any) -> int:
    """How many tokens the model attends to: its config's position limit, else the tokenizer's."""
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10_000_000:
        return value
    return 2048
