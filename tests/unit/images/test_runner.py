"""Containers start locked down, and a model of the wrong framework is refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from prebake.images.catalog import load_catalog
from prebake.images.runner import ModelMismatch, RunSpec, check_model, run_arguments

CATALOG = load_catalog()
SKLEARN = CATALOG.get("sklearn-1.9.1-debian12-py311-cpu-inference")


def test_run_arguments_lock_the_container_down(tmp_path: Path) -> None:
    """The run is read-only with a tmpfs /tmp, drops capabilities, binds 127.0.0.1 only and mounts the user's files read-only."""
    script = tmp_path / "app" / "score.py"
    script.parent.mkdir()
    script.write_text("def init(): pass\n")
    args = run_arguments(RunSpec("img:1", 8080, model=tmp_path, entry_script=script, name="c1"))
    joined = " ".join(args)
    assert "--read-only" in args and "--tmpfs /tmp" in joined and "--cap-drop all" in joined
    assert "--publish 127.0.0.1:8080:5001" in joined
    assert f"{tmp_path}:/var/azureml-app/azureml-models:ro" in args
    assert f"{script.parent}:/var/azureml-app/src:ro" in args
    assert "AZUREML_ENTRY_SCRIPT=score.py" in args and args[-1] == "img:1"


def test_model_file_alone_is_served_without_code(tmp_path: Path) -> None:
    """With only a model file, the file is mounted and its in-container path becomes `prebake serve MODEL_PATH`."""
    model = tmp_path / "model.joblib"
    model.write_bytes(b"\x80")
    args = run_arguments(RunSpec("img:1", 5001, model=model))
    assert args[-2:] == ["img:1", "/var/azureml-app/azureml-models/model.joblib"]


def test_wrong_framework_model_is_refused(tmp_path: Path) -> None:
    """An ONNX file given to the scikit-learn image is refused with a hint naming the right image."""
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(ModelMismatch, match="onnxruntime image"):
        check_model(SKLEARN, model)


def test_matching_model_and_missing_model(tmp_path: Path) -> None:
    """A .joblib passes for scikit-learn; a path that does not exist is reported as such."""
    model = tmp_path / "model.joblib"
    model.write_bytes(b"\x80")
    check_model(SKLEARN, model)
    with pytest.raises(ModelMismatch, match="does not exist"):
        check_model(SKLEARN, tmp_path / "absent.joblib")


def test_detached_runs_are_removed_unless_kept() -> None:
    """`prebake run -d` removes the container when it stops; the smoke test keeps it to read the exit code."""
    assert run_arguments(RunSpec("img:1", 5001, detach=True))[:3] == ["run", "--rm", "--detach"]
    assert "--rm" not in run_arguments(RunSpec("img:1", 5001, detach=True, remove=False))
