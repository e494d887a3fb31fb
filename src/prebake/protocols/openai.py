"""The OpenAI API for generative and embedding models, as vLLM and KServe's huggingfaceserver serve it:

    POST /v1/chat/completions     chat: the model's chat template, streaming (server-sent events), stop,
                                  max_tokens (max_completion_tokens), temperature, top_p, seed, n, usage
    POST /v1/completions          text completions, one prompt or a list of them
    POST /v1/embeddings           embeddings of a text or a list of texts (float or base64)
    GET  /v1/models               the models ({"object": "list", "data": [...]}), also KServe V1's "models"
    GET  /openai/v1/models/{model}  one model
    ... and the same under /openai/v1/ (KServe's prefix)

The official ``openai`` client works against it unchanged. Errors are OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``: a prompt over the context, max_tokens beyond it,
malformed messages, unsupported options (logprobs, tools, penalties) are 400s naming the field.
A streaming client that goes away closes the stream, which cancels its generation.

Generation goes through ``Backend.generate`` (``types.GenerationRequest`` in, ``GenerationChunk`` out);
embeddings through ``Backend.infer`` with the texts as a BYTES tensor and ``output-0`` as the vectors.
Nothing here knows a framework.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from prebake import codec
from prebake.errors import InvalidParameter, PrebakeError, RequestError, echo
from prebake.http import Request, Response, Route
from prebake.types import Backend, GenerationChunk, GenerationRequest, InferenceRequest

EVENT_STREAM = "text/event-stream"
ROLES = ("system", "developer", "user", "assistant", "tool")
#: The API's own default for /v1/completions; chats default to the rest of the context.
COMPLETION_MAX_TOKENS = 16
MAX_CHOICES = 32
MAX_STOPS = 4
#: Options this server does not implement: refused when set to anything but their "off" value.
UNSUPPORTED: dict[str, Callable[[Any], bool]] = {
    "logprobs": lambda v: v not in (None, False, 0),
    "top_logprobs": lambda v: v not in (None, 0),
    "logit_bias": lambda v: bool(v),
    "presence_penalty": lambda v: v not in (None, 0, 0.0),
    "frequency_penalty": lambda v: v not in (None, 0, 0.0),
    "tools": lambda v: bool(v),
    "functions": lambda v: bool(v),
    "best_of": lambda v: v not in (None, 1),
    "echo": lambda v: v not in (None, False),
    "suffix": lambda v: v not in (None, ""),
    "response_format": lambda v: v not in (None, {"type": "text"}),
}


def error_body(status: int, message: str, request_id: str) -> bytes:
    """OpenAI's error shape; the type follows the status as OpenAI words it."""
    return codec.dumps({"error": _error(status, message)})


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        code = code or "invalid_api_key"
    return {"message": message, "type": kind, "param": param, "code": code}


