"""EntryScriptRuntime in-process: the score.py contract of azmlinfsrv 1.5.1, and where prebake does better."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from prebake.errors import (
    BadJSON,
    InvalidInput,
    MethodNotAllowed,
    ModelLoadError,
    NotFound,
    RequestError,
    ScoringError,
    UnsupportedMediaType,
)
from prebake.runtimes.entry_script import RUN_FAILED_MESSAGE, EntryScriptRuntime
from prebake.types import RawRequest, RawResult

SCRIPTS = Path(__file__).parents[2] / "fixtures" / "scripts"


def loaded(name: str, *, debug: bool = False, app_root: Path | None = None) -> EntryScriptRuntime:
    runtime = EntryScriptRuntime(SCRIPTS / f"{name}.py", debug=debug, app_root=app_root)
    runtime.load()
    return runtime


def from_source(tmp_path: Path, source: str, *, debug: bool = False) -> EntryScriptRuntime:
    script = tmp_path / "score.py"
    script.write_text(textwrap.dedent(source))
    return EntryScriptRuntime(script, debug=debug)


def post(body: bytes | str, content_type: str = "application/json", **headers: str) -> RawRequest:
    data = body.encode() if isinstance(body, str) else body
    return RawRequest("POST", "/score", b"", {"content-type": content_type, **headers}, data)


def get(query: str, **headers: str) -> RawRequest:
    return RawRequest("GET", "/score", query.encode(), dict(headers), b"")


def parsed(result: RawResult) -> object:
    assert result.content_type == "application/json"
    return json.loads(result.body)


# -- plain scripts -------------------------------------------------------------------------------------
def test_plain_run_gets_the_body_as_a_string() -> None:
    """An undecorated run() gets the raw body as str and its dict return is sent as JSON with status 200."""
    result = loaded("plain").score(post('{"data": [[1, 2], [3, 4]]}'))
    assert result.status == 200
    assert parsed(result) == {"result": [4, 8], "input_type": "str"}
    assert ("x-ms-run-function-failed", "False") in result.headers
    assert not result.run_failed


def test_get_passes_query_arguments_as_a_json_string() -> None:
    """GET turns query arguments into a JSON object string, values parsed as JSON and repeats as lists."""
    result = loaded("echo").score(get("a=1&b=[1,2]&c=x&c=y&d=null&e="))
    received = parsed(result)["received"]  # type: ignore[index]
    # The reference passes json.dumps(...) output, separators included.
    assert received == '{"a": 1, "b": [1, 2], "c": ["x", "y"], "d": null, "e": ""}'


def test_body_that_is_not_utf8_is_a_400() -> None:
    """A body that is not UTF-8 cannot become run()'s string: 400 saying so."""
    with pytest.raises(RequestError, match="cannot be decoded as UTF-8") as info:
        loaded("echo").score(post(b"\xff\xfe\xfa", "application/octet-stream"))
    assert info.value.status == 400


def test_request_headers_are_passed_title_cased() -> None:
    """run(data, request_headers) gets every header, named as Flask names them (X-Custom-Header)."""
    result = loaded("headers").score(post("hi", "text/plain", **{"x-custom-header": "v1"}))
    assert parsed(result) == {
        "data": "hi",
        "custom": "v1",
        "content_type": "text/plain",
        "names_title_cased": True,
    }


def test_returned_str_is_sent_as_a_json_string() -> None:
    """A str from run() is JSON-encoded again, as the reference does (json.dumps(output))."""
    result = loaded("returns_str").score(post('{"a": 1}'))
    assert json.loads(parsed(result)) == {"echo": {"a": 1}}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("array", [[1, 2], [3, 4]]),
        ("scalar", 0.25),
        ("dataframe", [{"label": "a", "score": 0.5}, {"label": "b", "score": None}]),
        ("series", [1.5, 2.5]),
        ("mixed", {"probs": [0.1, 0.9], "when": "2024-05-01", "tags": ["x"], "price": 9.5, "count": 3}),
        ("list", [1, "two", None, True]),
    ],
)
def test_numpy_and_pandas_outputs_serialize(kind: str, expected: object) -> None:
    """numpy, pandas and other values the reference cannot serialize come back as JSON with 200."""
    result = loaded("returns_values").score(post(kind, "text/plain"))
    assert result.status == 200
    assert parsed(result) == expected


