"""The sklearn runtime against scikit-learn's own predictions."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prebake.errors import ConfigError, InvalidInput, ModelLoadError
from tests.unit.runtimes.helpers import assert_batching, load, need, request


def test_predict_matches_sklearn(joblib_file: Path, sklearn_model: Any, iris: Any) -> None:
    """The runtime's predict output equals the estimator's own predict on the same rows."""
    x, _ = iris
    out = load(joblib_file, "sklearn").predict(request(input=x[:10])).outputs
    assert list(out) == ["predict"]
    np.testing.assert_array_equal(out["predict"], sklearn_model.predict(x[:10]))


def test_several_methods_are_named_outputs(joblib_file: Path, sklearn_model: Any, iris: Any) -> None:
    """predict_method "predict,predict_proba" gives both outputs, each named for its method."""
    x, _ = iris
    model = load(joblib_file, "sklearn", predict_method="predict,predict_proba")
    out = model.predict(request(input=x[:3])).outputs
    np.testing.assert_allclose(out["predict_proba"], sklearn_model.predict_proba(x[:3]))
    np.testing.assert_array_equal(out["predict"], sklearn_model.predict(x[:3]))


def test_every_method_gives_an_output(joblib_file: Path, iris: Any) -> None:
    """Each predict method gives one output named after it (the served model selects what was asked)."""
    x, _ = iris
    model = load(joblib_file, "sklearn", predict_method="predict,predict_proba")
    outputs = model.predict(request(input=x[:1])).outputs
    assert list(outputs) == ["predict", "predict_proba"] and outputs["predict_proba"].shape == (1, 3)


def test_batching_contract(joblib_file: Path, iris: Any) -> None:
    """Five rows at once give the same outputs as five one-row calls concatenated."""
    x, _ = iris
    assert_batching(load(joblib_file, "sklearn", predict_method="predict,predict_proba"), x[:5])


def test_one_row_as_a_vector(joblib_file: Path, sklearn_model: Any, iris: Any) -> None:
    """A single row sent as a 1-D vector of the model's features is taken as one row."""
    x, _ = iris
    out = load(joblib_file, "sklearn").predict(request(input=x[0])).outputs
    np.testing.assert_array_equal(out["predict"], sklearn_model.predict(x[:1]))


def test_wrong_feature_count(joblib_file: Path) -> None:
    """Three features for a four-feature model is InvalidInput naming the input and the shape expected."""
    model = load(joblib_file, "sklearn")
    with pytest.raises(InvalidInput, match=r"'input' has shape \[2, 3\]; the model expects \[-1, 4\]"):
        model.predict(request(input=np.ones((2, 3))))


def test_strings_for_numbers(joblib_file: Path) -> None:
    """Strings sent to a numeric model are InvalidInput, not a scikit-learn traceback."""
    model = load(joblib_file, "sklearn")
    with pytest.raises(InvalidInput, match="rejected input"):
        model.predict(request(input=np.array([["a", "b", "c", "d"]])))


def test_no_inputs(joblib_file: Path) -> None:
    """A request with no inputs is InvalidInput."""
    with pytest.raises(InvalidInput, match="no inputs"):
        load(joblib_file, "sklearn").predict(request())


def test_unknown_method(joblib_file: Path) -> None:
    """A predict_method the estimator lacks is refused at load, naming it."""
    with pytest.raises(ConfigError, match="transform_everything"):
        load(joblib_file, "sklearn", predict_method="transform_everything")


def test_metadata_from_model(joblib_file: Path) -> None:
    """Metadata infers the input width from n_features_in_ and the outputs from classes_."""
    meta = load(joblib_file, "sklearn", predict_method="predict,predict_proba").metadata()
    assert [s.to_dict() for s in meta.inputs] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [s.to_dict() for s in meta.outputs] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]


