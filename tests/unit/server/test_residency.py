"""Which models a multi-model endpoint unloads to fit one more."""

from __future__ import annotations

import pytest

from prebake.errors import InsufficientMemory
from prebake.server.residency import Residency, available_memory


def test_least_recently_used_go_first_and_only_as_many_as_needed() -> None:
    """Victims are taken in order of last use, and no more than make room."""
    residency = Residency(budget=100)
    for name in ("a", "b", "c"):
        residency.add(name, 30)
    residency.touch("a")
    assert residency.victims(10) == []
    assert residency.victims(20) == ["b"]
    assert residency.victims(60) == ["b", "c"]


def test_a_model_bigger_than_the_budget_is_507() -> None:
    """A model that would not fit with every other one unloaded raises InsufficientMemory (507)."""
    with pytest.raises(InsufficientMemory) as caught:
        Residency(budget=100).victims(101)
    assert caught.value.status == 507


def test_without_a_budget_the_machine_memory_counts() -> None:
    """With no budget, what is available now bounds it: a model of a petabyte cannot fit."""
    assert available_memory() > 0
    with pytest.raises(InsufficientMemory):
        Residency().victims(10**15)
