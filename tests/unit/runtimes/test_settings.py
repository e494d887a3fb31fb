"""The model-settings.json reader: what it accepts and how it refuses mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prebake.errors import ConfigError
from prebake.runtimes.settings import parse_settings, read_settings

SOURCE = Path("/models/m/model-settings.json")


def test_empty_file_is_fine() -> None:
    """An empty object says nothing and is accepted."""
    settings = parse_settings({}, source=SOURCE)
    assert settings.name is None and settings.runtime is None and settings.parameters == {}


def test_uri_is_relative_to_the_file() -> None:
    """A relative uri is taken from the settings file's directory."""
    assert parse_settings({"uri": "w/model.onnx"}, source=SOURCE).uri == Path("/models/m/w/model.onnx")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "x"}, "unknown key 'nmae'"),
        ([], "one JSON object"),
        ({"device": "tpu"}, "'device' must be one of"),
        ({"max_batch_size": -1}, "'max_batch_size' must be a whole number"),
        ({"max_batch_delay_ms": "soon"}, "'max_batch_delay_ms' must be a number"),
        ({"allow_pickle": "yes"}, "'allow_pickle' must be true or false"),
        ({"inputs": [{"name": "x", "datatype": "FP8"}]}, r"inputs\[0\]: unknown datatype 'FP8'"),
        ({"inputs": [{"name": "x", "shape": [-2]}]}, r"inputs\[0\]: 'shape'"),
        ({"outputs": {"name": "y"}}, "'outputs' must be a list"),
        ({"implementation": "mlserver_mlflow.MLflowRuntime"}, "no prebake runtime"),
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"inputs": [{"name": "x", "format": "CHW"}]}, r"inputs\[0\]: 'format' is for inputs"),
        ({"outputs": [{"name": "y", "format": "NCHW"}]}, r"outputs\[0\]: 'format' is for inputs"),
        ({"outputs": [{"name": "y", "labels": "missing.txt"}]}, r"outputs\[0\]: cannot read the labels file"),
        ({"sequence": {"START": "begin"}}, "'sequence' maps control input names"),
        ({"sequence": ["START"]}, "'sequence' maps control input names"),
    ],
)
def test_mistakes_are_refused(data: Any, message: str) -> None:
    """Each mistake is a ConfigError naming the file and the key at fault."""
    with pytest.raises(ConfigError, match=message) as info:
        parse_settings(data, source=SOURCE)
    assert str(SOURCE) in info.value.message


def test_unreadable_json(tmp_path: Path) -> None:
    """A file that is not JSON is a ConfigError naming it."""
    path = tmp_path / "model-settings.json"
    path.write_text("{name: x}")
    with pytest.raises(ConfigError, match="cannot read the settings file"):
        read_settings(path)


def test_full_file(tmp_path: Path) -> None:
    """Every documented key is read into its field."""
    path = tmp_path / "model-settings.json"
    path.write_text(
        json.dumps(
            {
                "name": "iris", "version": 2, "runtime": "onnx", "uri": "m.onnx", "predict_method": "predict",
                "inputs": [{"name": "x", "datatype": "fp32", "shape": [-1, 4]}],
                "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}],
                "max_batch_size": 8, "max_batch_delay_ms": 1.5, "device": "cuda", "allow_pickle": False,
                "parameters": {"intra_op_num_threads": 1},
            }
        )
    )  # fmt: skip
    s = read_settings(path)
    assert (s.name, s.version, s.runtime, s.uri) == ("iris", "2", "onnx", tmp_path / "m.onnx")
    assert [i.to_dict() for i in s.inputs] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert (s.max_batch_size, s.max_batch_delay_ms, s.device) == (8, 1.5, "cuda")
    assert s.parameters == {"intra_op_num_threads": 1, "allow_pickle": False}


@pytest.mark.parametrize(
    "data",
    [
        {"allow_pickle": True},
        {"parameters": {"allow_pickle": True}},
        {"parameters": {"extra": {"allow_pickle": True}}},
        {"handler_scripts": True, "parameters": {"handler_scripts": True}},
    ],
    ids=["top level", "parameters", "MLServer extra", "handler scripts"],
)
def test_a_settings_file_cannot_allow_what_the_operator_decides(
    tmp_path: Path, data: dict[str, object]
) -> None:
    """allow_pickle / handler_scripts true in a model's own file, wherever it is written, leaves nothing behind: the operator's flag decides."""
    s = parse_settings(data, source=tmp_path / "model-settings.json")
    assert "allow_pickle" not in s.parameters and "handler_scripts" not in s.parameters


def test_a_settings_file_can_refuse(tmp_path: Path) -> None:
    """false anywhere in the file refuses, even beside a true elsewhere in it."""
    data = {"allow_pickle": True, "parameters": {"allow_pickle": False}, "handler_scripts": False}
    s = parse_settings(data, source=tmp_path / "model-settings.json")
    assert s.parameters == {"allow_pickle": False, "handler_scripts": False}


def test_format_labels_and_sequence(tmp_path: Path) -> None:
    """An input's format, an output's labels file (one class a line) and sequence controls are read."""
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    settings = parse_settings(
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 8, 8], "format": "NCHW"}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "labels": "labels.txt"}],
            "sequence": {"START": "start", "ID": "correlation_id"},
        },
        source=tmp_path / "model-settings.json",
    )
    assert settings.inputs[0].format == "NCHW" and settings.outputs[0].format == ""
    assert settings.labels == {"y": ("cat", "dog")}
    assert settings.sequence == {"START": "start", "ID": "correlation_id"}
