"""`prebake deploy k8s NAME --model M` without --image: the image `prebake recommend` picks, said on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from prebake import exits
from prebake.cli.deploy import deploy
from prebake.extend.recommend import recommend
from prebake.images.catalog import load_catalog

from .conftest import assert_golden, catalog_name, validate_kubernetes


def _k8s(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(deploy, ["k8s", "iris", *args, "-o", "-"])
    return result.exit_code, result.stdout, result.stderr


def _image(manifests: str) -> str:
    deployment = next(doc for doc in yaml.safe_load_all(manifests) if doc["kind"] == "Deployment")
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: the model named is not on this machine."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_model_not_here_gets_the_image_its_suffix_names(elsewhere: Path) -> None:
    """--model model.joblib (in the volume, not here): the scikit-learn image, said with its reason; the
    manifests are the ones --image would write (golden, with the catalog's reference as a placeholder)."""
    code, out, err = _k8s("--model", "model.joblib", "--replicas", "3")
    assert code == 0, err
    sklearn = load_catalog().get(catalog_name("sklearn"))
    assert f"prebake deploy: image {sklearn.name} (from the name model.joblib" in err
    assert "why:     model.joblib: a .joblib file; the image has scikit-learn" in err
    assert _image(out) == sklearn.reference
    code, explicit, _ = _k8s("--model", "model.joblib", "--replicas", "3", "--image", sklearn.name)
    assert code == 0 and explicit == out
    for manifest in yaml.safe_load_all(out):
        validate_kubernetes(manifest)
    assert_golden("k8s-recommended-image.yaml", out.replace(sklearn.reference, "RECOMMENDED-IMAGE"))


def test_a_model_on_this_machine_is_read_as_prebake_recommend_reads_it(elsewhere: Path) -> None:
    """A joblib file here is read for the scikit-learn version it was saved with: the same image and the
    same reasons as `prebake recommend model.joblib`."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), elsewhere / "model.joblib")
    expected = recommend(Path("model.joblib"), load_catalog())
    code, out, err = _k8s("--model", "model.joblib")
    assert code == 0, err
    assert f"image {expected.image.name} (what `prebake recommend model.joblib` picks)" in err
    assert all(reason in err for reason in expected.reasons) and expected.reasons
    assert _image(out) == expected.image.reference


def test_an_entry_script_decides_by_what_it_imports(elsewhere: Path) -> None:
    """A score.py that imports onnxruntime gets the ONNX Runtime image, whatever the model is called."""
    script = elsewhere / "score.py"
    script.write_text("import onnxruntime\n\ndef init():\n    pass\n\ndef run(raw):\n    return raw\n")
    code, out, err = _k8s("--entry-script", str(script), "--model", "model.joblib")
    assert code == 0, err
    onnx = load_catalog().get(catalog_name("onnxruntime"))
    assert f"image {onnx.name}" in err and _image(out) == onnx.reference


def test_gpus_choose_among_the_gpu_images(elsewhere: Path) -> None:
    """--gpus 1 with an .onnx model: the GPU ONNX Runtime image, and the pod asks for the GPU."""
    code, out, err = _k8s("--model", "model.onnx", "--gpus", "1")
    assert code == 0, err
    gpu = load_catalog().get(catalog_name("onnxruntime", gpu=True))
    assert _image(out) == gpu.reference
    assert "nvidia.com/gpu" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--model", "weights.bin"],
            "weights.bin: the file name does not say which framework saved it: name the image with --image",
        ),
        ([], "nothing to serve"),
    ],
)
def test_no_recommendation_exits_2_and_writes_nothing(elsewhere: Path, args: list[str], says: str) -> None:
    """A name that says no framework, or nothing to serve: exit 2, what to do, no manifest."""
    code, out, err = _k8s(*args)
    assert code == exits.USAGE
    assert says in err and out == ""
