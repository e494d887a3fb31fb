"""A SageMaker inference script (``code/inference.py``) run unchanged, as the SageMaker inference
toolkit runs it.

The script may define ``model_fn(model_dir)``, ``input_fn(body, content_type)``, ``predict_fn(data,
model)``, ``output_fn(prediction, accept)``, or ``transform_fn(model, body, content_type, accept)``
instead of the last three (both at once is refused, as the toolkit does). Each may take one more
argument, the context, which is None here. Where a function is missing the toolkit's default stands in:

- ``model_fn``: the toolkit has none; here the model file beside the script is loaded with its no-code
  runtime (``model.joblib``, ``model.onnx``...), or ModelLoadError where there is none.
- ``input_fn``: ``application/json`` -> ``np.array(json.loads(body))``, ``text/csv`` -> ``np.genfromtxt``,
  ``application/x-npy`` -> the array (as ``np.load`` with ``allow_pickle=False``, unlike the toolkit,
  and with its header checked against the body first); others 415.
- ``predict_fn``: a no-code runtime's first output, else ``model.predict(data)``, else ``model(data)``.
- ``output_fn``: JSON, CSV or NPY for the ``Accept`` header, whose default (absent or ``*/*``) is
  ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` or ``application/json``; others 415.

JSON and CSV bodies reach ``input_fn`` as str, others as bytes, as in the toolkit. A tuple returned by
``transform_fn``/``output_fn`` is ``(body, content_type)``. The script is ``code/inference.py``, or
``code/$SAGEMAKER_PROGRAM`` as in SageMaker's framework containers, or ``parameters.script`` (relative
to the model directory). ``parameters.default_accept`` overrides ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``.

A handler script is code: loading one runs it in the server, with the server's permissions, as a
pickle would. The log says so for each; ``parameters.handler_scripts`` false (the operator's
``--no-handler-scripts``, or the model's own settings file) refuses it.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from prebake import codec
from prebake.errors import (
    ConfigError,
    InvalidInput,
    ModelLoadError,
    PrebakeError,
    ScoringError,
    UnsupportedMediaType,
)
from prebake.runtimes.base import ModelSettings, RawRuntime, Runtime
from prebake.types import InferenceRequest, RawRequest, RawResult

log = logging.getLogger("prebake.runtimes")

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
_TEXT_TYPES = (JSON, CSV)
_HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


def script_path() -> Path:
    """Where the toolkit looks for the script, relative to the model directory: code/inference.py, or
    the file ``$SAGEMAKER_PROGRAM`` names in code/."""
    program = os.environ.get("SAGEMAKER_PROGRAM") or "inference.py"
    return Path("code") / (program if program.endswith(".py") else f"{program}.py")


def media_type(header: str) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``."""
    return header.split(";", 1)[0].strip().lower()


def default_input_fn(body: str | bytes, content_type: str) -> np.ndarray:
    kind = media_type(content_type)
    try:
        if kind == JSON:
            return np.array(json.loads(body))
        if kind == CSV:
            text = body if isinstance(body, str) else body.decode()
            return np.genfromtxt(io.StringIO(text), delimiter=",")
        if kind == NPY:
            raw = body if isinstance(body, bytes) else body.encode()
            # Checked against the body before anything is allocated; a copy, as np.load's is writable.
            return codec.decode_npy(raw).copy()
    except InvalidInput as exc:
        raise InvalidInput(f"the body is not valid {kind}: {exc.message}") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the body is not valid {kind}: {exc}") from None
    raise UnsupportedMediaType(f"content type {content_type!r} is not supported; send {JSON}, {CSV} or {NPY}")


def default_output_fn(prediction: Any, accept: str) -> bytes:
    kind = media_type(accept)
    if kind == JSON:
        return json.dumps(prediction, default=_tolist).encode()
    if kind == CSV:
        out = io.StringIO()
        np.savetxt(out, np.asarray(prediction), delimiter=",", fmt="%s")
        return out.getvalue().encode()
    if kind == NPY:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(prediction), allow_pickle=False)
        return buffer.getvalue()
    raise UnsupportedMediaType(f"accept type {accept!r} is not supported; accept {JSON}, {CSV} or {NPY}")


def default_predict_fn(data: Any, model: Any) -> Any:
    if isinstance(model, Runtime):
        # Under the model's own input name: runtimes take inputs by name.
        name = model.plan.names[0] if model.plan is not None else "input-0"
        outputs = model.predict(InferenceRequest(inputs={name: np.asarray(data)})).outputs
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs
    if hasattr(model, "predict"):
        return model.predict(data)
    if callable(model):
        return model(data)
    raise ScoringError(
        f"the script has no predict_fn and its model ({type(model).__name__}) has no predict()"
    )


