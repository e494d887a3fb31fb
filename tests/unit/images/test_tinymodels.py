"""The smoke test's tiny models and score.py files work on the host, so a failure in an image is the image's."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from prebake.images.tinymodels import make_case


@pytest.mark.parametrize("kind", ["entry-script", "sklearn", "xgboost", "onnxruntime", "lightgbm", "pytorch"])
def test_score_py_predicts_what_the_host_expects(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the written score.py with the Azure contract (init, then run on the raw body) gives the expected predictions."""
    for module in (
        {"xgboost": "xgboost", "onnxruntime": "onnxruntime", "lightgbm": "lightgbm", "pytorch": "torch"}.get(
            kind, "json"
        ),
        "sklearn",
    ):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed here (scripts/setup.sh --test installs it)")
    case = make_case(kind, tmp_path)
    monkeypatch.setitem(os.environ, "AZUREML_MODEL_DIR", str(case.model_dir))
    spec = importlib.util.spec_from_file_location(
        f"score_{kind.replace('-', '_')}", case.script_dir / "score.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    assert case.matches(module.run(json.dumps(case.request))["predictions"])
    assert not case.matches(["wrong"] * len(case.expected))  # the comparison can fail
