"""XGBoost boosters saved with ``save_model``: ``.json``, ``.ubj``, and Vertex AI's ``model.bst``.

The output ``predict`` is what ``Booster.inplace_predict`` gives: probabilities for classification
objectives (``[-1]`` for binary, ``[-1, classes]`` for ``multi:softprob``), values for regression. A
pickled ``XGBClassifier`` is served by the sklearn runtime instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from prebake.runtimes.tabular import TabularRuntime


class XGBoostRuntime(TabularRuntime):
    name = "xgboost"
    dtype = np.dtype("float32")

    def load_booster(self) -> tuple[Callable[[np.ndarray], Any], int | None]:
        import xgboost as xgb

        booster = xgb.Booster()
        path = self.settings.path
        if path.suffix in (".json", ".ubj"):
            booster.load_model(str(path))
        else:
            # From bytes XGBoost tells JSON from UBJSON by content, without warning about the suffix.
            booster.load_model(bytearray(path.read_bytes()))
        booster.set_param({"nthread": self.threads})
        return booster.inplace_predict, booster.num_features() or None
