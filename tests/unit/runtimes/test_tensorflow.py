"""The TensorFlow runtime against the Keras model's own output, from a SavedModel and a .keras file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.errors import InvalidInput, ModelLoadError
from tests.unit.runtimes.helpers import assert_batching, load, request


def test_saved_model_matches_keras(saved_model_dir: Path, keras_model: Any, iris: Any) -> None:
    """The serving_default signature's output, named as in the signature, equals the model's own."""
    x, _ = iris
    out = load(saved_model_dir, "tensorflow").predict(request(features=x[:6])).outputs
    assert list(out) == ["probs"]
    np.testing.assert_allclose(out["probs"], keras_model(x[:6].astype(np.float32)).numpy(), rtol=1e-5)


@pytest.mark.parametrize("fixture", ["keras_file", "h5_file"])
def test_keras_file_matches_keras(fixture: str, request_fixture: Any, keras_model: Any, iris: Any) -> None:
    """A .keras (or legacy .h5) file gives the model's own output under its output layer's name."""
    x, _ = iris
    out = load(request_fixture(fixture), "tensorflow").predict(request(features=x[:6])).outputs
    assert list(out) == ["probs"]
    np.testing.assert_allclose(out["probs"], keras_model(x[:6].astype(np.float32)).numpy(), rtol=1e-5)


@pytest.mark.parametrize("fixture", ["saved_model_dir", "keras_file"])
def test_batching_contract(fixture: str, request_fixture: Any, iris: Any) -> None:
    """Five rows at once give the same outputs as five one-row calls concatenated."""
    x, _ = iris
    model = load(request_fixture(fixture), "tensorflow")
    assert model.batchable
    assert_batching(model, x[:5])


@pytest.mark.parametrize("fixture", ["saved_model_dir", "keras_file"])
def test_wrong_width(fixture: str, request_fixture: Any) -> None:
    """Three features for a four-feature signature is InvalidInput naming the shape expected."""
    with pytest.raises(InvalidInput, match=r"'features' has shape \[1, 3\]; the model expects \[-1, 4\]"):
        load(request_fixture(fixture), "tensorflow").predict(request(features=np.ones((1, 3))))


def test_metadata_from_signature(saved_model_dir: Path) -> None:
    """Metadata gives the signature's input and output names, dtypes and shapes."""
    meta = load(saved_model_dir, "tensorflow").metadata()
    assert meta.platform == "tensorflow_savedmodel"
    assert [s.to_dict() for s in meta.inputs] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert [s.to_dict() for s in meta.outputs] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}]


def test_unknown_signature(saved_model_dir: Path) -> None:
    """A signature the SavedModel lacks is ModelLoadError listing the ones it has."""
    with pytest.raises(ModelLoadError, match="no signature 'predict'.*serving_default"):
        load(saved_model_dir, "tensorflow", parameters={"signature": "predict"})


def test_device_cuda_without_a_gpu_refuses_to_load(saved_model_dir: Path) -> None:
    """--device cuda where TensorFlow sees no GPU is a ModelLoadError saying so; cpu and auto load."""
    with pytest.raises(ModelLoadError, match="device 'cuda' was asked for, but TensorFlow sees no GPU"):
        load(saved_model_dir, "tensorflow", device="cuda")
    assert load(saved_model_dir, "tensorflow", device="auto").plan is not None
