"""MLflow models (a directory with an ``MLmodel`` file), loaded by their flavors.

Native flavors load through the framework alone, without mlflow: ``sklearn`` (skops, pickle, cloudpickle),
``xgboost``, ``lightgbm`` and ``onnx``, each called the way MLflow's own pyfunc wrapper calls it (the
same estimator method on the same DataFrame or array), so the answers are MLflow's. Every other flavor
(``python_function`` with a custom ``PythonModel`` or ``loader_module``, ``pytorch``, ``tensorflow``,
``keras``, ``transformers``...) loads through ``mlflow.pyfunc.load_model``, which needs mlflow
(``mlflow-skinny`` is enough) in the image; ``code_paths`` are honoured there, and a failing import names
the file.

Why native where we can, measured (docs/mlflow.md has the commands): for the iris LogisticRegression saved
by ``mlflow.sklearn.save_model``, predict called in-process 2,000 times on this shared 2-core machine,
prebake's native path (signature checks, then the estimator) took 0.34 ms a call for 1 row and 0.37 ms
for 64 rows; ``mlflow.pyfunc.load_model(...).predict`` on the same DataFrame 3.0 ms and 2.6 ms (its schema
enforcement and pandas work are most of it); the answers were equal element for element. Natively an
sklearn MLflow model needs no mlflow at all, and mlflow-skinny with what it brings beyond the sklearn
image is about 115 MB: the sklearn image (408 MB, target 450 MB) could not hold it, so mlflow lives in its
own catalog image (mlflow-3.17.2-...) for the python_function flavor only.

Requests: a column-based signature takes one input per column (V2 named inputs, MLflow's
``dataframe_split``...), a tensor-based one named tensors or one unnamed tensor; a model without a
signature gets a DataFrame where the request was a DataFrame (``parameters.content_type == "pd"``), one
array for one input, a dict of arrays otherwise, as MLflow's scoring server parses it. Signature
``params`` come from the request's parameters (defaults for the rest). Responses carry
``parameters.content_type``: ``pd`` (a DataFrame: one output per column), ``np`` (one array) or ``dict``.

Pickle-based artifacts (``sklearn`` pickle/cloudpickle, ``pytorch``, a pyfunc ``python_model.pkl``) follow
``allow_pickle``, as any pickle does; a skops model trusts the types listed in its own MLmodel only when
pickles are allowed (a crafted file could list anything), else scikit-learn's, numpy's and scipy's.
"""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Callable, Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from prebake.errors import InvalidInput, ModelLoadError, PrebakeError, ScoringError
from prebake.runtimes.base import ModelSettings, Runtime
from prebake.runtimes.mlflow_model import FLAVOR_PACKAGES, MLflowModel, read_mlmodel
from prebake.runtimes.mlflow_schema import Signature, check_tensor
from prebake.types import InferenceRequest, InferenceResponse, ModelMetadata

log = logging.getLogger("prebake.runtimes")

#: Flavors loaded without mlflow, in the order they are preferred when a model has several.
NATIVE = ("sklearn", "xgboost", "lightgbm", "onnx")
#: The loader_module of each native flavor's python_function entry.
_NATIVE_LOADERS = {f"mlflow.{name}": name for name in NATIVE}
#: Flavors that mlflow loads through pickle (torch.load unpickles; torch.export's "pt2" format does not).
_PICKLED = ("pytorch",)
PREDICTIONS = "predictions"

Predict = Callable[[Any, "dict[str, Any] | None"], Any]