def test_unserializable_output_is_a_scoring_error(tmp_path: Path) -> None:
    """A return value with no JSON form fails that request as a scoring error naming the type."""
    runtime = from_source(tmp_path, "def init(): pass\ndef run(data): return object()\n")
    runtime.load()
    with pytest.raises(ScoringError, match="cannot be sent as JSON"):
        runtime.score(post("x"))


# -- failures in run() ---------------------------------------------------------------------------------
def test_raising_run_gives_the_reference_message_without_details() -> None:
    """run() raising gives ScoringError with the reference's message; the traceback is kept for the log only."""
    with pytest.raises(ScoringError) as info:
        loaded("raising").score(post("x"))
    assert info.value.message == RUN_FAILED_MESSAGE
    assert "secret detail" not in info.value.message
    assert "secret detail from the model" in (info.value.traceback or "")
    assert "ValueError" in (info.value.traceback or "")


def test_debug_names_the_exception() -> None:
    """In debug mode the error message also names the exception run() raised."""
    with pytest.raises(ScoringError) as info:
        loaded("raising", debug=True).score(post("x"))
    assert info.value.message.startswith(RUN_FAILED_MESSAGE)
    assert "ValueError: secret detail from the model" in info.value.message


def test_sys_exit_in_run_fails_only_the_request(tmp_path: Path) -> None:
    """run() calling sys.exit() is a scoring error for that request, not the end of the worker."""
    runtime = from_source(tmp_path, "import sys\ndef init(): pass\ndef run(data): sys.exit(3)\n")
    runtime.load()
    with pytest.raises(ScoringError):
        runtime.score(post("x"))


def test_async_init_and_run_are_awaited(tmp_path: Path) -> None:
    """async def init() and run() are run to completion instead of sending a coroutine object."""
    runtime = from_source(
        tmp_path,
        """
        import asyncio
        state = {}

        async def init():
            await asyncio.sleep(0)
            state["ready"] = True

        async def run(data):
            await asyncio.sleep(0)
            return {"data": data, "ready": state["ready"]}
        """,
    )
    runtime.load()
    assert parsed(runtime.score(post("x", "text/plain"))) == {"data": "x", "ready": True}


def test_other_methods() -> None:
    """OPTIONS answers 200 with an empty body; other methods are 405."""
    runtime = loaded("echo")
    options = runtime.score(RawRequest("OPTIONS", "/score", b"", {}, b""))
    assert (options.status, options.body) == (200, b"")
    with pytest.raises(MethodNotAllowed):
        runtime.score(RawRequest("PUT", "/score", b"", {}, b""))


# -- @rawhttp and AMLResponse --------------------------------------------------------------------------
def test_rawhttp_run_gets_the_request() -> None:
    """@rawhttp passes an AMLRequest with method, args, full_path and case-insensitive headers."""
    result = loaded("rawhttp").score(get("a=1&a=2&b=x", **{"x-custom-header": "v"}))
    assert parsed(result) == {
        "method": "GET",
        "args": {"a": ["1", "2"], "b": ["x"]},
        "full_path": "/score?a=1&a=2&b=x",
        "custom": "v",
    }


def test_rawhttp_post_reads_the_body() -> None:
    """An AMLRequest gives the body through get_data(), data and get_json()."""
    result = loaded("rawhttp").score(post('{"k": [1]}'))
    assert parsed(result) == {"length": 10, "is_json": True, "data": {"k": [1]}}


def test_amlresponse_text_with_headers() -> None:
    """An AMLResponse is sent as it is: status, Content-Type given, comma-separated headers split."""
    spec = {
        "mode": "text",
        "body": "hello",
        "status": 201,
        "headers": {"X-A": "1, 2", "Content-Type": "text/csv"},
    }
    result = loaded("rawhttp").score(post(json.dumps(spec)))
    assert (result.status, result.body, result.content_type) == (201, b"hello", "text/csv")
    assert [v for k, v in result.headers if k == "X-A"] == ["1", "2"]
    assert ("x-ms-run-function-failed", "False") in result.headers
    assert not result.run_failed


