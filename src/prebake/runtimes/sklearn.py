"""scikit-learn models (and anything with a scikit-learn-style ``predict``) from joblib, pickle or skops.

Outputs are named after the method that made them, as MLServer does: ``predict`` by default, or each
method of ``predict_method`` (``"predict_proba"``, ``"predict,predict_proba"``). A model fitted on a
DataFrame (it has ``feature_names_in_``) gets a DataFrame with those columns, from one matrix input or
from one input per column.

Pickle and joblib files run code when loaded: they are refused unless ``parameters.allow_pickle`` is
true, which the server sets from the operator's ``--allow-pickle`` (a settings file can only set it
false); where allowed, the log says what that means and names the safer formats. skops files load only types
that scikit-learn, numpy or scipy define, plus those listed in ``parameters.skops_trusted``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from prebake.errors import ConfigError, ModelLoadError
from prebake.runtimes.arrays import (
    InputPlan,
    TensorCheck,
    as_text,
    rejected,
    tabular_plan,
    v2_datatype,
)
from prebake.runtimes.base import ModelSettings, Runtime
from prebake.runtimes.registry import missing_framework
from prebake.types import InferenceRequest, InferenceResponse, TensorSpec

log = logging.getLogger("prebake.runtimes")

_SKOPS_SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def check_pickle_allowed(settings: ModelSettings, path: Path) -> None:
    """Refuse a pickle unless ``allow_pickle`` is true in the settings' parameters (the operator's
    choice: ``--allow-pickle`` or PREBAKE_ALLOW_PICKLE=1, which a model's settings file can only narrow),
    and warn that it runs code where it is allowed. Refused by default, wherever a model is loaded."""
    if settings.parameters.get("allow_pickle") is not True:
        raise ModelLoadError(
            f"{path.name} is a pickle, and pickles run any code they hold when loaded, so prebake refuses them "
            f"unless the operator allows it (model {settings.name!r}). If you trust the file: prebake serve "
            "--allow-pickle (prebake check --allow-pickle), or PREBAKE_ALLOW_PICKLE=1 (a model's own "
            "model-settings.json can refuse pickles, never allow them). Safer: save it as skops (.skops) or "
            "ONNX (.onnx)."
        )
    log.warning(
        "model %r: loading %s, a pickle: pickles run any code they contain when loaded, so load only files "
        "you trust. Safer formats: skops (.skops), ONNX (.onnx), or the framework's own format "
        "(XGBoost .json/.ubj, LightGBM .txt).",
        settings.name,
        path.name,
    )


def load_estimator(settings: ModelSettings) -> Any:
    """The estimator in ``settings.path``: skops, joblib or plain pickle."""
    path = settings.path
    if path.suffix == ".skops":
        return _load_skops(settings)
    check_pickle_allowed(settings, path)
    try:
        import joblib
    except ImportError:
        import pickle

        with path.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - the warning above says what this means
    return joblib.load(path)


def _load_skops(settings: ModelSettings) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise missing_framework("sklearn", exc) from None
    trusted = list(settings.parameters.get("skops_trusted", []))
    untrusted = sio.get_untrusted_types(file=settings.path)
    refused = [t for t in untrusted if t not in trusted and not t.startswith(_SKOPS_SAFE_PREFIXES)]
    if refused:
        raise ModelLoadError(
            f"{settings.path.name} holds types skops does not trust: {', '.join(refused)}; list the ones you "
            "trust in the settings file's parameters.skops_trusted"
        )
    return sio.load(settings.path, trusted=untrusted)


class SklearnRuntime(Runtime):
    name = "sklearn"

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.model: Any = None
        self._methods: list[tuple[str, Callable[[Any], Any]]] = []
        self._columns: list[str] | None = None
        self._frame: Any = None  # pandas.DataFrame where the model wants named columns
        self._column_plan: InputPlan | None = None  # one input per column, for column-wise requests

    def load(self) -> None:
        try:
            self.model = load_estimator(self.settings)
        except ModelLoadError:
            raise
        except ImportError as exc:
            raise missing_framework("sklearn", exc) from None
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.settings.path}: {type(exc).__name__}: {exc}") from exc
        names = (self.settings.predict_method or "predict").replace(" ", "").split(",")
        self._methods = []
        for method in names:
            fn = getattr(self.model, method, None)
            if not callable(fn):
                raise ConfigError(
                    f"model {self.settings.name!r} ({type(self.model).__name__}) has no method {method!r}; "
                    f"set predict_method to one it has, e.g. predict or predict_proba"
                )
            self._methods.append((method, fn))
        n_features = getattr(self.model, "n_features_in_", None)
        columns = getattr(self.model, "feature_names_in_", None)
        if columns is not None:
            try:
                import pandas as pd
            except ImportError:
                raise ModelLoadError(
                    f"model {self.settings.name!r} was fitted on a pandas DataFrame and needs pandas to "
                    "predict: pip install pandas"
                ) from None
            self._frame = pd.DataFrame
            self._columns = [str(c) for c in columns]
            self._column_plan = InputPlan([TensorCheck(c, None, None) for c in self._columns])
        self.plan = tabular_plan(self.settings.inputs, n_features, None)
        self.output_specs = [self._output_spec(method) for method, _ in self._methods]

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        plan = self.plan
        assert plan is not None, "load() first"
        if self._columns is not None and len(request.inputs) > 1:
            x = self._columns_frame(request)
            arrays = list(request.inputs.values())
        else:
            arrays = plan.arrays(request)
            x = arrays[0]
            if self._frame is not None:
                x = self._frame(x, columns=self._columns).infer_objects()
        try:
            outputs = {method: np.asarray(fn(x)) for method, fn in self._methods}
        except (ValueError, TypeError) as exc:
            raise rejected(plan, arrays, exc) from None
        return InferenceResponse(outputs=outputs)

    def _columns_frame(self, request: InferenceRequest) -> Any:
        """A DataFrame from one input per column (V2 requests from pandas clients)."""
        columns, plan = self._columns or [], self._column_plan
        assert plan is not None
        arrays = plan.arrays(request)
        return self._frame(
            {c: as_text(a.reshape(len(a), -1)[:, 0]) for c, a in zip(columns, arrays, strict=True)}
        )

    def _output_spec(self, method: str) -> TensorSpec:
        classes = getattr(self.model, "classes_", None)
        if method in ("predict_proba", "predict_log_proba") and classes is not None:
            return TensorSpec(method, "FP64", [-1, len(classes)])
        if method == "predict" and classes is not None:
            return TensorSpec(method, v2_datatype(np.asarray(classes).dtype), [-1])
        return TensorSpec(method, "FP64", [-1])
