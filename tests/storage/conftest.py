"""Fixtures for the storage tests: the stores (started on first use in a module, stopped at its end), two
tiny scikit-learn models that answer differently, and a fresh cache folder per test."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .stores import GCS, S3, Azure, Store, Web, azurite_available

ROWS = [[0.0, 0.0], [2.0, 2.0]]
#: What each model predicts for ROWS: a changed object must change the answer.
ANSWERS = {"one": [0, 1], "two": [1, 0]}


def need_azurite() -> None:
    if azurite_available():
        return
    message = "Azurite is not installed in .tools/azurite (scripts/setup.sh --test installs it with npm)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class Stores(dict[str, Store]):
    """name -> a running store, started when a test first asks for it."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def __missing__(self, name: str) -> Store:
        if name == "az":
            need_azurite()
        folder = self.folder / name
        folder.mkdir()
        store: Store = {"s3": S3, "gs": GCS, "az": Azure, "http": Web}[name](folder)  # type: ignore[abstract]
        self[name] = store
        return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    running = Stores(tmp_path_factory.mktemp("stores"))
    yield running
    for store in running.values():
        store.stop()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def models() -> dict[str, bytes]:
    """Two joblib'd decision trees on two features (ANSWERS says what each predicts for ROWS)."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    saved = {}
    for name, labels in (("one", [0, 1]), ("two", [1, 0])):
        buffer = io.BytesIO()
        joblib.dump(DecisionTreeClassifier(random_state=0).fit(ROWS, labels), buffer)
        saved[name] = buffer.getvalue()
    return saved
