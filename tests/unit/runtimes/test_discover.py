"""Finding models: files, directories with settings, repositories, SageMaker archives, Vertex names."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from prebake.errors import ConfigError
from prebake.runtimes.discover import find_models


def _dir(tmp_path: Path, name: str, *files: Path, settings: dict[str, object] | None = None) -> Path:
    d = tmp_path / name
    d.mkdir()
    for f in files:
        shutil.copy(f, d / f.name)
    if settings is not None:
        (d / "model-settings.json").write_text(json.dumps(settings))
    return d


def test_each_file_format(
    tmp_path: Path, joblib_file: Path, xgb_files: dict[str, Path], lgb_file: tuple[Path, object],
    onnx_file: Path, torchscript_file: Path, exported_file: Path, keras_file: Path,
) -> None:  # fmt: skip
    """Each model file is found with its runtime and named after its stem."""
    sources = {
        "a.joblib": joblib_file, "b.json": xgb_files["model.json"], "c.ubj": xgb_files["model.ubj"],
        "d.txt": lgb_file[0], "e.onnx": onnx_file, "f.pt": torchscript_file, "g.pt2": exported_file,
        "h.keras": keras_file,
    }  # fmt: skip
    for name, source in sources.items():
        shutil.copy(source, tmp_path / name)
    found = find_models([tmp_path / name for name in sources])
    assert [(m.name, m.runtime) for m in found] == [
        ("a", "sklearn"), ("b", "xgboost"), ("c", "xgboost"), ("d", "lightgbm"), ("e", "onnx"),
        ("f", "torch"), ("g", "torch"), ("h", "tensorflow"),
    ]  # fmt: skip
    assert all(m.path.is_file() and m.device == "auto" for m in found)


def test_duplicate_names(joblib_file: Path, tmp_path: Path) -> None:
    """Two models with one name are a ConfigError naming both paths."""
    other = _dir(tmp_path, "other", joblib_file)
    with pytest.raises(ConfigError, match="two models are named 'iris'"):
        find_models([joblib_file, other / "iris.joblib"])


def test_missing_path(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="nope.onnx: no such file"):
        find_models([tmp_path / "nope.onnx"])


def test_unknown_file(tmp_path: Path) -> None:
    """A file of no known format is a ConfigError naming it and the formats supported."""
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ConfigError, match=r"notes.txt: not a model file.*\.onnx.*\.pt2"):
        find_models([path])


def test_dir_with_settings(tmp_path: Path, joblib_file: Path) -> None:
    """A directory's settings file gives the name, version, method, batching, device and tensors."""
    d = _dir(
        tmp_path, "iris-dir", joblib_file,
        settings={
            "name": "flowers", "version": "3", "uri": "iris.joblib", "predict_method": "predict_proba",
            "max_batch_size": 16, "max_batch_delay_ms": 5, "device": "cpu", "allow_pickle": False,
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}],
        },
    )  # fmt: skip
    (m,) = find_models([d], device="cuda")
    assert (m.name, m.version, m.runtime, m.predict_method) == ("flowers", "3", "sklearn", "predict_proba")
    assert (m.max_batch_size, m.max_batch_delay_ms, m.device) == (16, 5.0, "cpu")
    assert m.parameters["allow_pickle"] is False
    assert m.inputs[0].to_dict() == {"name": "x", "datatype": "FP64", "shape": [-1, 4]}
    assert m.path == (d / "iris.joblib").resolve()


def test_dir_without_settings(tmp_path: Path, onnx_file: Path) -> None:
    """A directory holding one model file is that model, named after the directory, with the flag's device."""
    (m,) = find_models([_dir(tmp_path, "classifier", onnx_file)], device="cpu")
    assert (m.name, m.runtime, m.path.name, m.device) == ("classifier", "onnx", "iris.onnx", "cpu")


def test_mlserver_settings(tmp_path: Path, joblib_file: Path) -> None:
    """MLServer's model-settings.json (implementation, parameters.uri, max_batch_time) is understood; its
    allow_pickle true is not taken (only the operator allows pickles)."""
    d = _dir(
        tmp_path, "ml", joblib_file,
        settings={
            "name": "ml-iris", "implementation": "mlserver_sklearn.SKLearnModel", "max_batch_time": 0.01,
            "parameters": {"uri": "./iris.joblib", "version": "v2", "extra": {"allow_pickle": True}},
        },
    )  # fmt: skip
    (m,) = find_models([d])
    assert (m.name, m.runtime, m.version, m.max_batch_delay_ms) == ("ml-iris", "sklearn", "v2", 10.0)
    assert m.parameters == {}


def test_several_models_in_one_dir(tmp_path: Path, joblib_file: Path, onnx_file: Path) -> None:
    """A directory holding two models and no settings is a ConfigError telling to add a uri."""
    with pytest.raises(ConfigError, match="several models.*'uri'"):
        find_models([_dir(tmp_path, "two", joblib_file, onnx_file)])