def test_amlresponse_5xx_marks_the_run_failed() -> None:
    """An AMLResponse with status 500 or more sets x-ms-run-function-failed: True and run_failed."""
    spec = {"mode": "json", "body": {"error": "down"}, "status": 503}
    result = loaded("rawhttp").score(post(json.dumps(spec)))
    assert result.status == 503
    assert parsed(result) == {"error": "down"}
    assert [v for k, v in result.headers if k.lower() == "x-ms-run-function-failed"] == ["True"]
    assert result.run_failed


def test_amlresponse_bytes_and_none() -> None:
    """Bytes go out untouched with the mimetype set by the script; a None message sends {}."""
    runtime = loaded("rawhttp")
    raw = runtime.score(post('{"mode": "bytes"}'))
    assert (raw.body, raw.content_type) == (bytes(range(8)), "application/octet-stream")
    empty = runtime.score(post('{"mode": "none", "status": 202}'))
    assert (empty.status, parsed(empty)) == (202, {})


def test_rawhttp_get_json_on_bad_body_is_a_client_error() -> None:
    """get_json() on malformed JSON gives 400 and on a non-JSON type 415, where the reference gives 500."""
    runtime = loaded("rawhttp")
    with pytest.raises(BadJSON):
        runtime.score(post("{not json"))
    with pytest.raises(UnsupportedMediaType):
        runtime.score(post("{}", "text/plain"))


# -- inference-schema ----------------------------------------------------------------------------------
def test_schema_numpy_parameter_is_converted() -> None:
    """@input_schema with NumpyParameterType gets an ndarray built from the body's top-level key."""
    result = loaded("schema_numpy").score(post('{"data": [[1, 2, 3], [4, 5, 6]]}'))
    assert parsed(result) == [6.0, 15.0]


def test_schema_pandas_parameter_is_converted() -> None:
    """PandasParameterType gets a DataFrame built from a list of records."""
    body = {"frame": [{"age": 20, "income": 5.0}, {"age": 40, "income": 1.0}]}
    assert parsed(loaded("schema_pandas").score(post(json.dumps(body)))) == {"rows": 2, "mean_age": 30.0}


def test_schema_parameters_use_defaults_and_get_args() -> None:
    """Missing keys take run()'s defaults; GET query arguments are parameters too."""
    runtime = loaded("schema_standard")
    assert parsed(runtime.score(post('{"count": 2}'))) == ["hi", "hi"]
    assert parsed(runtime.score(get("count=2&word=yo"))) == ["yo", "yo"]


def test_schema_missing_parameter_is_a_400_naming_it() -> None:
    """A parameter without a default and without a key in the body gives 400 naming it."""
    with pytest.raises(RequestError, match="'count'") as info:
        loaded("schema_standard").score(post('{"word": "x"}'))
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("script", "body", "parameter"),
    [
        ("schema_numpy", '{"data": [["a", "b", "c"]]}', "data"),
        ("schema_pandas", '{"frame": 5}', "frame"),
        ("schema_standard", '{"count": "three"}', "count"),
    ],
)
def test_schema_conversion_failure_is_a_422_naming_the_parameter(
    script: str, body: str, parameter: str
) -> None:
    """An input inference-schema cannot convert gives 422 naming the parameter (the reference gives 500)."""
    with pytest.raises(InvalidInput) as info:
        loaded(script).score(post(body))
    assert info.value.status == 422
    assert repr(parameter) in info.value.message
    assert info.value.input == parameter


def test_schema_run_raising_in_its_body_is_still_a_scoring_error(tmp_path: Path) -> None:
    """Only conversion failures become 422: an exception from run()'s own code stays a 500 ScoringError."""
    runtime = from_source(
        tmp_path,
        """
        from inference_schema.schema_decorators import input_schema
        from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

        def init():
            pass

        @input_schema("x", StandardPythonParameterType(1))
        def run(x):
            raise ValueError("model broke")
        """,
    )
    runtime.load()
    with pytest.raises(ScoringError):
        runtime.score(post('{"x": 1}'))


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (post('{"data": [[1, 2, 3]]}', "text/plain"), UnsupportedMediaType, "application/json"),
        (post('{"data": [[1, 2'), BadJSON, "could not be decoded as JSON"),
        (post(""), BadJSON, "empty"),
        (post("[1, 2]"), RequestError, "JSON dictionary"),
    ],
)
def test_schema_bad_bodies(request_: RawRequest, error: type[Exception], message: str) -> None:
    """Schema scripts need a JSON object body: wrong type 415, malformed or empty 400, not an object 400."""
    with pytest.raises(error, match=message) as info:
        loaded("schema_numpy").score(request_)
    assert info.value.status in (400, 415)  # type: ignore[attr-defined]