class MlflowRuntime(Runtime):
    name = "mlflow"

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.model: MLflowModel | None = None
        self.signature = Signature(None)
        self.flavor = ""
        self._predict: Predict | None = None
        self._frame: Any = None  # pandas.DataFrame, imported at load where the model takes DataFrames
        #: True where the loaded estimator is fed the signature's columns as one matrix (see _matrix_ok).
        self.as_matrix = False

    # -- load ----------------------------------------------------------------------------------------
    def load(self) -> None:
        directory = self.settings.path if self.settings.path.is_dir() else self.settings.path.parent
        model = read_mlmodel(directory)
        self.model = model
        self.signature = Signature(
            model.signature_inputs,
            model.signature_outputs,
            model.signature_params,
            source=str(directory / "MLmodel"),
        )
        self.flavor = choose_flavor(model)
        check_versions(model, self.settings.name)
        try:
            self._predict = (
                _NATIVE_LOAD[self.flavor](self, model) if self.flavor in NATIVE else self._load_pyfunc(model)
            )
        except PrebakeError:
            raise
        except ImportError as exc:
            raise ModelLoadError(self._install_hint(model, exc)) from exc
        except Exception as exc:
            raise ModelLoadError(
                f"{directory / 'MLmodel'}: cannot load the {self.flavor} flavor: {type(exc).__name__}: {exc}"
                f"{version_note(model)}"
            ) from exc
        if not self.as_matrix:
            try:
                import pandas as pd

                self._frame = pd.DataFrame
            except ImportError:
                if self.signature.columns:
                    raise ModelLoadError(
                        f"model {self.settings.name!r} has a column-based signature and needs pandas: "
                        "pip install pandas"
                    ) from None
        self.output_specs = self.signature.output_specs()
        if len(self.output_specs) == 1 and not self.signature.named_outputs:
            self.output_specs[0].name = PREDICTIONS

    def _install_hint(self, model: MLflowModel, exc: ImportError) -> str:
        package = FLAVOR_PACKAGES.get(self.flavor, (None, ""))[0]
        if self.flavor not in NATIVE and (exc.name or "").split(".")[0] == "mlflow":
            want = "pip install mlflow-skinny (the python_function flavor loads through mlflow)"
        else:
            want = f"pip install {package or exc.name}"
        return (
            f"{model.path / 'MLmodel'}: the {self.flavor} flavor needs {exc.name or exc}, which is not "
            f"installed: {want}, or use an image that has it (prebake recommend {model.path})"
        )

    def _load_pyfunc(self, model: MLflowModel) -> Predict:
        conf = model.pyfunc
        if not conf:
            flavors = ", ".join(model.flavors)
            raise ModelLoadError(
                f"{model.path / 'MLmodel'}: flavor(s) {flavors} have no python_function entry and prebake "
                f"loads natively only {', '.join(NATIVE)}; log the model with mlflow.pyfunc or one of those"
            )
        pickled_flavor = (
            self.flavor in _PICKLED and model.flavors[self.flavor].get("serialization_format") != "pt2"
        )
        if pickled_flavor or conf.get("python_model") or conf.get("cloudpickle_version"):
            _check_pickle(self.settings, model.path / (conf.get("python_model") or "MLmodel"), self.flavor)
        code = conf.get("code")
        if code:
            _check_code_paths(model.path / code, model.path / "MLmodel")
        import os

        # MLflow 3 refuses to unpickle anything unless told it may; prebake's own policy said yes above.
        os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        import mlflow.pyfunc

        try:
            loaded = mlflow.pyfunc.load_model(str(model.path))
        except ModuleNotFoundError as exc:
            where = f" (code_paths {code} were added to sys.path)" if code else ""
            raise ModelLoadError(
                f"{model.path / 'MLmodel'}: loading the model imports {exc.name!r}, which is not installed "
                f"or not in its code_paths{where}: pip install {exc.name}, or log it with code_paths"
            ) from exc

        def predict(data: Any, params: dict[str, Any] | None) -> Any:
            return loaded.predict(data, params=params)

        return predict

    # -- predict ---------------------------------------------------------------------------------------
    def predict(self, request: InferenceRequest) -> InferenceResponse:
        fn = self._predict
        assert fn is not None, "load() first"
        data = self.model_input(request)
        params = self.signature.params_for(request.parameters)
        try:
            result = fn(data, params)
        except PrebakeError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            # What MLflow's server answers too: 400, the model could not take this input.
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InvalidInput(
                "Encountered an unexpected error while evaluating the model. Verify that the serialized "
                f"input Dataframe is compatible with the model for inference: {type(exc).__name__}: {first}"
            ) from None
        except Exception as exc:
            if type(exc).__name__ == "MlflowException":
                raise InvalidInput(str(getattr(exc, "message", exc))) from None
            raise
        outputs, content_type = self.outputs(result)
        return InferenceResponse(outputs=outputs, parameters={"content_type": content_type})

    def model_input(self, request: InferenceRequest) -> Any:
        """What MLflow's pyfunc predict would be given for this request, checked against the signature."""
        inputs = request.inputs
        if not inputs:
            raise InvalidInput("the request has no inputs")
        signature = self.signature
        as_frame = request.parameters.get("content_type") == "pd"
        if signature.columns:
            if signature.named:
                # A frame sent without column names arrives as one input named "": no column matches,
                # and the error lists every column the model needs, as MLflow's does.
                columns = signature.columns_for(inputs)
                if self.as_matrix:
                    return np.column_stack(list(columns.values()))
                return self._frame(columns)
            # Unnamed columns: MLflow can only count them; take them by position.
            by_position = _positional(inputs)
            want = len(signature.columns)
            if len(by_position) < want:
                raise InvalidInput(
                    f"Model inference is missing inputs. The model signature declares {want} inputs  but the "
                    f"provided value only has {len(by_position)} inputs. Note: the inputs were not named in the "
                    "signature so we can only verify their count."
                )
            return self._frame(dict(enumerate(by_position)))
        if signature.tensors:
            if signature.named:
                return signature.tensors_for(inputs)
            spec = signature.tensors[0]
            if len(inputs) == 1:
                name, x = next(iter(inputs.items()))
                return check_tensor(spec, x, name or None)
            stacked = np.column_stack([np.asarray(a).reshape(len(a), -1) for a in inputs.values()])
            return check_tensor(spec, stacked)
        if as_frame:
            if len(inputs) == 1 and next(iter(inputs)) == "":
                return self._frame(next(iter(inputs.values())))
            return self._frame({k: _column(v) for k, v in inputs.items()})
        if len(inputs) == 1:
            return next(iter(inputs.values()))
        return dict(inputs)

    def outputs(self, result: Any) -> tuple[dict[str, np.ndarray], str]:
        """A pyfunc result as named arrays and its kind (``pd``, ``np``, ``dict``)."""
        frame = self._frame
        if frame is not None:
            import pandas as pd

            if isinstance(result, pd.Series):
                result = result.to_frame()
            if isinstance(result, pd.DataFrame):
                return {str(c): result[c].to_numpy() for c in result.columns}, "pd"
        if isinstance(result, Mapping):
            return {str(k): np.asarray(v) for k, v in result.items()}, "dict"
        name = self.output_specs[0].name if len(self.output_specs) == 1 else PREDICTIONS
        try:
            array = np.asarray(result)
        except ValueError:
            array = np.empty(len(result), dtype=object)
            array[:] = list(result)
        if array.dtype.kind not in "biufOUSb":
            raise ScoringError(f"the model returned {type(result).__name__}, which prebake cannot send")
        return {name: array}, "np"

    def metadata(self) -> ModelMetadata:
        meta = super().metadata()
        if not self.settings.inputs:
            meta.inputs = self.signature.input_specs()
        meta.parameters = {"flavor": self.flavor, **self.signature.describe()}
        if self.model is not None and self.model.mlflow_version:
            meta.parameters["mlflow_version"] = self.model.mlflow_version
        if self.model is not None and self.model.input_example:
            example = self.model.serving_example()
            if example is not None:
                meta.parameters["input_example"] = example.decode()
        return meta

    def platform(self) -> str:
        return "mlflow"