def test_empty_dir(tmp_path: Path) -> None:
    """A directory holding no model is a ConfigError listing the formats supported."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "requirements.txt").write_text("numpy\n")
    with pytest.raises(ConfigError, match="no model found; supported"):
        find_models([tmp_path / "empty"])


def test_repository(
    tmp_path: Path, joblib_file: Path, onnx_file: Path, lgb_file: tuple[Path, object]
) -> None:
    """Each subdirectory of a repository is a model; numbered version directories serve the highest."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _dir(repo, "a-sklearn", joblib_file)
    versioned = repo / "b-onnx"
    (versioned / "1").mkdir(parents=True)
    (versioned / "2").mkdir()
    shutil.copy(onnx_file, versioned / "2" / "model.onnx")
    shutil.copy(lgb_file[0], repo / "c-lgb.txt")
    (repo / "README.md").write_text("not a model")
    found = find_models([], repository=repo)
    assert [(m.name, m.runtime, m.version) for m in found] == [
        ("a-sklearn", "sklearn", None), ("b-onnx", "onnx", "2"), ("c-lgb", "lightgbm", None),
    ]  # fmt: skip


def test_repository_must_be_a_dir(tmp_path: Path) -> None:
    """A repository path that is no directory is a ConfigError."""
    with pytest.raises(ConfigError, match="not a directory"):
        find_models([], repository=tmp_path / "missing")


@pytest.mark.parametrize("name", ["model.joblib", "model.pkl", "model.bst"])
def test_vertex_names(tmp_path: Path, joblib_file: Path, xgb_files: dict[str, Path], name: str) -> None:
    """Vertex AI's model.joblib, model.pkl and model.bst are found with the right runtime."""
    d = tmp_path / "vertex"
    d.mkdir()
    shutil.copy(xgb_files["model.bst"] if name == "model.bst" else joblib_file, d / name)
    (m,) = find_models([d])
    assert (m.name, m.runtime, m.path.name) == (
        "vertex",
        "xgboost" if name == "model.bst" else "sklearn",
        name,
    )


def test_vertex_saved_model(tmp_path: Path, saved_model_dir: Path) -> None:
    """A directory with saved_model.pb is a TensorFlow SavedModel, served from the directory itself."""
    d = tmp_path / "tf-model"
    shutil.copytree(saved_model_dir, d)
    (m,) = find_models([d])
    assert (m.name, m.runtime, m.path) == ("tf-model", "tensorflow", d)


def _tar(path: Path, members: dict[str, Path]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for arcname, source in members.items():
            tar.add(source, arcname=arcname)
    return path


def test_sagemaker_tar(tmp_path: Path, joblib_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SageMaker model.tar.gz is unpacked under $TMPDIR, once, and its model found inside."""
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # what TMPDIR sets
    archive = _tar(tmp_path / "model.tar.gz", {"model.joblib": joblib_file})
    (m,) = find_models([archive])
    assert (m.name, m.runtime, m.path.name) == ("model", "sklearn", "model.joblib")
    assert m.path.is_relative_to(tmp_path / "tmp" / "prebake-models")
    (again,) = find_models([archive])
    assert again.path == m.path


def test_sagemaker_dir_with_tar(tmp_path: Path, onnx_file: Path) -> None:
    """A directory holding only a model.tar.gz (SageMaker's model data) serves what is inside."""
    d = tmp_path / "endpoint"
    d.mkdir()
    _tar(d / "model.tar.gz", {"iris.onnx": onnx_file})
    (m,) = find_models([d])
    assert (m.name, m.runtime, m.path.name) == ("endpoint", "onnx", "iris.onnx")


def test_sagemaker_script_dir(tmp_path: Path, joblib_file: Path) -> None:
    """A directory with code/inference.py is served by the SageMaker script runtime."""
    d = _dir(tmp_path, "sm", joblib_file)
    (d / "code").mkdir()
    (d / "code" / "inference.py").write_text("")
    (m,) = find_models([d])
    assert (m.name, m.runtime, m.path) == ("sm", "sagemaker", d)


def test_tar_escape_refused(tmp_path: Path, joblib_file: Path) -> None:
    """An archive whose member would land outside the unpack directory is a ConfigError."""
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(joblib_file, arcname="../escaped.joblib")
    with pytest.raises(ConfigError, match="cannot unpack"):
        find_models([archive])


def test_bad_device(joblib_file: Path) -> None:
    """An unknown --device value is a ConfigError."""
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        find_models([joblib_file], device="tpu")


def test_name_must_fit_a_url(tmp_path: Path, joblib_file: Path) -> None:
    """A model name with a space or slash is a ConfigError saying how to fix it."""
    shutil.copy(joblib_file, tmp_path / "my model.joblib")
    with pytest.raises(ConfigError, match="'my model' is not usable in a URL"):
        find_models([tmp_path / "my model.joblib"])
    d = _dir(tmp_path, "ok", joblib_file, settings={"name": "a/b"})
    with pytest.raises(ConfigError, match="'a/b' is not usable"):
        find_models([d])


def test_unwritable_tmpdir(tmp_path: Path, joblib_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TMPDIR that cannot be written is a ConfigError telling to set a writable one."""
    import tempfile

    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker))
    archive = _tar(tmp_path / "model.tar.gz", {"model.joblib": joblib_file})
    with pytest.raises(ConfigError, match="set TMPDIR to a writable directory"):
        find_models([archive])


def test_sagemaker_tar_with_script(tmp_path: Path, joblib_file: Path) -> None:
    """A model.tar.gz holding code/inference.py beside the model is served by the SageMaker script runtime."""
    script = tmp_path / "inference.py"
    script.write_text("")
    archive = _tar(tmp_path / "model.tar.gz", {"model.joblib": joblib_file, "code/inference.py": script})
    (m,) = find_models([archive])
    assert (m.name, m.runtime) == ("model", "sagemaker")
    assert (m.path / "code" / "inference.py").is_file() and (m.path / "model.joblib").is_file()
