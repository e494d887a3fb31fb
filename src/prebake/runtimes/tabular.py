"""What the gradient-boosting runtimes share: one feature matrix in, one ``predict`` output out.

A subclass loads its booster in ``load_booster`` and says how many features it takes and the dtype it
wants; the input checks, the error mapping and the response are here, once.

``parameters.threads`` sets the booster's prediction threads, 1 by default: the server scales with
workers and concurrent requests, and on small batches the boosters' thread start-up costs more than it
saves (XGBoost on a 2-core machine: 0.5 ms per row with one thread, several ms with its default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from prebake.errors import ConfigError, ModelLoadError, PrebakeError
from prebake.runtimes.arrays import rejected, tabular_plan
from prebake.runtimes.base import Runtime
from prebake.runtimes.registry import missing_framework
from prebake.types import InferenceRequest, InferenceResponse, TensorSpec


class TabularRuntime(Runtime):
    """A runtime whose model takes one ``[-1, n_features]`` matrix and gives one ``predict`` output."""

    #: the dtype the booster is fed; inputs are cast to it once, in predict.
    dtype: np.dtype[Any] = np.dtype("float64")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._predict: Callable[[np.ndarray], Any] | None = None

    @property
    def threads(self) -> int:
        threads = self.settings.parameters.get("threads", 1)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ConfigError(f"model {self.settings.name!r}: parameters.threads must be a whole number >= 1")
        return threads

    def load_booster(self) -> tuple[Callable[[np.ndarray], Any], int | None]:
        """Load the model; return its predict function and its number of features (None: unknown)."""
        raise NotImplementedError

    def load(self) -> None:
        try:
            self._predict, n_features = self.load_booster()
        except ImportError as exc:
            raise missing_framework(self.name, exc) from None
        except PrebakeError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.settings.path}: {type(exc).__name__}: {exc}") from exc
        self.plan = tabular_plan(self.settings.inputs, n_features, self.dtype)
        self.output_specs = [TensorSpec("predict", "FP32" if self.dtype == np.float32 else "FP64", [-1])]

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        plan, fn = self.plan, self._predict
        assert plan is not None and fn is not None, "load() first"
        arrays = plan.arrays(request)
        try:
            result = np.asarray(fn(arrays[0]))
        except (ValueError, TypeError) as exc:
            raise rejected(plan, arrays, exc) from None
        return InferenceResponse(outputs={"predict": result})
