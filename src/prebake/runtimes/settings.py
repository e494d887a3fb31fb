"""The optional per-model settings file, ``model-settings.json``, beside the model.

Every key is optional; a file may be ``{}``. Unknown keys are refused so a typo is not silently ignored::

    {
      "name": "iris",                      # default: the model file's stem or the directory's name
      "version": "1",
      "runtime": "sklearn",                # sklearn xgboost lightgbm onnx torch tensorflow sagemaker transformers
      "uri": "model.joblib",               # the model file or directory, relative to this file
      "predict_method": "predict_proba",   # sklearn: one method or several, "predict,predict_proba"
      "inputs":  [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],   # + "format": "NCHW" for images
      "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3],
                   "labels": "labels.txt"}],   # one class name a line: the classification extension's
      "sequence": {"START": "start", "READY": "ready"},   # control inputs the server fills (below)
      "max_batch_size": 32,                # 1: no adaptive batching; absent or 0: the server default (64)
      "max_batch_delay_ms": 2.0,
      "device": "auto",                    # auto | cpu | cuda (torch, onnx)
      "allow_pickle": false,               # false: refuse this model's pickle/joblib files; true does
                                           # nothing: only the operator allows pickles (--allow-pickle)
      "handler_scripts": false,            # false: refuse this model's code/inference.py; as above
      "parameters": {}                     # runtime-specific extras (see each runtime's docstring)
    }

``sequence`` makes a sequence model, as Triton's sequence batcher's ``control_input``: requests must carry a
``sequence_id`` (and ``sequence_start`` / ``sequence_end`` flags), and the server gives the named inputs
per row: ``start`` and ``end`` 1 on the first and last request of a sequence (else 0), ``ready`` 1, and
``correlation_id`` the sequence id. The model keeps no state between requests here: it is what a stateless
model with control inputs needs, not Triton's implicit state.

MLServer's ``model-settings.json`` is read too: ``implementation`` (e.g. ``mlserver_sklearn.SKLearnModel``),
``parameters.uri``, ``parameters.version``, ``parameters.extra`` and ``max_batch_time`` (seconds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prebake.errors import ConfigError
from prebake.runtimes.arrays import numpy_dtype
from prebake.types import TensorSpec

SETTINGS_FILE = "model-settings.json"
DEVICES = ("auto", "cpu", "cuda")

#: MLServer implementation classes -> prebake runtime names.
MLSERVER_IMPLEMENTATIONS = {
    "mlserver_sklearn.SKLearnModel": "sklearn",
    "mlserver_xgboost.XGBoostModel": "xgboost",
    "mlserver_lightgbm.LightGBMModel": "lightgbm",
    "mlserver_onnx.OnnxModel": "onnx",
    "mlserver_huggingface.HuggingFaceRuntime": "transformers",
}

#: Keys the operator sets (flags, environment) that a settings file may only turn off for its model.
OPERATOR_KEYS = ("allow_pickle", "handler_scripts")

_KEYS = {
    "name", "version", "runtime", "implementation", "uri", "predict_method", "inputs", "outputs",
    "max_batch_size", "max_batch_delay_ms", "max_batch_time", "device", "allow_pickle", "handler_scripts",
    "parameters", "sequence",
}  # fmt: skip
#: Image layouts, as Triton's ModelInput.Format names them (without the FORMAT_ prefix).
FORMATS = ("NONE", "NHWC", "NCHW")
#: What a sequence model's control inputs carry (Triton's CONTROL_SEQUENCE_START, _END, _READY, _CORRID).
SEQUENCE_CONTROLS = ("start", "end", "ready", "correlation_id")


@dataclass(slots=True)
class FileSettings:
    """What a settings file says; None where it says nothing, so discovery can fill in the rest."""

    source: Path
    name: str | None = None
    version: str | None = None
    runtime: str | None = None
    uri: Path | None = None
    predict_method: str | None = None
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    max_batch_size: int | None = None
    max_batch_delay_ms: float | None = None
    device: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # output name -> class names
    sequence: dict[str, str] = field(default_factory=dict)  # control input name -> what it carries


def read_settings(path: Path) -> FileSettings:
    """Read and check one settings file; ConfigError naming the file and the key at fault."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the settings file: {exc}") from None
    return parse_settings(data, source=path)