def test_schema_accepts_json_extensions_the_reference_accepts() -> None:
    """NaN in the body (accepted by Python's json, refused by orjson) still reaches run()."""
    result = loaded("schema_numpy").score(post('{"data": [[NaN, 1, 2]]}'))
    assert parsed(result) == [None]


def test_schema_script_loads_twice_in_one_process() -> None:
    """Loading the same schema script again (tests, reloads) does not trip inference-schema's registry."""
    loaded("schema_standard")
    assert parsed(loaded("schema_standard").score(post('{"count": 1}'))) == ["hi"]


# -- load ----------------------------------------------------------------------------------------------
def test_init_failure_raises_with_the_traceback_for_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """init() raising gives ModelLoadError naming the error, carrying the user's traceback for the server
    to log once; the runtime itself logs no traceback (it was printed twice)."""
    runtime = EntryScriptRuntime(SCRIPTS / "init_fails.py")
    with caplog.at_level(logging.ERROR, logger="prebake.entry_script"), pytest.raises(ModelLoadError) as info:
        runtime.load()
    assert "RuntimeError: model file missing" in info.value.message
    assert "Traceback" in (info.value.traceback or "") and "model file missing" in (
        info.value.traceback or ""
    )
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def run(data): pass\n", "init()"),
        ("def init(): pass\n", "run()"),
        ("def init(): pass\ndef run(*args): pass\n", "*args"),
        ("def init(): pass\ndef run(): pass\n", "argument for input data"),
        ("def init(): pass\ndef run(request_headers): pass\n", "other than"),
        ("raise ImportError('no module named sklearn')\n", "ImportError: no module named sklearn"),
        ("def init(:\n", "SyntaxError"),
    ],
)
def test_bad_scripts_fail_to_load_with_a_clear_message(tmp_path: Path, source: str, message: str) -> None:
    """A script without init()/run(), with a run() signature the contract cannot call, or that fails to
    import, gives ModelLoadError saying what is wrong."""
    with pytest.raises(
        ModelLoadError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")
    ):
        from_source(tmp_path, source).load()


def test_rawhttp_with_schema_is_refused(tmp_path: Path) -> None:
    """@rawhttp and @input_schema on one run() cannot both be honoured: the load fails saying so."""
    runtime = from_source(
        tmp_path,
        """
        from azureml.contrib.services.aml_request import rawhttp
        from inference_schema.schema_decorators import input_schema
        from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

        def init():
            pass

        @rawhttp
        @input_schema("x", StandardPythonParameterType(1))
        def run(x):
            return x
        """,
    )
    with pytest.raises(ModelLoadError, match="both @rawhttp and @input_schema"):
        runtime.load()


def test_missing_script_fails_to_load(tmp_path: Path) -> None:
    """A script path that does not exist gives ModelLoadError naming it."""
    with pytest.raises(ModelLoadError, match="not found"):
        EntryScriptRuntime(tmp_path / "nope.py").load()


