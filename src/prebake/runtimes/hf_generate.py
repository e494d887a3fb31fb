"""Generation engines over a transformers model, each on a thread of its own (never the event loop).

``ContinuousEngine`` schedules at the iteration level, as vLLM and TGI do: one thread runs decoding
steps over every running sequence at once; between two steps, new requests are prefilled (together, left
padded) and join the batch, and finished or cancelled sequences leave it. Each sequence keeps its own
rows of one batched KV cache (transformers' ``DynamicCache``): joining pads the shorter side on the left,
leaving drops rows and the columns no row needs any more. Attention masks and position ids keep every
sequence's result what it would be alone (tested against ``generate``).

``SequentialEngine`` is transformers' own ``generate``, one request after another, with a streamer: for
models whose cache cannot be merged that way (encoder-decoder models, sliding-window or recurrent
caches) and as the baseline the benchmark compares with.

Both take ``types.GenerationRequest`` and report ``types.GenerationChunk`` through the sink they are
given, from their own thread.
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from prebake.errors import PrebakeError, ScoringError
from prebake.runtimes.hf_prompts import Prompter, TextStream
from prebake.types import FinishReason, GenerationChunk, GenerationRequest, GenerationSink

log = logging.getLogger("prebake.runtimes")

#: Tokens of prompts prefilled in one step, at most (one long prompt always goes alone): bounds the pause
#: that running sequences see while newcomers join.
PREFILL_TOKENS = 4096


class Handle:
    """One submitted request: its sink, its choices, and whether its client went away."""

    __slots__ = ("request", "sink", "cancelled", "remaining", "prompt_tokens")

    def __init__(self, request: GenerationRequest, sink: GenerationSink) -> None:
        self.request = request
        self.sink = sink
        self.cancelled = False
        self.remaining = request.n
        self.prompt_tokens = 0

    def cancel(self) -> None:
        self.cancelled = True  # read by the engine thread at its next step


class Sequence:
    """One choice being generated: its tokens, sampling settings, text stream and random generator."""

    __slots__ = ("handle", "index", "prompt", "max_new", "stream", "generated", "next_token", "generator")

    def __init__(
        self, handle: Handle, index: int, prompt: list[int], max_new: int, stream: TextStream, generator: Any
    ) -> None:
        self.handle = handle
        self.index = index
        self.prompt = prompt
        self.max_new = max_new
        self.stream = stream
        self.generated = 0
        self.next_token = -1
        self.generator = generator


class Engine:
    """What both engines share: the model, its prompts, the thread and the inbox."""

    kind = ""

    def __init__(
        self, model: Any, tokenizer: Any, prompter: Prompter, end_ids: set[int], *, device: str
    ) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.prompter = prompter
        self.context_length = prompter.context_length
        self.end_ids = end_ids
        self.device = device
        self.inbox: queue.SimpleQueue[Handle | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- TextGenerator ------------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, sink: GenerationSink) -> Callable[[], None]:
        handle = Handle(request, sink)
        self.inbox.put(handle)
        return handle.cancel

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=f"prebake-generate-{name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self.inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        raise NotImplementedError

    # -- shared steps ---------------------------------------------------------------------------------------
    def _sequences(self, handle: Handle) -> list[Sequence]:
        """The request's choices, or [] after telling its sink why it cannot run."""
        request = handle.request
        try:
            prompt = self.prompter.prepare(request)
        except PrebakeError as error:
            handle.sink(error)
            return []
        except Exception as error:  # noqa: BLE001 - a tokenizer failing on odd input: the request fails
            handle.sink(ScoringError(f"cannot tokenize the prompt: {type(error).__name__}: {error}"))
            return []
        handle.prompt_tokens = len(prompt.ids)
        sequences = []
        for index in range(request.n):
            generator = self.torch.Generator(device=self.device)
            seed = request.seed + index if request.seed is not None else random.SystemRandom().getrandbits(62)
            generator.manual_seed(seed)
            stream = TextStream(self.tokenizer, request.stop)
            sequences.append(Sequence(handle, index, prompt.ids, prompt.max_new_tokens, stream, generator))
        return sequences

    def _accept(self, seq: Sequence, token: int) -> bool:
        """Take one sampled token into ``seq`` and report it; True where the sequence is done."""
        seq.generated += 1
        reason: FinishReason | None = None
        if token in self.end_ids:
            text = seq.stream.end("stop")
            reason = "stop"
        else:
            text = seq.stream.add(token)
            if seq.stream.finish is not None:
                reason = seq.stream.finish
            elif seq.generated >= seq.max_new or len(seq.prompt) + seq.generated >= self.context_length:
                text += seq.stream.end("length")
                reason = seq.stream.finish  # "stop" where the last characters completed a stop string
        handle = seq.handle
        if text or reason is not None or seq.generated == 1:
            handle.sink(
                GenerationChunk(
                    index=seq.index,
                    text=text,
                    finish_reason=reason,
                    prompt_tokens=handle.prompt_tokens,
                    completion_tokens=seq.generated,
                )
            )
        if reason is None:
            return False
        handle.remaining -= 1
        if handle.remaining == 0:
            handle.sink(None)
        return True

    def _sample(self, logits: Any, rows: list[Sequence]) -> list[int]:
        """One token per row: greedy where temperature is 0, else top-p sampling with the row's generator."""
        torch = self.torch
        greedy = logits.argmax(dim=-1).tolist()
        tokens = []
        for row, seq in enumerate(rows):
            request = seq.handle.request
            if request.temperature <= 1e-5:
                tokens.append(int(greedy[row]))
                continue
            probs = torch.softmax(logits[row].float() / request.temperature, dim=-1)
            if request.top_p < 1.0:
                ordered, order = probs.sort(descending=True)
                keep = (ordered.cumsum(0) - ordered) < request.top_p  # the first always stays
                ordered = ordered * keep
                pick = torch.multinomial(ordered, 1, generator=seq.generator)
                tokens.append(int(order[pick]))
            else:
                tokens.append(int(torch.multinomial(probs, 1, generator=seq.generator)))
        return tokens