def parse_settings(data: Any, *, source: Path) -> FileSettings:
    """Check a decoded settings mapping; relative ``uri`` values are taken from the file's directory."""

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}")

    if not isinstance(data, Mapping):
        raise fail("a settings file holds one JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_KEYS))}")
    out = FileSettings(source=source)
    params = data.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise fail("'parameters' must be an object")
    params = dict(params)
    # MLServer keeps uri, version and its extras inside parameters.
    uri = data.get("uri", params.pop("uri", None))
    version = data.get("version", params.pop("version", None))
    extra = params.pop("extra", None)
    if isinstance(extra, Mapping):
        params.update(extra)
    out.name = _opt_str(data, "name", fail)
    out.version = None if version is None else str(version)
    out.predict_method = _opt_str(data, "predict_method", fail)
    if uri is not None:
        if not isinstance(uri, str) or not uri:
            raise fail("'uri' must be a non-empty string")
        out.uri = (source.parent / uri).resolve()
    runtime = _opt_str(data, "runtime", fail)
    implementation = _opt_str(data, "implementation", fail)
    if runtime is None and implementation is not None:
        runtime = MLSERVER_IMPLEMENTATIONS.get(implementation)
        if runtime is None:
            raise fail(
                f"MLServer implementation {implementation!r} has no prebake runtime; set 'runtime' to one of "
                "sklearn, xgboost, lightgbm, onnx, torch, tensorflow, sagemaker, transformers"
            )
    out.runtime = runtime
    out.inputs = _tensor_specs(data, "inputs", fail)
    out.outputs = _tensor_specs(data, "outputs", fail)
    out.labels = _labels(data, source, fail)
    out.sequence = _sequence(data, fail)
    if "max_batch_size" in data:
        size = data["max_batch_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise fail("'max_batch_size' must be a whole number >= 0")
        out.max_batch_size = size
    if "max_batch_delay_ms" in data:
        out.max_batch_delay_ms = _non_negative(data, "max_batch_delay_ms", fail)
    elif "max_batch_time" in data:
        out.max_batch_delay_ms = _non_negative(data, "max_batch_time", fail) * 1000.0
    device = _opt_str(data, "device", fail)
    if device is not None and device not in DEVICES:
        raise fail(f"'device' must be one of {', '.join(DEVICES)}, not {device!r}")
    out.device = device
    # Operator-only switches: a model's own folder may refuse what the operator allows, never allow more.
    # allow_pickle false here refuses this model's pickles; true is the operator's to say (--allow-pickle),
    # as a file beside a pickle is as trustworthy as the pickle. The same for handler scripts.
    for key in OPERATOR_KEYS:
        values = [where[key] for where in (data, params) if key in where]
        params.pop(key, None)
        for value in values:
            if not isinstance(value, bool):
                raise fail(f"{key!r} must be true or false")
        if False in values:
            params[key] = False
    out.parameters = params
    return out


def apply_operator(parameters: dict[str, Any], **allowed: bool) -> None:
    """Set each operator switch (``allow_pickle=``, ``handler_scripts=``) in a model's ``parameters``: on
    only where the operator allows it and the model's own settings did not refuse it."""
    for key, operator_allows in allowed.items():
        assert key in OPERATOR_KEYS, key
        parameters[key] = operator_allows and parameters.get(key) is not False


def _opt_str(data: Mapping[str, Any], key: str, fail: Any) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise fail(f"{key!r} must be a non-empty string")
    return value


def _non_negative(data: Mapping[str, Any], key: str, fail: Any) -> float:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise fail(f"{key!r} must be a number >= 0")
    return float(value)


def _tensor_specs(data: Mapping[str, Any], key: str, fail: Any) -> list[TensorSpec]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise fail(f"{key!r} must be a list of {{name, datatype, shape}}")
    specs = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise fail(f"{where} must be an object with a 'name'")
        datatype = item.get("datatype", "FP32")
        try:
            numpy_dtype(str(datatype))
        except ValueError as exc:
            raise fail(f"{where}: {exc}") from None
        shape = item.get("shape", [-1])
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= -1 for d in shape):
            raise fail(f"{where}: 'shape' must be a list of whole numbers, -1 for any size")
        layout = item.get("format", "")
        if layout and (key != "inputs" or layout not in FORMATS):
            raise fail(f"{where}: 'format' is for inputs, one of {', '.join(FORMATS)}")
        specs.append(TensorSpec(item["name"], str(datatype).upper(), list(shape), format=layout))
    return specs


def _labels(data: Mapping[str, Any], source: Path, fail: Any) -> dict[str, tuple[str, ...]]:
    """Each output's class names, from the file its ``labels`` names (one a line, as Triton's
    label_filename), read now so a missing file fails the start, not a request."""
    labels: dict[str, tuple[str, ...]] = {}
    for i, item in enumerate(data.get("outputs") or []):
        name = item.get("labels")
        if name is None:
            continue
        if not isinstance(name, str) or not name:
            raise fail(f"outputs[{i}]: 'labels' must name a file of class names, one a line")
        path = source.parent / name
        try:
            labels[item["name"]] = tuple(path.read_text().splitlines())
        except OSError as exc:
            raise fail(f"outputs[{i}]: cannot read the labels file {path}: {exc.strerror}") from None
    return labels


def _sequence(data: Mapping[str, Any], fail: Any) -> dict[str, str]:
    controls = data.get("sequence") or {}
    if not isinstance(controls, Mapping) or not all(
        isinstance(name, str) and kind in SEQUENCE_CONTROLS for name, kind in controls.items()
    ):
        raise fail(
            "'sequence' maps control input names to what they carry: "
            + ", ".join(SEQUENCE_CONTROLS)
            + ' (e.g. {"START": "start", "READY": "ready"})'
        )
    return dict(controls)