def routes(backend: Backend, *, prefixes: tuple[str, ...] = ("/v1", "/openai/v1")) -> list[Route]:
    """The OpenAI routes for ``backend``, under each of ``prefixes``."""
    started = int(time.time())

    async def chat(request: Request) -> Response:
        doc = _body(request)
        model = _model(backend, doc)
        generation = _generation(doc, chat=True)
        generation.messages = _messages(doc.get("messages"))
        return await _generate(backend, model, [generation], doc, chat=True)

    async def completions(request: Request) -> Response:
        doc = _body(request)
        model = _model(backend, doc)
        prompts = _prompts(doc.get("prompt"))
        requests = []
        for prompt in prompts:
            generation = _generation(doc, chat=False)
            generation.prompt = prompt
            requests.append(generation)
        return await _generate(backend, model, requests, doc, chat=False)

    async def embeddings(request: Request) -> Response:
        doc = _body(request)
        model = _model(backend, doc)
        texts = _embedding_inputs(doc.get("input"))
        encoding = doc.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise InvalidParameter("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
        meta = backend.metadata(model)
        vectors_spec = next((o for o in meta.outputs if o.name == "output-0"), None)
        if (
            not meta.inputs
            or vectors_spec is None
            or vectors_spec.datatype != "FP32"
            or len(vectors_spec.shape) != 2
        ):
            raise InvalidParameter(
                f"model '{echo(model)}' gives no embeddings (a feature-extraction model does); "
                "use a chat or completion route for it",
                param="model",
            )
        array = np.empty(len(texts), dtype=object)
        array[:] = texts
        answer = await backend.infer(
            model, None, InferenceRequest(inputs={meta.inputs[0].name: array}, outputs=["output-0"])
        )
        vectors = np.asarray(answer.outputs["output-0"], dtype=np.float32)
        dimensions = doc.get("dimensions")
        if dimensions is not None and dimensions != vectors.shape[1]:
            raise InvalidParameter(
                f"model '{echo(model)}' makes embeddings of {vectors.shape[1]} dimensions, not {dimensions}",
                param="dimensions",
            )
        tokens = int(answer.parameters.get("prompt_tokens", 0))
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                if encoding == "base64"
                else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        return Response(
            codec.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        )

    def card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": started, "owned_by": "prebake"}

    async def list_models(request: Request) -> Response:
        names = backend.model_names()
        # KServe V1's GET /v1/models answers {"models": [names]} on the same path: both keys, both clients.
        return Response(codec.dumps({"object": "list", "data": [card(n) for n in names], "models": names}))

    async def get_model(request: Request) -> Response:
        name = request.path_params["model"]
        if name not in backend.model_names():
            raise _unknown_model(name)
        return Response(codec.dumps(card(name)))

    out = []
    for prefix in prefixes:
        out += [
            Route(("POST",), f"{prefix}/chat/completions", _openai(chat), error_body=error_body),
            Route(("POST",), f"{prefix}/completions", _openai(completions), error_body=error_body),
            Route(("POST",), f"{prefix}/embeddings", _openai(embeddings), error_body=error_body),
            Route(("GET",), f"{prefix}/models", list_models, error_body=error_body),
        ]
    # /v1/models/{name} stays KServe V1's readiness route; OpenAI's retrieve lives under KServe's prefix.
    out.append(Route(("GET",), "/openai/v1/models/{model}", _openai(get_model), error_body=error_body))
    return out


def _openai(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Client errors that name a field come back with it as OpenAI's ``param`` and ``code``; the rest
    goes to the route's error_body like every other protocol's."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except InvalidParameter as error:
            body = {"error": _error(error.status, error.message, error.param, error.code)}
            return Response(codec.dumps(body), status=error.status, headers=list(error.headers))

    return wrapped


# -- generation ---------------------------------------------------------------------------------------------
async def _generate(
    backend: Backend, model: str, requests: list[GenerationRequest], doc: dict[str, Any], *, chat: bool
) -> Response:
    ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    streams = [backend.generate(model, r) for r in requests]
    # The first chunk of every stream, before any answer: errors (a prompt too long) are still a 400.
    try:
        firsts = await asyncio.gather(*(_first(s) for s in streams))
    except BaseException:
        await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
        raise
    n = requests[0].n
    if doc.get("stream"):
        options = doc.get("stream_options") or {}
        if not isinstance(options, dict):
            raise InvalidParameter("'stream_options' must be an object", param="stream_options")
        usage = bool(options.get("include_usage", False))
        events = _sse(ident, created, model, streams, firsts, n, chat=chat, usage=usage)
        return Response(
            content_type=EVENT_STREAM,
            headers=[("cache-control", "no-cache"), ("x-accel-buffering", "no")],
            stream=events,
        )
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    prompt_tokens = completion_tokens = 0
    for p, (stream, first) in enumerate(zip(streams, firsts, strict=True)):
        made: dict[int, int] = {}
        prompt_tokens_here = 0
        async for chunk in _chain(first, stream):
            index = p * n + chunk.index
            texts.setdefault(index, []).append(chunk.text)
            made[index] = chunk.completion_tokens
            if chunk.finish_reason is not None:
                finish[index] = chunk.finish_reason
            prompt_tokens_here = chunk.prompt_tokens
        prompt_tokens += prompt_tokens_here
        completion_tokens += sum(made.values())
    choices = []
    for index in sorted(texts):
        text = "".join(texts[index])
        if chat:
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish.get(index),
                }
            )
        else:
            choices.append(
                {"index": index, "text": text, "logprobs": None, "finish_reason": finish.get(index)}
            )
    return Response(
        codec.dumps(
            {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": model,
                "choices": choices,
                "usage": _usage(prompt_tokens, completion_tokens),
            }
        )
    )


