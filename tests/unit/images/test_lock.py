"""Lock inputs are the image's catalog packages plus prebake's own server dependencies, nothing else."""

from __future__ import annotations

from prebake.images.catalog import load_catalog
from prebake.images.lock import lock_inputs

CATALOG = load_catalog()


def test_framework_image_inputs_carry_server_and_grpc() -> None:
    """The scikit-learn image locks uvicorn, orjson and grpcio alongside its pinned packages."""
    text = lock_inputs(CATALOG.get("sklearn-1.9.1-debian12-py311-cpu-inference"))
    for requirement in ("uvicorn", "orjson", "grpcio", "scikit-learn==1.9.1", "pandas==3.1.1"):
        assert requirement in text


def test_minimal_image_leaves_grpc_out() -> None:
    """The minimal image is REST only: its lock inputs and its committed lock have no grpcio."""
    image = CATALOG.get("minimal-debian12-py311-cpu-inference")
    assert "grpcio" not in lock_inputs(image)
    assert "grpcio" not in image.lock_file.read_text(encoding="utf-8")
    assert "uvicorn" in image.lock_file.read_text(encoding="utf-8")