def test_pickle_warns(joblib_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Loading a pickle logs a warning that it runs code and names skops and ONNX."""
    with caplog.at_level(logging.WARNING, logger="prebake.runtimes"):
        load(joblib_file, "sklearn")
    text = caplog.text
    assert "run any code" in text and "skops" in text and "ONNX" in text


def test_pickle_refused_when_not_allowed(joblib_file: Path) -> None:
    """allow_pickle false refuses a joblib file with a message naming the safer formats."""
    with pytest.raises(
        ModelLoadError, match="refuses them unless the operator allows it.*--allow-pickle.*skops"
    ):
        load(joblib_file, "sklearn", parameters={"allow_pickle": False})


def test_pickle_refused_by_default(joblib_file: Path) -> None:
    """With no allow_pickle at all (a model loaded outside the server, by prebake check) the runtime refuses the pickle."""
    from prebake.runtimes.base import ModelSettings
    from prebake.runtimes.registry import create_runtime

    runtime = create_runtime(ModelSettings(name="m", path=joblib_file, runtime="sklearn"))
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        runtime.load()


def test_plain_pickle(tmp_path: Path, sklearn_model: Any, iris: Any) -> None:
    """A model saved with pickle.dump loads too."""
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(sklearn_model))
    x, _ = iris
    out = load(path, "sklearn").predict(request(input=x[:2])).outputs
    np.testing.assert_array_equal(out["predict"], sklearn_model.predict(x[:2]))


def test_corrupt_file(tmp_path: Path) -> None:
    """A file that is no pickle is ModelLoadError naming the file."""
    path = tmp_path / "broken.joblib"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="broken.joblib"):
        load(path, "sklearn")


def test_dataframe_model_from_a_matrix(frame_pipeline: Any) -> None:
    """A pipeline fitted on named columns accepts one matrix input, columns in the fitted order."""
    pd = need("pandas")
    path, pipeline = frame_pipeline
    rows = np.array([[5.1, 3.5, "small"], [6.7, 3.0, "big"]], dtype=object)
    frame = pd.DataFrame(rows, columns=["sepal_length", "sepal_width", "size"]).infer_objects()
    out = load(path, "sklearn").predict(request(input=rows)).outputs
    np.testing.assert_array_equal(out["predict"], pipeline.predict(frame))


def test_dataframe_model_from_columns(frame_pipeline: Any) -> None:
    """A pipeline fitted on named columns accepts one input per column; a missing column is InvalidInput."""
    pd = need("pandas")
    path, pipeline = frame_pipeline
    columns = {"sepal_length": [5.1, 6.7], "sepal_width": [3.5, 3.0], "size": np.array(["small", "big"])}
    model = load(path, "sklearn")
    out = model.predict(request(**columns)).outputs
    np.testing.assert_array_equal(out["predict"], pipeline.predict(pd.DataFrame(columns)))
    del columns["size"]
    with pytest.raises(InvalidInput, match="missing input 'size'"):
        model.predict(request(**columns))


def test_skops(tmp_path: Path, sklearn_model: Any, iris: Any) -> None:
    """A .skops file of a scikit-learn model loads without pickle and predicts the same."""
    sio = need("skops.io")
    path = tmp_path / "m.skops"
    sio.dump(sklearn_model, path)
    x, _ = iris
    out = load(path, "sklearn").predict(request(input=x[:4])).outputs
    np.testing.assert_array_equal(out["predict"], sklearn_model.predict(x[:4]))


def test_dataframe_model_with_bytes_column(frame_pipeline: Any) -> None:
    """A category column sent as BYTES (bytes objects) is decoded to the str the encoder was fitted on."""
    pd = need("pandas")
    path, pipeline = frame_pipeline
    columns = {
        "sepal_length": np.array([5.1, 6.7]),
        "sepal_width": np.array([3.5, 3.0]),
        "size": np.array([b"small", b"big"], dtype=object),
    }
    out = load(path, "sklearn").predict(request(**columns)).outputs
    expected = pipeline.predict(pd.DataFrame({**columns, "size": ["small", "big"]}))
    np.testing.assert_array_equal(out["predict"], expected)
