"""SageMaker inference scripts run unchanged, with the toolkit's defaults where a function is missing."""

from __future__ import annotations

import io
import json
import logging
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.errors import ConfigError, InvalidInput, ModelLoadError, ScoringError, UnsupportedMediaType
from prebake.runtimes.base import ModelSettings
from prebake.runtimes.sagemaker import SageMakerScriptRuntime
from prebake.types import RawRequest

LOAD_JOBLIB = """
import os, joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "iris.joblib"))
"""


def _model_dir(tmp_path: Path, joblib_file: Path, script: str, **files: str) -> Path:
    d = tmp_path / "model"
    (d / "code").mkdir(parents=True)
    shutil.copy(joblib_file, d / "iris.joblib")
    (d / "code" / "inference.py").write_text(textwrap.dedent(script))
    for name, text in files.items():
        (d / "code" / name).write_text(textwrap.dedent(text))
    return d


def _runtime(model_dir: Path, name: str = "sm", **parameters: Any) -> SageMakerScriptRuntime:
    runtime = SageMakerScriptRuntime(
        ModelSettings(name=name, path=model_dir, runtime="sagemaker", parameters=parameters)
    )
    runtime.load()
    return runtime


def _post(
    body: bytes, content_type: str | None = "application/json", accept: str | None = None
) -> RawRequest:
    headers = {}
    if content_type:
        headers["content-type"] = content_type
    if accept:
        headers["accept"] = accept
    return RawRequest(method="POST", path="/invocations", query_string=b"", headers=headers, body=body)


def test_all_four_functions(tmp_path: Path, joblib_file: Path, sklearn_model: Any, iris: Any) -> None:
    """model_fn, input_fn, predict_fn and output_fn run in order; output_fn's tuple sets the content type."""
    script = (
        LOAD_JOBLIB
        + """
import json
import logging
def input_fn(body, content_type):
    assert isinstance(body, str) and content_type == "application/json"
    return json.loads(body)["instances"]

def predict_fn(data, model):
    return model.predict_proba(data)

def output_fn(prediction, accept):
    return json.dumps({"probabilities": prediction.tolist()}), "application/vnd+probs"
"""
    )
    x, _ = iris
    runtime = _runtime(_model_dir(tmp_path, joblib_file, script))
    result = runtime.score(_post(json.dumps({"instances": x[:2].tolist()}).encode()))
    assert result.content_type == "application/vnd+probs"
    np.testing.assert_allclose(json.loads(result.body)["probabilities"], sklearn_model.predict_proba(x[:2]))


def test_default_json(tmp_path: Path, joblib_file: Path, sklearn_model: Any, iris: Any) -> None:
    """With only model_fn, a JSON array in gives model.predict as a JSON array out."""
    x, _ = iris
    runtime = _runtime(_model_dir(tmp_path, joblib_file, LOAD_JOBLIB))
    result = runtime.score(_post(json.dumps(x[:3].tolist()).encode(), accept="*/*"))
    assert result.content_type == "application/json"
    assert json.loads(result.body) == sklearn_model.predict(x[:3]).tolist()


def test_default_csv_and_npy(tmp_path: Path, joblib_file: Path, sklearn_model: Any, iris: Any) -> None:
    """CSV in and NPY out (and NPY in, CSV out) use the toolkit's default decoders and encoders."""
    x, _ = iris
    runtime = _runtime(_model_dir(tmp_path, joblib_file, LOAD_JOBLIB))
    csv = "\n".join(",".join(str(v) for v in row) for row in x[:4]).encode()
    result = runtime.score(_post(csv, "text/csv", "application/x-npy"))
    np.testing.assert_array_equal(np.load(io.BytesIO(result.body)), sklearn_model.predict(x[:4]))
    buffer = io.BytesIO()
    np.save(buffer, x[:2])
    result = runtime.score(_post(buffer.getvalue(), "application/x-npy", "text/csv"))
    assert result.content_type == "text/csv"
    assert result.body.decode().split() == [str(v) for v in sklearn_model.predict(x[:2])]