async def _first(stream: AsyncIterator[GenerationChunk]) -> GenerationChunk | None:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


async def _chain(
    first: GenerationChunk | None, stream: AsyncIterator[GenerationChunk]
) -> AsyncIterator[GenerationChunk]:
    if first is None:
        return
    yield first
    async for chunk in stream:
        yield chunk


async def _sse(
    ident: str,
    created: int,
    model: str,
    streams: list[AsyncGenerator[GenerationChunk, None]],
    firsts: list[GenerationChunk | None],
    n: int,
    *,
    chat: bool,
    usage: bool,
) -> AsyncIterator[bytes]:
    """Server-sent events: one JSON chunk an event, then ``data: [DONE]``. Several prompts (a list on
    /v1/completions) stream side by side; closing this generator closes (cancels) all of them."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    queue: asyncio.Queue[tuple[int, GenerationChunk | None]] = asyncio.Queue()

    async def pump(p: int, first: GenerationChunk | None, stream: AsyncIterator[GenerationChunk]) -> None:
        try:
            async for chunk in _chain(first, stream):
                await queue.put((p, chunk))
        finally:
            await queue.put((p, None))

    tasks = [
        asyncio.ensure_future(pump(p, first, stream))
        for p, (first, stream) in enumerate(zip(firsts, streams, strict=True))
    ]
    greeted: set[int] = set()
    made: dict[int, int] = {}
    prompt_tokens: dict[int, int] = {}
    open_streams = len(tasks)

    def event(choice: dict[str, Any]) -> bytes:
        doc: dict[str, Any] = {
            "id": ident,
            "object": kind,
            "created": created,
            "model": model,
            "choices": [choice],
        }
        if usage:
            doc["usage"] = None
        return b"data: " + codec.dumps(doc) + b"\n\n"

    try:
        while open_streams:
            p, chunk = await queue.get()
            if chunk is None:
                open_streams -= 1
                task = tasks[p]
                if task.done() and task.exception() is not None:
                    error = task.exception()
                    message = error.message if isinstance(error, PrebakeError) else "generation failed"
                    status = error.status if isinstance(error, PrebakeError) else 500
                    yield b"data: " + codec.dumps({"error": _error(status, message)}) + b"\n\n"
                    return
                continue
            index = p * n + chunk.index
            made[index] = chunk.completion_tokens
            prompt_tokens[p] = chunk.prompt_tokens
            if chat:
                if index not in greeted:
                    greeted.add(index)
                    yield event(
                        {
                            "index": index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    )
                if chunk.text:
                    yield event(
                        {
                            "index": index,
                            "delta": {"content": chunk.text},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    )
                if chunk.finish_reason is not None:
                    yield event(
                        {"index": index, "delta": {}, "logprobs": None, "finish_reason": chunk.finish_reason}
                    )
            elif chunk.text or chunk.finish_reason is not None:
                yield event(
                    {
                        "index": index,
                        "text": chunk.text,
                        "logprobs": None,
                        "finish_reason": chunk.finish_reason,
                    }
                )
        if usage:
            total = _usage(sum(prompt_tokens.values()), sum(made.values()))
            doc = {
                "id": ident,
                "object": kind,
                "created": created,
                "model": model,
                "choices": [],
                "usage": total,
            }
            yield b"data: " + codec.dumps(doc) + b"\n\n"
        yield b"data: [DONE]\n\n"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# -- request decoding -----------------------------------------------------------------------------------------
def _body(request: Request) -> dict[str, Any]:
    doc = codec.loads(request.body)
    if not isinstance(doc, dict):
        raise RequestError("the request body must be a JSON object")
    return doc


def _unknown_model(name: str) -> InvalidParameter:
    return InvalidParameter(
        f"The model `{echo(name)}` does not exist.", param="model", code="model_not_found", status=404
    )


def _model(backend: Backend, doc: dict[str, Any]) -> str:
    name = doc.get("model")
    if name is None:
        default = backend.default_model()
        if default is None:
            raise InvalidParameter("'model' is required: name the model to use", param="model")
        return default
    if not isinstance(name, str) or not name:
        raise InvalidParameter("'model' must be a model's name", param="model")
    if name not in backend.model_names():
        raise _unknown_model(name)
    return name


def _number(doc: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidParameter(f"'{key}' must be a number from {low:g} to {high:g}, not {value!r}", param=key)
    return float(value)


def _whole(doc: dict[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        span = f">= {low}" if high is None else f"from {low} to {high}"
        raise InvalidParameter(f"'{key}' must be a whole number {span}, not {value!r}", param=key)
    return value


def _generation(doc: dict[str, Any], *, chat: bool) -> GenerationRequest:
    for key, refused in UNSUPPORTED.items():
        if key in doc and refused(doc[key]):
            raise InvalidParameter(f"'{key}' is not supported by this server; leave it out", param=key)
    max_tokens = _whole(doc, "max_completion_tokens", 1) if chat else None
    max_tokens = max_tokens or _whole(doc, "max_tokens", 1)
    if max_tokens is None and not chat:
        max_tokens = COMPLETION_MAX_TOKENS
    stop = doc.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= MAX_STOPS:
        stops = list(stop)
    else:
        raise InvalidParameter(
            f"'stop' must be a string or a list of up to {MAX_STOPS} strings", param="stop"
        )
    seed = doc.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidParameter("'seed' must be a whole number", param="seed")
    if "stream" in doc and not isinstance(doc["stream"], bool | None):
        raise InvalidParameter("'stream' must be true or false", param="stream")
    return GenerationRequest(
        max_tokens=max_tokens,
        temperature=_number(doc, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(doc, "top_p", 1.0, 0.0, 1.0),
        stop=stops,
        seed=seed,
        n=_whole(doc, "n", 1, MAX_CHOICES) or 1,
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    """Chat messages as the tokenizer's chat template takes them: role and text content."""
    if not isinstance(value, list) or not value:
        raise InvalidParameter(
            "'messages' must be a non-empty list of {role, content} objects", param="messages"
        )
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidParameter(f"{where} must be an object with 'role' and 'content'", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidParameter(
                f"{where}.role must be one of {', '.join(ROLES)}, not {echo(str(role))!r}",
                param=f"{where}.role",
            )
        out.append({"role": role, "content": _content(message.get("content"), f"{where}.content")})
    return out


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for j, part in enumerate(value):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise InvalidParameter(
                    f'{where}[{j}] must be a text part {{"type": "text", "text": ...}}; this server\'s '
                    "models take text only",
                    param=where,
                )
            parts.append(part["text"])
        return "\n".join(parts)
    raise InvalidParameter(f"{where} must be a string or a list of text parts", param=where)


def _prompts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(p, int | list) for p in value):
        raise InvalidParameter(
            "prompts as token ids are not supported: token ids differ between tokenizers; send text",
            param="prompt",
        )
    raise InvalidParameter("'prompt' must be a string or a non-empty list of strings", param="prompt")


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(t, int | list) for t in value):
        raise InvalidParameter(
            "'input' as token ids is not supported: token ids differ between tokenizers; send text",
            param="input",
        )
    raise InvalidParameter("'input' must be a string or a non-empty list of strings", param="input")