def growing_layer_class() -> type:
    """transformers' ``DynamicLayer``, but decoding steps write into room kept at the end of its keys and
    values instead of copying them whole: ``DynamicLayer.update`` concatenates, which at 8 sequences was
    16% of the engine thread (cProfile). ``keys``/``values`` stay views of the buffers, so everything
    that reads them sees the same tensors; where the engine replaces them (joining, leaving, zeroing the
    padding), the next update copies the new ones into fresh buffers."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        room: Any = None  # (key buffer, value buffer) whose leading columns ``keys``/``values`` view
        given: Any = None  # the views last handed out: anything else in ``keys``/``values`` was put there

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized or self.keys is None or self.values is None:
                self.lazy_initialization(key_states, value_states)
            assert self.keys is not None and self.values is not None
            length = self.keys.shape[-2] if self.keys.numel() else 0
            end = length + key_states.shape[-2]
            ours = self.given is not None and self.keys is self.given[0] and self.values is self.given[1]
            if not ours or end > self.room[0].shape[-2]:
                capacity = max(2 * end, end + 64)
                keys = key_states.new_empty((*key_states.shape[:-2], capacity, key_states.shape[-1]))
                values = value_states.new_empty((*value_states.shape[:-2], capacity, value_states.shape[-1]))
                if length:
                    keys[..., :length, :] = self.keys
                    values[..., :length, :] = self.values
                self.room = (keys, values)
            keys, values = self.room
            keys[..., length:end, :] = key_states
            values[..., length:end, :] = value_states
            self.keys, self.values = keys[..., :end, :], values[..., :end, :]
            self.given = (self.keys, self.values)
            return self.keys, self.values

    return GrowingLayer


def cache_keyword(model: Any) -> str:
    """The forward argument that takes the KV cache: ``cache`` from transformers 5.25 (where
    ``past_key_values`` is deprecated and warns), ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class ContinuousEngine(Engine):
    """Iteration-level scheduling over one batched KV cache (see the module docstring)."""

    kind = "continuous"

    def __init__(self, *args: Any, max_sequences: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_sequences = max(1, max_sequences)
        forward = inspect.signature(self.model.forward).parameters
        self._positions = "position_ids" in forward
        self._keep = "logits_to_keep" in forward
        self._cache = cache_keyword(self.model)
        self._layer = growing_layer_class()
        self.rows: list[Sequence] = []
        self.cache: Any = None
        self.mask: Any = None
        self.waiting: list[Sequence] = []
        #: Decoding steps run and the most rows one step held: what the tests read to see batches form.
        self.steps = 0
        self.widest = 0

    @staticmethod
    def supports(model: Any) -> bool:
        """Whether the model's cache is plain full attention that this engine can merge (probed once)."""
        import torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        if getattr(model.config, "is_encoder_decoder", False):
            return False
        try:
            cache = DynamicCache(config=model.config)
            with torch.inference_mode():
                ids = torch.tensor([[0, 0]], device=model.device)
                model(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    use_cache=True,
                    **{cache_keyword(model): cache},
                )
        except Exception as exc:  # noqa: BLE001 - any failure means: use generate() instead
            log.info("continuous batching is not available for this model (%s); using generate()", exc)
            return False
        layers: list[Any] = list(getattr(cache, "layers", None) or [])
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._admit(block=not self.rows and not self.waiting)
                if self._stopping:
                    return
                self._drop_cancelled()
                if self.waiting and len(self.rows) < self.max_sequences:
                    self._prefill()
                if self.rows:
                    self._step()
            except Exception as error:  # noqa: BLE001 - the engine must outlive a failing batch
                log.exception("generation failed; the requests in the batch get the error")
                self._fail_all(ScoringError(f"generation failed: {type(error).__name__}: {error}"))

    def _admit(self, *, block: bool) -> None:
        """Move newly submitted requests to the waiting list (blocking while there is nothing to do)."""
        try:
            handle = self.inbox.get(block=block)
        except queue.Empty:
            return
        while handle is not None:
            if not handle.cancelled:
                self.waiting.extend(self._sequences(handle))
            try:
                handle = self.inbox.get_nowait()
            except queue.Empty:
                return
        if handle is None:  # stop() was called
            return

    def _drop_cancelled(self) -> None:
        self.waiting = [s for s in self.waiting if not s.handle.cancelled]
        keep = [i for i, s in enumerate(self.rows) if not s.handle.cancelled]
        if len(keep) != len(self.rows):
            self._keep_rows(keep)

    def _prefill(self) -> None:
        """Prefill as many waiting sequences as fit, together, then merge them into the running batch."""
        torch = self.torch
        room = self.max_sequences - len(self.rows)
        chosen: list[Sequence] = []
        width = 0
        for seq in self.waiting[:room]:
            wider = max(width, len(seq.prompt))
            if chosen and wider * (len(chosen) + 1) > PREFILL_TOKENS:
                break
            chosen.append(seq)
            width = wider
        self.waiting = self.waiting[len(chosen) :]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(chosen), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, seq in enumerate(chosen):
            ids[row, width - len(seq.prompt) :] = torch.tensor(seq.prompt)
            mask[row, width - len(seq.prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        from transformers import DynamicCache

        cache: Any = DynamicCache(config=self.model.config)
        cache.layers = [self._layer() for _ in cache.layers]
        kwargs: dict[str, Any] = {"attention_mask": mask, self._cache: cache, "use_cache": True}
        if self._positions:
            kwargs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
        if self._keep:
            kwargs["logits_to_keep"] = 1
        with torch.inference_mode():
            logits = self.model(input_ids=ids, **kwargs).logits[:, -1, :]
        # Padding's keys and values are never attended to, but zero them: 0 * NaN would still be NaN.
        zero = mask[:, None, :, None].to(cache.layers[0].keys.dtype)
        for layer in cache.layers:
            layer.keys = layer.keys * zero
            layer.values = layer.values * zero
        self._merge(cache, mask, chosen)
        first = len(self.rows) - len(chosen)
        self._finish_step(logits, list(range(first, len(self.rows))))

    def _merge(self, cache: Any, mask: Any, joining: list[Sequence]) -> None:
        torch = self.torch
        if not self.rows:
            self.cache, self.mask, self.rows = cache, mask, list(joining)
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_left_pad(torch, self.mask, width), _left_pad(torch, mask, width)], dim=0)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(torch, mine.keys, width), _left_pad(torch, theirs.keys, width)])
            mine.values = torch.cat(
                [_left_pad(torch, mine.values, width), _left_pad(torch, theirs.values, width)]
            )
        self.rows.extend(joining)

    def _step(self) -> None:
        """One decoding step for every running sequence."""
        torch = self.torch
        rows = self.rows
        tokens = torch.tensor([[s.next_token] for s in rows], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {self._cache: self.cache, "use_cache": True}
        if self._positions:
            kwargs["position_ids"] = self.mask.sum(dim=1, keepdim=True)
        self.mask = torch.cat(
            [self.mask, torch.ones((len(rows), 1), dtype=self.mask.dtype, device=self.device)], 1
        )
        kwargs["attention_mask"] = self.mask
        with torch.inference_mode():
            logits = self.model(input_ids=tokens, **kwargs).logits[:, -1, :]
        self.steps += 1
        self.widest = max(self.widest, len(rows))
        self._finish_step(logits, list(range(len(rows))))

    def _finish_step(self, logits: Any, positions: list[int]) -> None:
        """Sample the rows at ``positions``, report their tokens, and let finished sequences leave."""
        rows = [self.rows[p] for p in positions]
        tokens = self._sample(logits, rows)
        done = set()
        for position, seq, token in zip(positions, rows, tokens, strict=True):
            seq.next_token = token
            if seq.handle.cancelled or self._accept(seq, token):
                done.add(position)
        if done:
            self._keep_rows([i for i in range(len(self.rows)) if i not in done])
        _hand_over()

    def _keep_rows(self, keep: list[int]) -> None:
        """Only the rows ``keep`` stay; columns that no remaining row attends to are cut off the left."""
        torch = self.torch
        if not keep:
            self.rows, self.cache, self.mask = [], None, None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        mask = self.mask.index_select(0, index)
        used = mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        self.mask = mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, first:]
            layer.values = layer.values.index_select(0, index)[:, :, first:]
        self.rows = [self.rows[i] for i in keep]

    def _fail_all(self, error: PrebakeError) -> None:
        handles = {id(s.handle): s.handle for s in [*self.rows, *self.waiting]}
        for handle in handles.values():
            handle.sink(error)
        self.rows, self.waiting, self.cache, self.mask = [], [], None, None