def test_driver_module_run_is_called_directly(tmp_path: Path) -> None:
    """With a driver_module, the inner script's run() is called and the driver's init() runs."""
    (tmp_path / "inner_score.py").write_text("def init(): pass\ndef run(data): return {'inner': data}\n")
    runtime = from_source(
        tmp_path,
        f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("inner_score", {str(tmp_path / "inner_score.py")!r})
        driver_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(driver_module)
        inited = []

        def init():
            inited.append(True)

        def run(data):
            return {{"driver": data}}
        """,
    )
    runtime.load()
    assert runtime.module is not None and runtime.module.inited == [True]
    assert parsed(runtime.score(post("x", "text/plain"))) == {"inner": "x"}


def test_script_module_is_importable_while_it_runs(tmp_path: Path) -> None:
    """The script is sys.modules['entry_module'] while it loads, so dataclasses in it work."""
    runtime = from_source(
        tmp_path,
        """
        from __future__ import annotations
        import dataclasses

        @dataclasses.dataclass
        class Result:
            value: str

        def init():
            pass

        def run(data):
            return dataclasses.asdict(Result(data))
        """,
    )
    runtime.load()
    assert parsed(runtime.score(post("v", "text/plain"))) == {"value": "v"}


# -- swagger -------------------------------------------------------------------------------------------
def test_swagger_without_schema_is_the_default_document() -> None:
    """An undecorated script gets the reference's default swagger for 2, 3 and 3.1; None means 2."""
    runtime = loaded("echo")
    v2 = json.loads(runtime.swagger(None))
    assert v2 == json.loads(runtime.swagger("2.0"))
    assert v2["swagger"] == "2.0"
    assert v2["definitions"]["ServiceInput"] == {"type": "object", "example": {}}
    assert json.loads(runtime.swagger("3"))["openapi"] == "3.0.3"
    assert json.loads(runtime.swagger("3.1"))["openapi"] == "3.1.0"


def test_swagger_with_schema_describes_the_parameters() -> None:
    """A schema script's swagger names its parameters with their example values."""
    runtime = loaded("schema_standard")
    spec = json.loads(runtime.swagger("3"))
    service_input = spec["components"]["schemas"]["ServiceInput"]
    assert set(service_input["properties"]) == {"count", "word"}
    assert service_input["example"] == {"count": 3, "word": "hello"}
    assert spec["components"]["schemas"]["ServiceOutput"]["type"] == "array"


def test_swagger_unknown_version_is_not_found() -> None:
    """Versions that are not 2, 3 or 3.1 give NotFound listing the supported ones."""
    with pytest.raises(
        NotFound, match=r"Swagger version \[4\] is not valid. Supported versions: \[2, 3, 3.1\]"
    ):
        loaded("echo").swagger("4")


def test_swagger_user_file_and_service_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A swagger.json in the app root (AML_APP_ROOT, passed in by the server) is served for version 2;
    SERVICE_NAME and prefix fill the rest."""
    (tmp_path / "swagger.json").write_text('{"custom": true}')
    monkeypatch.setenv("SERVICE_NAME", "iris")
    monkeypatch.setenv("SERVICE_PATH_PREFIX", "api/")
    runtime = loaded("echo", app_root=tmp_path)
    assert json.loads(runtime.swagger("2")) == {"custom": True}
    v3 = json.loads(runtime.swagger("3"))
    assert v3["info"]["title"] == "iris"
    assert "/api/score" in v3["paths"]


def test_rawhttp_imported_from_the_reference_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A script taking @rawhttp from azureml_inference_server_http.api (where that package is installed too)
    still gets the request object."""
    package = tmp_path / "site" / "azureml_inference_server_http" / "api"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    # The reference's module, reduced to its flag (the real one needs Flask).
    (package / "aml_request.py").write_text(
        "_rawHttpRequested = False\n"
        "def rawhttp(func):\n"
        "    global _rawHttpRequested\n"
        "    _rawHttpRequested = True\n"
        "    return func\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    runtime = from_source(
        tmp_path,
        """
        from azureml_inference_server_http.api.aml_request import rawhttp

        def init():
            pass

        @rawhttp
        def run(request):
            return {"method": request.method, "args": request.args.to_dict()}
        """,
    )
    try:
        runtime.load()
        assert parsed(runtime.score(get("a=1"))) == {"method": "GET", "args": {"a": "1"}}
    finally:
        for name in [m for m in sys.modules if m.startswith("azureml_inference_server_http")]:
            del sys.modules[name]


def test_importing_the_runtime_is_light() -> None:
    """Importing the runtime loads neither numpy, pandas, inference-schema nor the azureml modules."""
    import subprocess

    code = (
        "import sys, prebake.runtimes.entry_script\n"
        "print(sorted(m for m in ('numpy', 'pandas', 'inference_schema', 'azureml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
