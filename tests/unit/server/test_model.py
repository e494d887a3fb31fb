"""The served model selects outputs once, for every runtime and protocol (V2: none asked means all)."""

from __future__ import annotations

import numpy as np
import pytest

from prebake.errors import InvalidInput
from prebake.server.model import select_outputs


def test_requested_outputs_in_the_clients_order() -> None:
    """Named outputs come back in the order asked; no list or an empty list means every output."""
    outputs = {"a": np.zeros(1), "b": np.ones(1)}
    assert list(select_outputs(outputs, ["b", "a"])) == ["b", "a"]
    assert list(select_outputs(outputs, None)) == ["a", "b"]
    assert list(select_outputs(outputs, [])) == ["a", "b"]


def test_unknown_output_is_a_400_naming_it_and_the_known_ones() -> None:
    """A name the model does not give is refused, naming it and what the model gives."""
    with pytest.raises(InvalidInput, match="unknown output 'c'; the model gives 'a', 'b'"):
        select_outputs({"a": np.zeros(1), "b": np.ones(1)}, ["c"])
