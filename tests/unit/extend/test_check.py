"""check(): real subprocesses run a score.py's import, init() and a sample request with this Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prebake.extend.check import CheckRequest, check
from prebake.images.catalog import Catalog, load_catalog

from .wheels import make_wheel

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"
SCORE = """
import json, os
import tinyextra_chk

def init():
    global factor
    factor = int(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "factor.txt")).read())

def run(raw):
    return [x * factor for x in json.loads(raw)["data"]]
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "factor.txt").write_text("3")
    (tmp_path / "score.py").write_text(SCORE)
    (tmp_path / "sample.json").write_text(json.dumps({"data": [1, 2]}))
    make_wheel(tmp_path / "wheels", "tinyextra_chk", "1.0.0")
    (tmp_path / "requirements.txt").write_text("tinyextra_chk==1.0.0\n")
    return tmp_path


def request(app: Path, **changes: object) -> CheckRequest:
    values: dict[str, object] = {
        "entry_script": app / "score.py",
        "model_dir": app / "model",
        "requirements": app / "requirements.txt",
        "sample": app / "sample.json",
        "wheelhouse": app / "wheels",
        "where": "local",
        "timeout_s": 60.0,
    }
    values.update(changes)
    return CheckRequest(**values)  # type: ignore[arg-type]


def steps(report: object) -> dict[str, str]:
    return {f.step: f.severity for f in report.findings}  # type: ignore[attr-defined]


def test_good_deployment_passes(app: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A script needing an extra package passes: the package installs offline, init() runs, the sample answers."""
    monkeypatch.setenv("PREBAKE_CACHE_DIR", str(app / "cache"))
    report = check(request(app), catalog)
    assert report.ok, report.text()
    sample = next(f for f in report.findings if f.step == "sample-request")
    assert "[3,6]" in sample.message


def test_failing_init_is_reported(app: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """An init() that raises fails the check, naming the error, and run() is not called."""
    monkeypatch.setenv("PREBAKE_CACHE_DIR", str(app / "cache"))
    (app / "model" / "factor.txt").unlink()
    report = check(request(app), catalog)
    assert not report.ok
    failed = next(f for f in report.findings if f.step == "import-and-init")
    assert failed.severity == "error" and "FileNotFoundError" in failed.message and failed.fix
    assert "sample-request" not in steps(report)


def test_missing_package_fails_import(app: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the requirements file the script's import fails, and the check says so."""
    monkeypatch.setenv("PREBAKE_CACHE_DIR", str(app / "cache"))
    report = check(request(app, requirements=None, wheelhouse=None), catalog)
    assert steps(report)["import-and-init"] == "error"
    assert "tinyextra_chk" in next(f.message for f in report.findings if f.step == "import-and-init")


def test_conflict_with_image_pins_fails_in_milliseconds(app: Path, catalog: Catalog) -> None:
    """A requirement that would change the image's scikit-learn fails before any subprocess runs."""
    (app / "requirements.txt").write_text("scikit-learn==1.5.0\n")
    report = check(request(app, image=SKLEARN), catalog)
    assert not report.ok and report.seconds < 2
    message = next(f.message for f in report.findings if f.step == "requirements")
    assert "scikit-learn==1.5.0" in message and "scikit-learn==1.9.1" in message


def test_bad_inputs(app: Path, catalog: Catalog) -> None:
    """Missing files, a sample that is not JSON and an unknown image each fail with a named problem."""
    report = check(request(app, entry_script=app / "nope.py"), catalog)
    assert not report.ok and "nope.py does not exist" in report.findings[0].message
    (app / "sample.json").write_text("{not json")
    assert "is not JSON" in check(request(app), catalog).findings[0].message
    (app / "sample.json").write_text("{}")
    report = check(request(app, image="sklearn-9.9"), catalog)
    assert steps(report)["image"] == "error" and not report.ok


def test_no_code_model_version_warning(tmp_path: Path, catalog: Catalog) -> None:
    """A pickle recording another scikit-learn version warns, naming both versions, with a fix."""
    import pickle

    (tmp_path / "old.pkl").write_bytes(
        pickle.dumps({"m": "sklearn.linear_model._base", "_sklearn_version": "1.2.2"})
    )
    report = check(CheckRequest(model=tmp_path / "old.pkl", image=SKLEARN, where="local"), catalog)
    warning = next(f for f in report.findings if f.step == "model-versions")
    assert warning.severity == "warning" and "1.2.2" in warning.message and "1.9.1" in warning.message


def test_no_code_model_is_loaded_by_the_runtime(tmp_path: Path, catalog: Catalog) -> None:
    """A real joblib model loads with the sklearn runtime once pickles are allowed; a corrupt one fails the check with the loader's error."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "good.joblib")
    request = CheckRequest(model=tmp_path / "good.joblib", image=SKLEARN, where="local", allow_pickle=True)
    report = check(request, catalog)
    assert report.ok and steps(report)["load-model"] == "ok", report.text()
    (tmp_path / "bad.joblib").write_bytes(b"not a pickle")
    report = check(CheckRequest(model=tmp_path / "bad.joblib", where="local", allow_pickle=True), catalog)
    assert not report.ok and "bad.joblib" in next(
        f.message for f in report.findings if f.step == "load-model"
    )


def test_a_pickled_model_is_not_unpickled_without_allow_pickle(tmp_path: Path, catalog: Catalog) -> None:
    """Without allow_pickle (the CLI's --allow-pickle) the check refuses to unpickle the model, naming the flag, even with PREBAKE_ALLOW_PICKLE in its environment; the pickle's code never runs."""
    import pickle

    marker = tmp_path / "ran"
    # A pickle that would create the marker file when loaded.
    payload = pickle.dumps(_Touch(str(marker)))
    (tmp_path / "evil.joblib").write_bytes(payload)
    report = check(CheckRequest(model=tmp_path / "evil.joblib", where="local"), catalog)
    load = next(f for f in report.findings if f.step == "load-model")
    assert load.severity == "error" and "--allow-pickle" in load.message
    assert not marker.exists(), "the pickle was loaded"


class _Touch:
    """Unpickling this calls pathlib.Path.touch on the path it holds."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import pathlib

        return (pathlib.Path.touch, (self.path,))
