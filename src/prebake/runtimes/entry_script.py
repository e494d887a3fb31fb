"""The Azure ML entry-script runtime: a score.py with init() and run(), run unchanged.

The contract is the reference server's (azureml-inference-server-http 1.5.1):

- The script is imported as module ``entry_module``; where it only forwards to another module through a
  ``driver_module`` attribute, that module's run() is called (init() stays the driver's).
- run() is examined once, at load. ``request_headers`` among its parameters gets the headers (names
  Title-Cased, as Flask gives them). With ``@rawhttp`` its first parameter gets an ``AMLRequest``. With
  inference-schema decorators its parameters come from the top-level keys of a JSON object body (their
  defaults where a key is missing). Otherwise its first parameter gets the body as a UTF-8 string.
- GET passes the query arguments, each parsed as JSON where it parses: as parameters for schema scripts,
  as a JSON object string otherwise. OPTIONS answers 200 with an empty body, except under @rawhttp.
- What run() returns is sent as JSON (so a str becomes a JSON string), unless it is an ``AMLResponse``,
  which is sent as it is.

Where it is better than the reference, on purpose: numpy, pandas and other values serialize (see
``prebake.jsonout``) instead of failing with 500; an input that inference-schema cannot convert gives 422
naming the parameter, not 500; ``get_json()`` on a bad body under @rawhttp gives 400/415, not 500; run()
calling sys.exit() fails that request, not the worker; ``async def`` init() and run() are awaited; the script is in ``sys.modules`` while it is
imported, so dataclasses and pickle work in it; loading again in one process (tests, reloads) does not trip
inference-schema's "output schema already defined".

``score()`` is the hot path: everything that can be decided is decided in ``load()``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import itertools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from prebake import jsonout
from prebake.errors import (
    BadJSON,
    InvalidInput,
    MethodNotAllowed,
    ModelLoadError,
    RequestError,
    ScoringError,
    UnsupportedMediaType,
    echo,
)
from prebake.runtimes import azure_schema
from prebake.runtimes.base import RawRuntime, raw_result
from prebake.types import RawRequest, RawResult

logger = logging.getLogger("prebake.entry_script")

MODULE_NAME = "entry_module"
RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
_MODEL_DIR_LOG_LINES = 200

# How run() takes its input, decided once in load().
_STRING, _SCHEMA, _RAW = "string", "schema", "raw"


class EntryScriptRuntime(RawRuntime):
    """Runs one Azure ML score.py. ``load()`` once per worker, then ``score()`` per request, from any thread.

    Example::

        runtime = EntryScriptRuntime(Path("score.py"))
        runtime.load()
        result = runtime.score(RawRequest("POST", "/score", b"", {}, b'{"data": [1, 2]}'))
    """

    name = "azure-entry-script"

    def __init__(
        self,
        script: Path,
        *,
        debug: bool = False,
        app_root: Path | None = None,
        model_dir: Path | None = None,
    ) -> None:
        self.script = Path(script)
        self.debug = debug
        # Where user swagger files are found (AML_APP_ROOT), and the folder listed when init() fails.
        self.app_root = Path(app_root) if app_root is not None else self.script.parent
        self.model_dir = model_dir
        self.module: ModuleType | None = None
        self._run: Callable[..., Any] = _not_loaded
        self._mode = _STRING
        self._data_param = ""
        self._schema_params: list[tuple[str, Any]] = []
        self._wants_headers = False
        self._swagger: azure_schema.SwaggerDocs | None = None
        self._response_type: Any = None
        self._request_type: Any = None
        self._request_error: type[Exception] | None = None
        self._json_error: type[Exception] = ValueError

    # -- load --------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Import the script, check and examine run(), call init(), prepare the swagger documents.

        Raises ModelLoadError naming the problem; a failing import or init() puts its traceback in the
        error's ``traceback`` (the server logs it once).
        """
        from azureml.contrib.services import aml_request, aml_response

        self._request_type = aml_request.AMLRequest
        self._request_error = aml_request.AMLRequestError
        self._json_error = aml_request.InvalidJSON
        self._response_type = aml_response.AMLResponse

        _reset_rawhttp_flags(aml_request)
        module = self._import()
        if not callable(getattr(module, "init", None)):
            raise ModelLoadError(
                f"Entry script {self.script} does not have an init() function defined. An Azure ML "
                "entry script defines init() and run(); a SageMaker inference script defines model_fn() "
                "and predict_fn() (or transform_fn()) and runs as `prebake serve --entry-script "
                "inference.py --model-dir MODEL_DIR`, or as code/inference.py inside the model folder."
            )
        if not callable(getattr(module, "run", None)):
            raise ModelLoadError(f"Entry script {self.script} does not have a run() function defined.")

        # Some Azure SDKs generate a driver module that forwards run() to the real score script, but loses
        # inference-schema arguments on the way: call the real run() directly, as the reference does.
        driver = getattr(module, "driver_module", None)
        run = module.run
        if isinstance(driver, ModuleType) and callable(getattr(driver, "run", None)):
            run = driver.run
            logger.info(
                "Found driver script at %s and the score script at %s", module.__file__, driver.__file__
            )
        else:
            logger.info("Found user script at %s", module.__file__)
        raw = bool(getattr(run, "__aml_rawhttp__", False) or _rawhttp_flagged(aml_request))
        self._analyse_run(run, raw)
        self._run = _synchronous(run)
        self.module = module

        logger.info("Invoking user's init function")
        try:
            _synchronous(module.init)()
        except BaseException as exc:
            trace = traceback.format_exc()
            self._log_model_dir()
            raise ModelLoadError(
                f"init() of {self.script} failed: {type(exc).__name__}: {exc}", traceback=trace
            ) from exc
        logger.info("User's init has completed successfully")

        try:
            self._swagger = azure_schema.SwaggerDocs.build(run, self.app_root)
        except Exception as exc:
            raise ModelLoadError(f"Could not prepare the swagger documents: {exc}") from exc

    def _import(self) -> ModuleType:
        if not self.script.is_file():
            raise ModelLoadError(f"Entry script not found: {self.script}")
        spec = importlib.util.spec_from_file_location(MODULE_NAME, self.script)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"Entry script {self.script} cannot be imported as a Python module.")
        _forget_schemas(MODULE_NAME)
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(MODULE_NAME, None)
            # The traceback goes with the error and is logged once, by whoever reports the failure.
            raise ModelLoadError(
                f"Failed to import entry script {self.script}: {type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            ) from exc
        return module

    def _analyse_run(self, run: Callable[..., Any], raw: bool) -> None:
        try:
            params = list(inspect.signature(run).parameters.values())
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"Cannot read the signature of run(): {exc}") from exc
        allowed = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if any(p.kind not in allowed for p in params):
            raise ModelLoadError("run() cannot accept positional-only arguments, *args, or **kwargs.")

        self._wants_headers = any(p.name == "request_headers" for p in params)
        params = [p for p in params if p.name != "request_headers"]
        if not params:
            if self._wants_headers:
                raise ModelLoadError('run() needs to accept an argument other than "request_headers".')
            raise ModelLoadError("run() needs to accept an argument for input data.")

        decorated = azure_schema.is_schema_decorated(run)
        if raw and decorated:
            raise ModelLoadError("run() cannot be decorated with both @rawhttp and @input_schema")
        self._data_param = params[0].name
        if raw:
            self._mode = _RAW
            logger.info("run() is decorated with @rawhttp: it gets the request object.")
        elif decorated:
            self._mode = _SCHEMA
            self._schema_params = [(p.name, p.default) for p in params]
            logger.info(
                "run() is decorated with @input_schema: it gets %s.", ", ".join(p.name for p in params)
            )
        else:
            self._mode = _STRING
            logger.info("run() is not decorated: it gets the input as a JSON string.")

    def _log_model_dir(self) -> None:
        model_dir = self.model_dir
        if model_dir is None or not model_dir.exists():
            return
        logger.info("Model directory contents:")
        lines = _walk(model_dir)
        for line in itertools.islice(lines, _MODEL_DIR_LOG_LINES):
            logger.info(line)
        if next(lines, None) is not None:
            logger.info("Output truncated. First %d lines shown.", _MODEL_DIR_LOG_LINES)

    # -- score -------------------------------------------------------------------------------------------
    def score(self, request: RawRequest) -> RawResult:
        """Call run() with the request's input and turn what it returns into a response.

        Raises RequestError children for input that cannot be passed to run(), ScoringError where run()
        raised (its ``traceback`` detail holds the formatted traceback for the log).
        """
        mode = self._mode
        method = request.method
        if mode is _RAW:
            kwargs: dict[str, Any] = {self._data_param: self._aml_request(request)}
        elif method == "POST":
            kwargs = (
                self._schema_post(request) if mode is _SCHEMA else {self._data_param: _utf8(request.body)}
            )
        elif method == "GET":
            args = _query_arguments(request.query_string)
            kwargs = self._schema_args(args) if mode is _SCHEMA else {self._data_param: _query_json(args)}
        elif method == "OPTIONS":
            return RawResult(b"", 200, [("x-ms-run-function-failed", "False")], "text/html; charset=utf-8")
        else:
            raise MethodNotAllowed("Method not allowed")
        if self._wants_headers:
            kwargs["request_headers"] = {name.title(): value for name, value in request.headers.items()}

        try:
            output = self._run(**kwargs)
        except MemoryError:
            raise  # the server counts these: a worker that keeps running out of memory is replaced
        except BaseException as exc:  # user code: KeyboardInterrupt, SystemExit, BaseException itself
            raise self._failure(exc) from exc

        response_type = self._response_type
        if response_type is not None and isinstance(output, response_type):
            return _from_response(output.status_code, output.headers.items(), output.get_data())
        werkzeug = sys.modules.get("werkzeug.wrappers.response")  # loaded only where the script uses Flask
        if werkzeug is not None and isinstance(output, werkzeug.Response):
            # A flask Response, or the reference's own AMLResponse where a script imports it from there.
            return _from_response(output.status_code, list(output.headers.items()), output.get_data())
        try:
            body = jsonout.dumps(output)
        except TypeError as exc:
            raise ScoringError(
                f"run() returned a value that cannot be sent as JSON: {exc}",
                traceback=traceback.format_exc(),
            ) from exc
        return RawResult(body, 200, [("x-ms-run-function-failed", "False")])

    def _aml_request(self, request: RawRequest) -> Any:
        return self._request_type(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=request.headers,
            body=request.body,
            root_url=request.root_url,
        )

    def _schema_post(self, request: RawRequest) -> dict[str, Any]:
        if not _is_json(request.headers.get("content-type", "")):
            raise UnsupportedMediaType("Expects Content-Type to be application/json")
        body = request.body
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            # The standard parser takes what orjson refuses (NaN, huge integers), as the reference's does.
            try:
                parsed = json.loads(body)
            except RecursionError:
                # orjson stops at 1,024 levels; json at Python's recursion limit (the reference answers 500).
                raise BadJSON("POST body could not be decoded as JSON: it nests too deeply") from None
            except ValueError as exc:
                if body:
                    raise BadJSON(f"POST body could not be decoded as JSON: {exc}") from None
                raise BadJSON("POST body is empty. Expecting a JSON dictionary.") from None
        if not isinstance(parsed, dict):
            raise RequestError("POST body should be a JSON dictionary.")
        return self._schema_args(parsed)

    def _schema_args(self, body: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name, default in self._schema_params:
            value = body.get(name, default)
            if value is inspect.Parameter.empty:
                raise InvalidInput(f"A value is not provided for the {name!r} parameter.", input=name)
            kwargs[name] = value
        return kwargs

    def _failure(self, exc: BaseException) -> Exception:
        if self._mode is _SCHEMA:
            parameter = azure_schema.conversion_failure(exc)
            if parameter is not None:
                return InvalidInput(
                    f"Invalid value for parameter {parameter!r}: {exc}", status=422, input=parameter
                )
        if self._request_error is not None and isinstance(exc, self._request_error):
            # The script asked AMLRequest for what the body is not (get_json() on text): the client's error.
            status: int = getattr(exc, "status", 400)
            if status == 415:
                return UnsupportedMediaType(str(exc))
            if isinstance(exc, self._json_error):
                return BadJSON(str(exc))
            return RequestError(str(exc), status=status)
        message = RUN_FAILED_MESSAGE
        if self.debug:
            message = f"{message} {type(exc).__name__}: {exc}"
        return ScoringError(message, traceback="".join(traceback.format_exception(exc)))

    # -- swagger -----------------------------------------------------------------------------------------
    def swagger(self, version: str | None) -> bytes:
        """The swagger JSON for ``version`` ("2", "3", "3.1" and their ".0" forms; None is "2").

        Raises NotFound for versions that are not valid or not available for this script.
        """
        if self._swagger is None:
            raise ModelLoadError("The entry script is not loaded.")
        return self._swagger.get(version)


# Where @rawhttp may have been imported from: ours, and the reference server's own module, which scripts
# import directly where azureml-inference-server-http is installed too (azureml-defaults brings it).
_RAWHTTP_MODULES = ("azureml_inference_server_http.api.aml_request",)


def _reset_rawhttp_flags(ours: ModuleType) -> None:
    ours._rawHttpRequested = False  # type: ignore[attr-defined]
    for name in _RAWHTTP_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            module._rawHttpRequested = False  # type: ignore[attr-defined]


def _rawhttp_flagged(ours: ModuleType) -> bool:
    modules = [ours, *(sys.modules.get(name) for name in _RAWHTTP_MODULES)]
    return any(getattr(module, "_rawHttpRequested", False) for module in modules if module is not None)


def _synchronous(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` itself, or for an ``async def`` one that runs it to completion (the reference would send the
    coroutine object to json.dumps and answer 500)."""
    if not inspect.iscoroutinefunction(func):
        return func

    def run_to_completion(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(func(*args, **kwargs))

    return run_to_completion


def _not_loaded(**kwargs: Any) -> Any:
    raise ModelLoadError("The entry script is not loaded.")


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"Input cannot be decoded as UTF-8: {exc}") from None


def _is_json(content_type: str) -> bool:
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _parse_value(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:
        # The reference answers 500 (its parser's RecursionError escapes); it is the client's input.
        raise BadJSON(f"query value {echo(key)!r} nests too deeply to be read as JSON") from None


def _query_json(args: dict[str, Any]) -> str:
    try:
        return json.dumps(args)
    except RecursionError:
        raise BadJSON("the query values nest too deeply to be passed to run() as JSON") from None


def _query_arguments(query_string: bytes) -> dict[str, Any]:
    """Query arguments as inputs: each value parsed as JSON where it parses; a repeated name gives a list.

    ``a=1&b=[1,2]&c=x&c=y`` -> ``{"a": 1, "b": [1, 2], "c": ["x", "y"]}``
    """
    from urllib.parse import parse_qsl

    grouped: dict[str, list[str]] = {}
    for key, value in parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True):
        grouped.setdefault(key, []).append(value)
    return {
        key: _parse_value(key, values[0]) if len(values) == 1 else [_parse_value(key, v) for v in values]
        for key, values in grouped.items()
    }


def _from_response(status: int, headers: list[tuple[str, str]], body: bytes) -> RawResult:
    """What run()'s AMLResponse (or flask Response) says, checked so the server can send it."""
    content_type = "text/html; charset=utf-8"
    out: list[tuple[str, str]] = []
    failed = isinstance(status, int) and status >= 500
    for name, value in headers:
        lower = name.lower()
        if lower == "content-type":
            content_type = value
        elif lower == "content-length":
            continue  # the server measures the body itself
        elif lower == "x-ms-run-function-failed" and failed:
            continue  # replaced below
        else:
            out.append((name, value))
    if failed:
        out.append(("x-ms-run-function-failed", "True"))
    return raw_result(body, status, out, content_type, run_failed=failed)


def _forget_schemas(module_name: str) -> None:
    """Drop inference-schema's records of an earlier script of the same module name, so a reload in one
    process does not fail with "output schema already defined for function: entry_module.run"."""
    util = sys.modules.get("inference_schema.schema_util")
    if util is None:
        return
    for registry in (getattr(util, "__functions_schema__", {}), getattr(util, "__versions__", {})):
        for key in [k for k in registry if k.startswith(f"{module_name}.")]:
            del registry[key]


def _walk(path: Path, depth: int = 0) -> Iterator[str]:
    indent = "    " * depth
    if path.is_dir():
        yield f"{indent}{path.name}{os.sep}"
        for child in sorted(path.iterdir()):
            yield from _walk(child, depth + 1)
    else:
        yield f"{indent}{path.name}"
