"""LightGBM boosters saved with ``save_model`` as text (``.txt``).

The output ``predict`` is what ``Booster.predict`` gives: probabilities for binary and multiclass
objectives (``[-1]`` or ``[-1, classes]``), values for regression.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from prebake.runtimes.tabular import TabularRuntime


class LightGBMRuntime(TabularRuntime):
    name = "lightgbm"

    def load_booster(self) -> tuple[Callable[[np.ndarray], Any], int | None]:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(self.settings.path))
        return partial(booster.predict, num_threads=self.threads), booster.num_feature() or None
