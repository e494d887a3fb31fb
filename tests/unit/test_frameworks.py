"""One table of framework facts: discovery, `prebake run`'s check, the registry, recommend and KServe agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from prebake import frameworks
from prebake.deploy.kserve import MODEL_FORMATS
from prebake.extend.recommend import FRAMEWORK_PACKAGE
from prebake.images.catalog import load_catalog
from prebake.images.runner import ModelMismatch, check_model
from prebake.runtimes.discover import SUFFIX_RUNTIMES
from prebake.runtimes.registry import RUNTIMES

CATALOG = load_catalog()


def _image(catalog: str) -> object:
    return next(image for image in CATALOG.images if image.framework == catalog)


@pytest.mark.parametrize(("suffix", "runtime"), sorted(SUFFIX_RUNTIMES.items()))
def test_what_serve_serves_run_accepts_in_that_frameworks_image(
    tmp_path: Path, suffix: str, runtime: str
) -> None:
    """Every model file `prebake serve` serves is accepted by `prebake run` for its framework's image
    (`prebake run --model m.skops` was refused while `serve` served it)."""
    catalog = frameworks.BY_RUNTIME[runtime].catalog
    assert catalog is not None
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"x")
    check_model(_image(catalog), model)  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".ort", ".model", ".savedmodel", ".zip"])
def test_files_no_runtime_serves_are_refused_before_the_container(tmp_path: Path, suffix: str) -> None:
    """`.ort`, `.model` and `.savedmodel` passed `run` and failed inside the container: now `run` refuses
    them at once, as `serve` would not serve them."""
    assert suffix not in SUFFIX_RUNTIMES
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"x")
    for catalog in ("sklearn", "xgboost", "onnxruntime", "tensorflow"):
        with pytest.raises(ModelMismatch):
            check_model(_image(catalog), model)  # type: ignore[arg-type]


def test_every_place_derives_from_the_table() -> None:
    """The registry, recommend's packages and KServe's model formats are the table's, for every framework."""
    assert set(RUNTIMES) == set(frameworks.BY_RUNTIME)
    for framework in frameworks.FRAMEWORKS:
        assert RUNTIMES[framework.runtime].target == framework.target
        if framework.catalog:
            assert MODEL_FORMATS[framework.catalog] == framework.kserve
            assert FRAMEWORK_PACKAGE[framework.catalog] == framework.package
    catalog_frameworks = {image.framework for image in CATALOG.images} - {"minimal"}
    assert catalog_frameworks <= set(frameworks.BY_CATALOG), catalog_frameworks


def test_pickles_are_exactly_the_pickle_suffixes() -> None:
    """Which files run code when loaded is one fact: joblib, pkl and pickle; skops is not a pickle."""
    assert {".joblib", ".pkl", ".pickle"} == frameworks.PICKLE_SUFFIXES


def test_the_transformers_image_takes_a_save_pretrained_folder(tmp_path: Path) -> None:
    """`prebake run` with a transformers image accepts a save_pretrained folder (config.json) and a folder
    of .safetensors weights; another framework's image refuses such a folder and names the transformers one.
    A lone .safetensors file is no model `serve` serves (it needs its config and tokenizer)."""
    image = _image("transformers")
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    (pretrained / "config.json").write_text("{}")
    check_model(image, pretrained)  # type: ignore[arg-type]
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"x")
    check_model(image, weights)  # type: ignore[arg-type]
    with pytest.raises(ModelMismatch, match="use a transformers image"):
        check_model(_image("sklearn"), weights)  # type: ignore[arg-type]
    assert ".safetensors" not in SUFFIX_RUNTIMES
