"""Small real models, made once per session with the real frameworks, and the batching check.

A fixture whose framework is not installed skips its tests, naming the package.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.runtimes.helpers import need, tiny_net


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    datasets = need("sklearn.datasets")
    x, y = datasets.load_iris(return_X_y=True)
    return x, y


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def sklearn_model(iris: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    return LogisticRegression(max_iter=500).fit(x, y)


@pytest.fixture(scope="session")
def joblib_file(models: Path, sklearn_model: Any) -> Path:
    joblib = need("joblib")
    path = models / "iris.joblib"
    joblib.dump(sklearn_model, path)
    return path


@pytest.fixture(scope="session")
def frame_pipeline(models: Path, iris: tuple[np.ndarray, np.ndarray]) -> tuple[Path, Any]:
    """A pipeline fitted on a DataFrame with named columns, one of them a string category."""
    pd = need("pandas")
    joblib = need("joblib")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = iris
    frame = pd.DataFrame(x[:, :2], columns=["sepal_length", "sepal_width"])
    frame["size"] = np.where(x[:, 2] > 3.0, "big", "small")
    columns = ColumnTransformer(
        [("num", StandardScaler(), ["sepal_length", "sepal_width"]), ("cat", OneHotEncoder(), ["size"])]
    )
    pipeline = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, y)
    path = models / "frame.joblib"
    joblib.dump(pipeline, path)
    return path, pipeline


@pytest.fixture(scope="session")
def xgb_booster(iris: tuple[np.ndarray, np.ndarray]) -> Any:
    xgb = need("xgboost")
    x, y = iris
    return xgb.train({"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(x, label=y), 5)


@pytest.fixture(scope="session")
def xgb_files(models: Path, xgb_booster: Any) -> dict[str, Path]:
    out = models / "xgb"
    out.mkdir()
    files = {}
    for name in ("model.json", "model.ubj"):
        xgb_booster.save_model(str(out / name))
        files[name] = out / name
    # Vertex AI's name: written as UBJSON bytes, the way a .bst reaches us from current XGBoost.
    (out / "model.bst").write_bytes(bytes(xgb_booster.save_raw("ubj")))
    files["model.bst"] = out / "model.bst"
    return files


@pytest.fixture(scope="session")
def lgb_file(models: Path, iris: tuple[np.ndarray, np.ndarray]) -> tuple[Path, Any]:
    lgb = need("lightgbm")
    x, y = iris
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, y),
        5,
    )
    path = models / "iris.txt"
    booster.save_model(str(path))
    return path, booster


@pytest.fixture(scope="session")
def onnx_file(models: Path, sklearn_model: Any) -> Path:
    """The iris LogisticRegression converted by skl2onnx (ZipMap on: probabilities as a sequence of maps)."""
    need("onnxruntime")
    skl2onnx = need("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    proto = skl2onnx.convert_sklearn(sklearn_model, initial_types=[("features", FloatTensorType([None, 4]))])
    path = models / "iris.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.fixture(scope="session")
def onnx_two_inputs(models: Path) -> Path:
    """A hand-built graph: sum = a + b over [batch, 3] float tensors, fixed batch of 2 for c."""
    need("onnxruntime")
    onnx = need("onnx")
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3])
    out = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "add", [a, b], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = models / "add.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="session")
def torch_net() -> Any:
    return tiny_net()


@pytest.fixture(scope="session")
def torchscript_file(models: Path, torch_net: Any) -> Path:
    torch = need("torch")
    path = models / "net.pt"
    torch.jit.save(torch.jit.trace(torch_net, torch.randn(2, 4)), str(path))
    return path


@pytest.fixture(scope="session")
def exported_file(models: Path, torch_net: Any) -> Path:
    torch = need("torch")
    batch = torch.export.Dim("batch")
    program = torch.export.export(torch_net, (torch.randn(2, 4),), dynamic_shapes={"x": {0: batch}})
    path = models / "net.pt2"
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="session")
def keras_model() -> Any:
    need("tensorflow")
    keras = need("keras")
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(hidden)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def keras_file(models: Path, keras_model: Any) -> Path:
    path = models / "net.keras"
    keras_model.save(path)
    return path


@pytest.fixture(scope="session")
def h5_file(models: Path, keras_model: Any) -> Path:
    """The same model in Keras's legacy HDF5 format (Keras warns that it is legacy: silenced here)."""
    path = models / "net.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_model.save(path)
    return path


@pytest.fixture(scope="session")
def saved_model_dir(models: Path, keras_model: Any) -> Path:
    tf = need("tensorflow")
    path = models / "savedmodel"

    class Wrapper(tf.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def serve(self, features: Any) -> Any:
            return {"probs": self.model(features)}

    wrapper = Wrapper(keras_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf.saved_model.save(wrapper, str(path), signatures={"serving_default": wrapper.serve})
    return path


@pytest.fixture
def request_fixture(request: pytest.FixtureRequest) -> Any:
    """Look a fixture up by name, for tests parametrized over model files."""
    return request.getfixturevalue