# -- flavors ---------------------------------------------------------------------------------------------
def choose_flavor(model: MLflowModel) -> str:
    """The flavor prebake loads the model by: a native one where the model has one, else python_function;
    ModelLoadError naming the flavors where it has neither."""
    loader = model.pyfunc.get("loader_module")
    if loader in _NATIVE_LOADERS and _NATIVE_LOADERS[loader] in model.flavors:
        return _NATIVE_LOADERS[loader]
    for flavor in NATIVE:
        if flavor in model.flavors and (not loader or loader == f"mlflow.{flavor}"):
            return flavor
    if model.pyfunc:
        known = [f for f in model.flavors if f != "python_function"]
        return known[0] if known and loader == f"mlflow.{known[0]}" else "python_function"
    raise ModelLoadError(
        f"{model.path / 'MLmodel'}: prebake cannot load flavor(s) {', '.join(model.flavors)}: it loads "
        f"{', '.join(NATIVE)} natively and anything with a python_function flavor through mlflow "
        "(pip install mlflow-skinny); log the model with one of those"
    )


def check_versions(model: MLflowModel, name: str) -> None:
    """Log, before loading, each framework whose installed version differs from the one the model was
    logged with (naming both), so a failure that follows reads with its likely cause beside it."""
    for package, logged, installed in version_mismatches(model):
        if installed is None:
            continue
        log.warning(
            "model %r was logged with %s %s, and this environment has %s %s; if it fails to load or "
            "predicts differently, install %s==%s (PREBAKE_EXTRA_REQUIREMENTS) or use an image with it",
            name, package, logged, package, installed, package, logged,
        )  # fmt: skip


def version_mismatches(model: MLflowModel) -> list[tuple[str, str, str | None]]:
    """(package, logged version, installed version or None) for each framework that differs."""
    out = []
    for package, logged in model.framework_versions().items():
        installed = _installed(package)
        if installed != logged:
            out.append((package, logged, installed))
    return out


def version_note(model: MLflowModel) -> str:
    notes = [
        f"{package} {logged} logged, {installed or 'none'} installed"
        for package, logged, installed in version_mismatches(model)
    ]
    return f" (versions differ: {'; '.join(notes)})" if notes else ""