def _tolist(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _with_context(fn: Callable[..., Any], n_args: int) -> Callable[..., Any]:
    """``fn`` called with ``n_args`` arguments, plus a None context where it takes one more, as the
    toolkit does."""
    try:
        count = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return fn
    if count == n_args:
        return fn
    if count == n_args + 1:
        return lambda *args: fn(*args, None)
    raise ConfigError(f"{getattr(fn, '__name__', fn)} takes {count} arguments; SageMaker passes {n_args}")


class SageMakerScriptRuntime(RawRuntime):
    name = "sagemaker"

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.model_dir = settings.path if settings.path.is_dir() else settings.path.parent
        self.script = self.model_dir / str(settings.parameters.get("script") or script_path())
        self.model: Any = None
        self._transform: Callable[[Any, Any, str, str], Any] | None = None
        self._input: Callable[..., Any] = default_input_fn
        self._predict: Callable[..., Any] = default_predict_fn
        self._output: Callable[..., Any] = default_output_fn
        self.default_accept = str(
            settings.parameters.get("default_accept")
            or os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
            or JSON
        )

    def load(self) -> None:
        if self.settings.parameters.get("handler_scripts") is False:
            raise ModelLoadError(
                f"model {self.settings.name!r}: {self.script} is a handler script, Python code that would run "
                "inside the server, and this server refuses handler scripts (--no-handler-scripts or "
                'PREBAKE_HANDLER_SCRIPTS=0, or "handler_scripts": false in its model-settings.json). Serve '
                'the model file alone (remove code/, or name the file in model-settings.json\'s "uri"), '
                "or let the server run it."
            )
        log.warning(
            "model %r: running the handler script %s: it is Python code, run inside the server with the "
            "server's permissions, so serve only folders you trust (--no-handler-scripts refuses them)",
            self.settings.name,
            self.script,
        )
        module = self._import_script()
        found = {n: getattr(module, n) for n in _HANDLERS if callable(getattr(module, n, None))}
        if "transform_fn" in found and {"input_fn", "predict_fn", "output_fn"} & found.keys():
            raise ConfigError(
                f"{self.script}: transform_fn cannot be used together with input_fn, predict_fn or output_fn"
            )
        if "transform_fn" in found:
            self._transform = _with_context(found["transform_fn"], 4)
        self._input = _with_context(found.get("input_fn", default_input_fn), 2)
        self._predict = _with_context(found.get("predict_fn", default_predict_fn), 2)
        self._output = _with_context(found.get("output_fn", default_output_fn), 2)
        if "model_fn" in found:
            try:
                self.model = _with_context(found["model_fn"], 1)(str(self.model_dir))
            except PrebakeError:
                raise
            except Exception as exc:  # user code: any failure is a load failure, reported with its type
                raise ModelLoadError(f"{self.script}: model_fn raised {type(exc).__name__}: {exc}") from exc
        else:
            runtime = self._load_saved_model()
            # A user's own predict_fn/transform_fn expects the framework's object (an estimator, a session),
            # not prebake's wrapper; the default predict_fn takes the wrapper.
            user_code = {"predict_fn", "transform_fn"} & found.keys()
            self.model = _native(runtime) if user_code else runtime

    def _import_script(self) -> Any:
        if not self.script.is_file():
            raise ModelLoadError(f"{self.script}: no such SageMaker inference script")
        code_dir = str(self.script.parent)
        if code_dir not in sys.path:  # the toolkit puts code/ on the path so helper modules import
            sys.path.insert(0, code_dir)
        module_name = f"prebake_sagemaker_{self.settings.name.replace('-', '_')}"
        spec = importlib.util.spec_from_file_location(module_name, self.script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # user code: any failure is a load failure, reported with its type
            raise ModelLoadError(f"{self.script}: importing it raised {type(exc).__name__}: {exc}") from exc
        sys.modules[module_name] = module
        return module

    def _load_saved_model(self) -> Runtime:
        from prebake.runtimes.discover import locate
        from prebake.runtimes.registry import create_runtime

        try:
            path, runtime_name, _ = locate(self.model_dir, scripts=False)
        except ConfigError as exc:
            raise ModelLoadError(f"{self.script} defines no model_fn and {exc.message}") from None
        settings = ModelSettings(
            name=self.settings.name,
            path=path,
            runtime=runtime_name,
            predict_method=self.settings.predict_method,
            device=self.settings.device,
            parameters=self.settings.parameters,
        )
        runtime = create_runtime(settings)
        assert isinstance(runtime, Runtime)
        runtime.load()
        return runtime

    def score(self, request: RawRequest) -> RawResult:
        headers = request.headers
        content_type = headers.get("content-type") or JSON
        accept = headers.get("accept") or ""
        if not accept or accept == "*/*":
            accept = self.default_accept
        body: str | bytes = request.body
        if media_type(content_type) in _TEXT_TYPES:
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"the {media_type(content_type)} body is not valid UTF-8") from None
        try:
            if self._transform is not None:
                result = self._transform(self.model, body, content_type, accept)
            else:
                result = self._output(self._predict(self._input(body, content_type), self.model), accept)
        except PrebakeError:
            raise
        except Exception as exc:  # user code: reported as the toolkit does, a 500 with the error's text
            raise ScoringError(f"{type(exc).__name__}: {exc}") from exc
        response_type = accept
        if isinstance(result, tuple):
            result, response_type = result[0], str(result[1])
        return RawResult(body=_as_bytes(result), content_type=response_type)


def _native(runtime: Runtime) -> Any:
    """The framework's own model object inside a no-code runtime, where it keeps one."""
    for attribute in ("model", "session"):
        value = getattr(runtime, attribute, None)
        if value is not None:
            return value
    return runtime


def _as_bytes(result: Any) -> bytes:
    if isinstance(result, bytes):
        return result
    if isinstance(result, bytearray | memoryview):
        return bytes(result)
    if isinstance(result, str):
        return result.encode()
    return json.dumps(result, default=_tolist).encode()
