"""recommend(): the catalog image chosen for real saved models and scripts, and the reasons given."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from prebake.extend.evidence import onnx_opset
from prebake.extend.recommend import recommend
from prebake.images.catalog import Catalog, load_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def onnx_bytes(opset: int) -> bytes:
    """A ModelProto holding ir_version, producer_name, a graph blob and one opset_import."""
    opset_entry = b"\x0a\x00" + b"\x10" + _varint(opset)
    graph = b"\x0a\x01x"
    return (
        b"\x08\x09" + b"\x12\x08skl2onnx" + b"\x3a" + _varint(len(graph)) + graph
        + b"\x42" + _varint(len(opset_entry)) + opset_entry
    )  # fmt: skip


def test_sklearn_joblib_gets_the_sklearn_image(tmp_path: Path, catalog: Catalog) -> None:
    """A real joblib-saved estimator is matched to the sklearn image through the version it records."""
    import joblib
    import sklearn
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    joblib.dump(model, tmp_path / "model.joblib")
    result = recommend(tmp_path / "model.joblib", catalog)
    assert result.image.framework == "sklearn"
    assert any(sklearn.__version__ in line for line in result.reasons + result.warnings)


def test_compressed_joblib_is_read(tmp_path: Path, catalog: Catalog) -> None:
    """A zlib-compressed joblib file is decompressed and still matched to the sklearn image."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    joblib.dump(DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1]), tmp_path / "m.joblib", compress=3)
    assert recommend(tmp_path / "m.joblib", catalog).image.framework == "sklearn"


def test_old_sklearn_pickle_warns(tmp_path: Path, catalog: Catalog) -> None:
    """A pickle recording scikit-learn 0.24.2 gets the sklearn image and a warning naming both versions."""
    (tmp_path / "old.pkl").write_bytes(
        pickle.dumps({"cls": "sklearn.linear_model._base", "_sklearn_version": "0.24.2"})
    )
    result = recommend(tmp_path / "old.pkl", catalog)
    assert result.image.framework == "sklearn" and not result.exact
    assert "0.24.2" in result.warnings[0] and result.image.version in result.warnings[0]


def test_xgboost_json_exact(tmp_path: Path, catalog: Catalog) -> None:
    """An XGBoost JSON model saved by 3.2.0 gets the xgboost 3.2.0 image as an exact match."""
    (tmp_path / "model.json").write_text(json.dumps({"learner": {}, "version": [3, 2, 0]}))
    result = recommend(tmp_path / "model.json", catalog)
    assert result.image.name.startswith("xgboost-3.2.0") and result.exact, result


def test_onnx_opset(tmp_path: Path, catalog: Catalog) -> None:
    """The opset is read from the protobuf by hand, and a too-new opset warns."""
    (tmp_path / "m.onnx").write_bytes(onnx_bytes(17))
    assert onnx_opset(onnx_bytes(17)) == (17, "skl2onnx")
    result = recommend(tmp_path / "m.onnx", catalog)
    assert result.image.framework == "onnxruntime" and result.image.device == "cpu" and result.exact
    (tmp_path / "m.onnx").write_bytes(onnx_bytes(99))
    assert "opset 99" in recommend(tmp_path / "m.onnx", catalog).warnings[0]


def test_script_imports(tmp_path: Path, catalog: Catalog) -> None:
    """A score.py importing torch gets the newest CPU torch image; one importing only the stdlib gets the minimal one."""
    (tmp_path / "helper.py").write_text("")
    (tmp_path / "score.py").write_text("import json, os\nimport torch\nfrom helper import x\n")
    result = recommend(tmp_path / "score.py", catalog)
    assert result.image.name.startswith("pytorch-2.13.0") and result.image.device == "cpu"
    (tmp_path / "score.py").write_text(
        "import json\nfrom azureml.contrib.services.aml_request import rawhttp\n"
    )
    assert recommend(tmp_path / "score.py", catalog).image.framework == "minimal"


def test_unknown_import_warns(tmp_path: Path, catalog: Catalog) -> None:
    """A package no image holds is named in a warning that says how to add it."""
    (tmp_path / "score.py").write_text("import sklearn\nimport rapidfuzz\n")
    result = recommend(tmp_path / "score.py", catalog)
    assert result.image.framework == "sklearn" and "rapidfuzz" in result.warnings[0]
    assert "PREBAKE_EXTRA_REQUIREMENTS" in result.warnings[0]


def test_gpu_choice(tmp_path: Path, catalog: Catalog) -> None:
    """device='gpu' chooses among GPU images only."""
    (tmp_path / "m.onnx").write_bytes(onnx_bytes(17))
    assert recommend(tmp_path / "m.onnx", catalog, device="gpu").image.device.startswith("cuda")