def _installed(package: str) -> str | None:
    for dist in (package, f"{package}-cpu", "tensorflow-cpu" if package == "tensorflow" else package):
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    return None


def _check_pickle(settings: ModelSettings, path: Path, flavor: str) -> None:
    from prebake.runtimes.sklearn import check_pickle_allowed

    try:
        check_pickle_allowed(settings, path)
    except ModelLoadError as exc:
        raise ModelLoadError(f"MLflow {flavor} model: {exc.message}") from None


def _check_code_paths(code_dir: Path, source: Path) -> None:
    if not code_dir.is_dir():
        raise ModelLoadError(f"{source}: its code_paths directory {code_dir} is missing")


def _artifact(model: MLflowModel, flavor: str, key: str) -> Path:
    conf = model.flavors[flavor]
    name = conf.get(key) or model.pyfunc.get("model_path")
    path = model.path / str(name or "")
    if not name or not path.exists():
        raise ModelLoadError(
            f"{model.path / 'MLmodel'}: the {flavor} flavor's artifact {name or '(none named)'} is missing "
            f"from {model.path}; copy the whole model directory as MLflow saved it"
        )
    return path


def _load_sklearn(runtime: MlflowRuntime, model: MLflowModel) -> Predict:
    conf = model.flavors["sklearn"]
    path = _artifact(model, "sklearn", "pickled_model")
    fmt = conf.get("serialization_format", "cloudpickle")
    estimator = _load_sklearn_file(runtime.settings, path, fmt, conf.get("skops_trusted_types"))
    if _matrix_ok(estimator, runtime.signature):
        # The estimator would turn the DataFrame into this very matrix itself; skipping pandas and its
        # feature-name checks makes a 1-row predict about 4x faster (0.8 ms -> 0.2 ms here), same answers.
        # The copy shares the fitted arrays; only its record of the names is dropped.
        estimator = copy.copy(estimator)
        estimator.__dict__.pop("feature_names_in_", None)
        runtime.as_matrix = True
    return _method(estimator, model.pyfunc.get("predict_fn") or "predict", model)


def _matrix_ok(estimator: Any, signature: Signature) -> bool:
    """True where an sklearn estimator fitted on a DataFrame takes the signature's columns, in its order,
    all numeric and required, and is no pipeline or column transformer (those select columns by name)."""
    names = getattr(estimator, "feature_names_in_", None)
    columns = signature.columns or []
    return (
        names is not None
        and not hasattr(estimator, "steps")
        and not hasattr(estimator, "transformers")
        and [str(n) for n in names] == [c.name for c in columns]
        and all(c.required and c.type in _NUMERIC for c in columns)
    )


_NUMERIC = ("double", "float", "long", "integer")


def _load_sklearn_file(settings: ModelSettings, path: Path, fmt: str, trusted: list[str] | None) -> Any:
    if fmt == "skops":
        return _load_skops(settings, path, trusted)
    _check_pickle(settings, path, "sklearn")
    with path.open("rb") as f:
        if fmt == "cloudpickle":
            try:
                import cloudpickle
            except ImportError:
                pass  # cloudpickle writes plain pickles where everything it refers to is importable
            else:
                return cloudpickle.load(f)
        import pickle

        return pickle.load(f)  # noqa: S301 - allowed by the pickle policy above


def _load_skops(settings: ModelSettings, path: Path, listed: list[str] | None) -> Any:
    """A skops file, trusting scikit-learn's, numpy's and scipy's types, those in the settings'
    ``skops_trusted``, and those the MLmodel lists only where pickles are allowed."""
    try:
        import skops.io as sio
    except ImportError as exc:
        raise ModelLoadError(
            f"{path}: the model is saved in skops format, and skops is not installed: pip install skops"
        ) from exc
    trusted = list(settings.parameters.get("skops_trusted", []))
    if listed and settings.parameters.get("allow_pickle") is True:
        trusted += list(listed)
    untrusted = sio.get_untrusted_types(file=path)
    refused = [t for t in untrusted if t not in trusted and not t.startswith(_SKOPS_SAFE)]
    if refused:
        raise ModelLoadError(
            f"{path} holds types skops does not trust: {', '.join(refused)}; list the ones you trust in "
            "parameters.skops_trusted of a model-settings.json beside MLmodel, or allow pickles "
            "(--allow-pickle) to trust the list the MLmodel file gives"
        )
    return sio.load(path, trusted=untrusted)