def _hand_over() -> None:
    """Let the event loop send what the step just reported before the next step starts. Where the loop
    shares a core with this thread (a pinned or one-CPU container), it would otherwise wait for the
    scheduler and then for the GIL while the next step runs: served time to first token measured
    19.6 ms against 15.5 ms with this (bench/hf.py's model, one core)."""
    os.sched_yield()  # releases the GIL too


def _left_pad(torch: Any, tensor: Any, width: int) -> Any:
    """``tensor`` padded with zeros on the left of its sequence axis (-1 for masks, -2 for KV) to ``width``."""
    axis = -1 if tensor.dim() == 2 else -2
    missing = width - tensor.shape[axis]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim=axis)


class SequentialEngine(Engine):
    """transformers' ``generate``, one request (and one choice) at a time, streamed token by token."""

    kind = "sequential"

    def _run(self) -> None:
        while not self._stopping:
            handle = self.inbox.get()
            if handle is None:
                return
            if handle.cancelled:
                continue
            try:
                for seq in self._sequences(handle):
                    if handle.cancelled:
                        break
                    self._generate(seq)
            except Exception as error:  # noqa: BLE001 - the engine must outlive a failing request
                log.exception("generation failed")
                handle.sink(ScoringError(f"generation failed: {type(error).__name__}: {error}"))

    def _generate(self, seq: Sequence) -> None:
        torch = self.torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        engine, request = self, seq.handle.request
        done = False

        class Streamer:
            """generate()'s streamer: the prompt (or the decoder's start token) first, then a token a step."""

            prompt_seen = False

            def put(self, value: Any) -> None:
                nonlocal done
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                for token in value.reshape(-1).tolist():
                    if not done:
                        seq.next_token = token
                        done = engine._accept(seq, int(token))
                _hand_over()

            def end(self) -> None:
                nonlocal done
                if not done and not seq.handle.cancelled:
                    text = seq.stream.end("length")
                    seq.handle.sink(
                        GenerationChunk(seq.index, text, "length", seq.handle.prompt_tokens, seq.generated)
                    )
                    seq.handle.remaining -= 1
                    if seq.handle.remaining == 0:
                        seq.handle.sink(None)
                    done = True

        class Until(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                stop = done or seq.handle.cancelled
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        sampling = request.temperature > 1e-5
        config = GenerationConfig(
            max_new_tokens=seq.max_new,
            do_sample=sampling,
            temperature=request.temperature if sampling else None,
            top_p=request.top_p if sampling else None,
            top_k=None,
            eos_token_id=sorted(self.end_ids) or None,
            pad_token_id=self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else (sorted(self.end_ids) or [0])[0],
        )
        if request.seed is not None:
            torch.manual_seed(request.seed + seq.index)
        ids = torch.tensor([seq.prompt], dtype=torch.long, device=self.device)
        started = time.perf_counter()
        with torch.inference_mode():
            self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                streamer=Streamer(),
                stopping_criteria=StoppingCriteriaList([Until()]),
            )
        log.debug("generate(): %d tokens in %.3f s", seq.generated, time.perf_counter() - started)