def test_no_model_fn_loads_the_saved_model(
    tmp_path: Path, joblib_file: Path, sklearn_model: Any, iris: Any
) -> None:
    """A script without model_fn is served with the model file beside it, through its no-code runtime."""
    x, _ = iris
    model_dir = _model_dir(tmp_path, joblib_file, "# handlers come from defaults\n")
    runtime = _runtime(model_dir, allow_pickle=True)  # the server passes the operator's choice on
    result = runtime.score(_post(json.dumps(x[:3].tolist()).encode()))
    assert json.loads(result.body) == sklearn_model.predict(x[:3]).tolist()


def test_no_model_fn_and_no_model(tmp_path: Path) -> None:
    """A script without model_fn and no model file beside it is ModelLoadError saying both."""
    d = tmp_path / "bare"
    (d / "code").mkdir(parents=True)
    (d / "code" / "inference.py").write_text("")
    with pytest.raises(ModelLoadError, match="defines no model_fn.*no model found"):
        _runtime(d)


def test_transform_fn(tmp_path: Path, joblib_file: Path) -> None:
    """transform_fn gets the model, body, content type and accept, and its return is the response."""
    script = (
        LOAD_JOBLIB
        + """
def transform_fn(model, body, content_type, accept):
    return f"{type(model).__name__}|{body}|{content_type}|{accept}"
"""
    )
    runtime = _runtime(_model_dir(tmp_path, joblib_file, script))
    result = runtime.score(_post(b"[1]", accept="text/plain"))
    assert result.body == b"LogisticRegression|[1]|application/json|text/plain"
    assert result.content_type == "text/plain"


def test_transform_fn_with_input_fn_refused(tmp_path: Path, joblib_file: Path) -> None:
    """transform_fn together with input_fn is refused at load, as the toolkit does."""
    script = LOAD_JOBLIB + "\ndef transform_fn(m, b, c, a): pass\ndef input_fn(b, c): pass\n"
    with pytest.raises(ConfigError, match="transform_fn cannot be used together"):
        _runtime(_model_dir(tmp_path, joblib_file, script))


def test_context_argument(tmp_path: Path, joblib_file: Path) -> None:
    """A handler taking one more argument (the context) is called with None for it."""
    script = """
def model_fn(model_dir, context):
    assert context is None
    return "model"

def predict_fn(data, model, context):
    return [model, context]
"""
    result = _runtime(_model_dir(tmp_path, joblib_file, script)).score(_post(b"[0]"))
    assert json.loads(result.body) == ["model", None]


def test_helper_module_in_code_dir(tmp_path: Path, joblib_file: Path) -> None:
    """The script can import a helper module that sits beside it in code/."""
    script = "import sm_helper_mod\n\ndef model_fn(model_dir):\n    return sm_helper_mod.Doubler()\n"
    helper = "class Doubler:\n    def predict(self, data):\n        return data * 2\n"
    runtime = _runtime(_model_dir(tmp_path, joblib_file, script, **{"sm_helper_mod.py": helper}))
    assert json.loads(runtime.score(_post(b"[1, 2]")).body) == [2, 4]


def test_script_from_settings(tmp_path: Path, joblib_file: Path) -> None:
    """parameters.script points at a script elsewhere in the model directory."""
    d = _model_dir(tmp_path, joblib_file, "")
    (d / "serve.py").write_text("def model_fn(model_dir):\n    return lambda data: data.sum()\n")
    runtime = _runtime(d, script="serve.py")
    assert json.loads(runtime.score(_post(b"[1, 2, 3]")).body) == 6


@pytest.mark.parametrize(
    ("content_type", "accept", "error"),
    [
        ("application/xml", None, UnsupportedMediaType),
        ("application/json", "image/png", UnsupportedMediaType),
    ],
)
def test_unsupported_types(
    tmp_path: Path, joblib_file: Path, content_type: str, accept: Any, error: Any
) -> None:
    """A content type or accept type the defaults do not handle is a 415 naming the supported ones."""
    runtime = _runtime(_model_dir(tmp_path, joblib_file, LOAD_JOBLIB))
    with pytest.raises(error, match="application/json, text/csv or application/x-npy"):
        runtime.score(_post(b"[[1, 2, 3, 4]]", content_type, accept))


def test_bad_json_body(tmp_path: Path, joblib_file: Path) -> None:
    """A body that is not JSON is InvalidInput, not a traceback."""
    runtime = _runtime(_model_dir(tmp_path, joblib_file, LOAD_JOBLIB))
    with pytest.raises(InvalidInput, match="not valid application/json"):
        runtime.score(_post(b"{oops"))