_SKOPS_SAFE = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def _method(estimator: Any, name: str, model: MLflowModel) -> Predict:
    fn = getattr(estimator, name, None)
    if not callable(fn):
        raise ModelLoadError(
            f"{model.path / 'MLmodel'}: predict_fn {name!r} is not a method of {type(estimator).__name__}"
        )

    def predict(data: Any, params: dict[str, Any] | None) -> Any:
        return fn(data)

    return predict


def _load_xgboost(runtime: MlflowRuntime, model: MLflowModel) -> Predict:
    import xgboost as xgb

    conf = model.flavors["xgboost"]
    path = _artifact(model, "xgboost", "data")
    module_name, _, class_name = str(conf.get("model_class", "xgboost.core.Booster")).rpartition(".")
    if not module_name.startswith("xgboost"):
        raise ModelLoadError(
            f"{model.path / 'MLmodel'}: xgboost model_class {conf.get('model_class')!r} is not XGBoost's"
        )
    booster = getattr(importlib.import_module(module_name), class_name)()
    booster.load_model(str(path))
    if isinstance(booster, xgb.Booster):
        booster.set_param({"nthread": runtime.settings.parameters.get("threads", 1)})

        def predict_booster(data: Any, params: dict[str, Any] | None) -> Any:
            return booster.predict(xgb.DMatrix(data), validate_features=True)

        return predict_booster
    booster.set_params(n_jobs=runtime.settings.parameters.get("threads", 1))
    method = getattr(booster, model.pyfunc.get("predict_fn") or "predict")

    def predict(data: Any, params: dict[str, Any] | None) -> Any:
        return method(data, validate_features=True)

    return predict


def _load_lightgbm(runtime: MlflowRuntime, model: MLflowModel) -> Predict:
    conf = model.flavors["lightgbm"]
    path = _artifact(model, "lightgbm", "data")
    if conf.get("model_class", "lightgbm.basic.Booster") == "lightgbm.basic.Booster":
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        threads = runtime.settings.parameters.get("threads", 1)

        def predict_booster(data: Any, params: dict[str, Any] | None) -> Any:
            return booster.predict(data, num_threads=threads)

        return predict_booster
    estimator = _load_sklearn_file(
        runtime.settings,
        path,
        conf.get("serialization_format", "cloudpickle"),
        conf.get("skops_trusted_types"),
    )
    return _method(estimator, model.pyfunc.get("predict_fn") or "predict", model)


def _load_onnx(runtime: MlflowRuntime, model: MLflowModel) -> Predict:
    import onnxruntime as ort

    conf = model.flavors["onnx"]
    path = _artifact(model, "onnx", "data")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(runtime.settings.parameters.get("threads", 1))
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    del conf
    inputs = [(i.name, i.type) for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]

    def predict(data: Any, params: dict[str, Any] | None) -> Any:
        # The way mlflow.onnx's wrapper feeds a session, so the answers (and their shapes) are MLflow's.
        frame = runtime._frame
        is_frame = frame is not None and isinstance(data, frame)
        if isinstance(data, dict):
            feed = dict(data)
        elif isinstance(data, np.ndarray):
            if len(inputs) != 1:
                raise InvalidInput(
                    f"Numpy arrays can only be used as input for MLflow ONNX models that have a single input. "
                    f"This model requires {len(inputs)} inputs: {[n for n, _ in inputs]}"
                )
            feed = {inputs[0][0]: data}
        elif is_frame:
            feed = {n: data[n].values for n, _ in inputs} if len(inputs) > 1 else {inputs[0][0]: data.values}
        else:
            raise InvalidInput(
                f"the ONNX model takes a dict, an array or a DataFrame, not {type(data).__name__}"
            )
        for name, kind in inputs:
            if kind == "tensor(float)" and name in feed and feed[name].dtype == np.float64:
                feed[name] = feed[name].astype(np.float32)
        predicted = session.run(output_names, feed)
        if is_frame:
            return frame({c: np.asarray(p).reshape(-1) for c, p in zip(output_names, predicted, strict=True)})
        return dict(zip(output_names, predicted, strict=True))

    return predict


_NATIVE_LOAD: dict[str, Callable[[MlflowRuntime, MLflowModel], Predict]] = {
    "sklearn": _load_sklearn,
    "xgboost": _load_xgboost,
    "lightgbm": _load_lightgbm,
    "onnx": _load_onnx,
}


def _positional(inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    if len(inputs) == 1:
        (only,) = inputs.values()
        if only.ndim == 2:
            return [only[:, i] for i in range(only.shape[1])]
    return [_column(a) for a in inputs.values()]


def _column(values: np.ndarray) -> np.ndarray:
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
