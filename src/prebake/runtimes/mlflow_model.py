"""An MLflow model directory read as data: its ``MLmodel`` file, signature, input example and requirements.

Nothing here imports mlflow: discovery, ``prebake recommend`` and the runtime all read a model the same
way, in any image. Only PyYAML (a server dependency through uvicorn[standard]) is needed.

Example::

    model = read_mlmodel(Path("my_model"))
    model.flavors["sklearn"]["sklearn_version"]     # '1.9.1'
    model.signature_inputs                          # [{'type': 'double', 'name': 'x', 'required': True}]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prebake.errors import ModelLoadError

MLMODEL = "MLmodel"

#: Flavor -> the PyPI package that provides it and the key of the MLmodel file that records its version.
FLAVOR_PACKAGES: dict[str, tuple[str, str]] = {
    "sklearn": ("scikit-learn", "sklearn_version"),
    "xgboost": ("xgboost", "xgb_version"),
    "lightgbm": ("lightgbm", "lgb_version"),
    "onnx": ("onnxruntime", "onnx_version"),
    "pytorch": ("torch", "pytorch_version"),
    "tensorflow": ("tensorflow", "keras_version"),
    "keras": ("keras", "keras_version"),
    "transformers": ("transformers", "transformers_version"),
}


@dataclass(slots=True)
class MLflowModel:
    """What an ``MLmodel`` file says, with the directory it lives in."""

    path: Path
    flavors: dict[str, dict[str, Any]]
    signature_inputs: list[dict[str, Any]] | None = None
    signature_outputs: list[dict[str, Any]] | None = None
    signature_params: list[dict[str, Any]] | None = None
    input_example: dict[str, Any] | None = None  # saved_input_example_info
    mlflow_version: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def pyfunc(self) -> dict[str, Any]:
        return self.flavors.get("python_function") or {}

    @property
    def python_version(self) -> str | None:
        version = self.pyfunc.get("python_version")
        return str(version) if version else None

    def requirements(self) -> list[str]:
        """The pip requirements the model was logged with (requirements.txt), comments dropped."""
        path = self.path / "requirements.txt"
        if not path.is_file():
            return []
        lines = (line.split("#", 1)[0].strip() for line in path.read_text(errors="replace").splitlines())
        return [line for line in lines if line and not line.startswith("-")]

    def framework_versions(self) -> dict[str, str]:
        """PyPI package -> the version the model was logged with, from its flavors (e.g.
        ``{"scikit-learn": "1.9.1"}``); ``mlflow`` too where recorded."""
        found: dict[str, str] = {}
        for flavor, (package, key) in FLAVOR_PACKAGES.items():
            version = self.flavors.get(flavor, {}).get(key)
            if version:
                found[package] = str(version)
        return found

    def serving_example(self) -> bytes | None:
        """The logged input example as an MLflow scoring request body (``serving_input_example.json``),
        or None where the model was logged without one."""
        info = self.input_example or {}
        name = info.get("serving_input_path")
        if name and (self.path / name).is_file():
            return (self.path / name).read_bytes()
        artifact = info.get("artifact_path")
        if not artifact or not (self.path / artifact).is_file():
            return None
        example = json.loads((self.path / artifact).read_bytes())
        if info.get("type") == "dataframe":
            key = "dataframe_split" if info.get("pandas_orient", "split") == "split" else "dataframe_records"
            return json.dumps({key: example}).encode()
        return json.dumps(
            example if isinstance(example, dict) and "inputs" in example else {"inputs": example}
        ).encode()


def is_mlflow_dir(path: Path) -> bool:
    return (path / MLMODEL).is_file()


def read_mlmodel(directory: Path) -> MLflowModel:
    """Read ``directory/MLmodel``; ModelLoadError naming the file when it cannot be read."""
    source = directory / MLMODEL
    try:
        import yaml
    except ImportError:
        raise ModelLoadError(f"{source}: reading an MLflow model needs PyYAML: pip install pyyaml") from None
    try:
        doc = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{source}: cannot read the MLmodel file: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict) or not doc["flavors"]:
        raise ModelLoadError(
            f"{source}: an MLmodel file needs a 'flavors' mapping naming at least one flavor"
        )
    signature = doc.get("signature") or {}
    if not isinstance(signature, dict):
        raise ModelLoadError(f"{source}: 'signature' must be a mapping of inputs, outputs and params")
    return MLflowModel(
        path=directory,
        flavors={str(k): dict(v or {}) for k, v in doc["flavors"].items()},
        signature_inputs=_json_list(signature.get("inputs"), source, "signature.inputs"),
        signature_outputs=_json_list(signature.get("outputs"), source, "signature.outputs"),
        signature_params=_json_list(signature.get("params"), source, "signature.params"),
        input_example=doc.get("saved_input_example_info") or None,
        mlflow_version=str(doc["mlflow_version"]) if doc.get("mlflow_version") else None,
        raw=doc,
    )


def _json_list(value: Any, source: Path, key: str) -> list[dict[str, Any]] | None:
    """A signature part: MLflow stores each as a JSON string inside the YAML."""
    if value is None:
        return None
    try:
        items = json.loads(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise ModelLoadError(f"{source}: {key} is not valid JSON: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ModelLoadError(f"{source}: {key} must be a list of column, tensor or param specs")
    return items