def test_pickled_npy_refused(tmp_path: Path, joblib_file: Path) -> None:
    """An NPY body holding Python objects (a pickle) is refused as InvalidInput."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    runtime = _runtime(_model_dir(tmp_path, joblib_file, LOAD_JOBLIB))
    with pytest.raises(InvalidInput, match="x-npy"):
        runtime.score(_post(buffer.getvalue(), "application/x-npy"))


def test_user_error_is_scoring_error(tmp_path: Path, joblib_file: Path) -> None:
    """An exception in predict_fn is a ScoringError (500) carrying its type and message."""
    script = LOAD_JOBLIB + "\ndef predict_fn(data, model):\n    raise KeyError('no such column')\n"
    runtime = _runtime(_model_dir(tmp_path, joblib_file, script))
    with pytest.raises(ScoringError, match="KeyError: 'no such column'"):
        runtime.score(_post(b"[1]"))


def test_model_fn_error_is_load_error(tmp_path: Path, joblib_file: Path) -> None:
    """An exception in model_fn is a ModelLoadError naming the script."""
    script = "def model_fn(model_dir):\n    raise FileNotFoundError('weights.bin')\n"
    with pytest.raises(ModelLoadError, match=r"inference.py: model_fn raised FileNotFoundError"):
        _runtime(_model_dir(tmp_path, joblib_file, script))


def test_missing_script(tmp_path: Path) -> None:
    """A model directory without the script is a ModelLoadError naming the path looked at."""
    with pytest.raises(ModelLoadError, match="no such SageMaker inference script"):
        _runtime(tmp_path)


def test_sagemaker_program(tmp_path: Path, joblib_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$SAGEMAKER_PROGRAM names the script in code/, for discovery and loading, as in SageMaker's containers."""
    from prebake.runtimes.discover import find_models

    d = _model_dir(
        tmp_path, joblib_file, "", **{"serve.py": "def model_fn(d):\n    return lambda x: x.max()\n"}
    )
    (d / "code" / "inference.py").unlink()
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "serve.py")
    (settings,) = find_models([d])
    assert settings.runtime == "sagemaker"
    runtime = SageMakerScriptRuntime(settings)
    runtime.load()
    assert json.loads(runtime.score(_post(b"[3, 9, 1]")).body) == 9


def test_default_accept_parameter(tmp_path: Path, joblib_file: Path) -> None:
    """parameters.default_accept sets the response type when the client accepts anything."""
    runtime = _runtime(_model_dir(tmp_path, joblib_file, LOAD_JOBLIB), default_accept="text/csv")
    result = runtime.score(_post(b"[[5.1, 3.5, 1.4, 0.2]]", accept="*/*"))
    assert (result.content_type, result.body.strip()) == ("text/csv", b"0")


def test_default_predict_fn_feeds_a_runtime_under_its_own_input_name(torchscript_file: Path) -> None:
    """Without a predict_fn, a prebake runtime (here TorchScript, whose input is named 'x') gets the
    decoded body under the name it takes, and its one output comes back as an array."""
    from prebake.runtimes.sagemaker import default_predict_fn
    from tests.unit.runtimes.helpers import load

    model = load(torchscript_file, "torch", device="cpu")
    prediction = default_predict_fn([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]], model)
    assert isinstance(prediction, np.ndarray) and prediction.shape == (2, 3)


def test_handler_script_refused_when_the_operator_says_so(tmp_path: Path, joblib_file: Path) -> None:
    """handler_scripts false (the operator's --no-handler-scripts) refuses the script before any of its code runs."""
    marker = tmp_path / "ran"
    script = f"open({str(marker)!r}, 'w').close()\n" + LOAD_JOBLIB
    with pytest.raises(ModelLoadError, match="--no-handler-scripts"):
        _runtime(_model_dir(tmp_path, joblib_file, script), handler_scripts=False)
    assert not marker.exists()


def test_a_handler_script_that_runs_says_so_in_the_log(
    tmp_path: Path, joblib_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Loading a handler script logs a warning that it is code running inside the server, naming the flag that refuses it."""
    with caplog.at_level(logging.WARNING, logger="prebake.runtimes"):
        _runtime(_model_dir(tmp_path, joblib_file, LOAD_JOBLIB))
    assert "Python code" in caplog.text and "--no-handler-scripts" in caplog.text
