"""The parts behind Triton's extensions, alone: classification (top k as Triton writes it), sequence
control inputs, and the shared memory registry (registration, bounds, records shared between workers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prebake.errors import InvalidInput, NotFound
from prebake.server import shm
from prebake.server.classification import classify
from prebake.server.sequence import with_controls
from prebake.types import InferenceRequest


def test_classify_rows_and_whole_outputs() -> None:
    """Batched: top k per row, [rows, k]; not batched: top k of everything, [k]; ints as ints; labels only
    where there is one for the index; ties keep the lower index first."""
    scores = np.array([[1, 3, 3, 0]], dtype=np.int64)
    assert classify("y", scores, 3, ["a"], batched=True).tolist() == [[b"3:1", b"3:2", b"1:0:a"]]
    flat = np.array([[0.5], [0.25]], dtype=np.float64)
    assert classify("y", flat, 5, [], batched=False).tolist() == [b"0.500000:0", b"0.250000:1"]


@pytest.mark.parametrize("array", [np.array(["a"], dtype=object), np.array([1], dtype=np.float16)])
def test_classify_refuses_what_triton_refuses(array: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match="class result not available for output 'y'"):
        classify("y", array, 1, [], batched=False)


def test_controls_follow_the_flags() -> None:
    """START and END follow the request's flags, READY is 1, CORRID the id, in each input's dtype."""
    controls = {
        "S": np.dtype(np.int32),
        "E": np.dtype(np.int32),
        "R": np.dtype(np.int32),
        "C": np.dtype(np.uint64),
    }
    kinds = {"S": "start", "E": "end", "R": "ready", "C": "correlation_id"}
    request = InferenceRequest(
        inputs={"x": np.ones((1, 1), np.int32)}, parameters={"sequence_id": 9, "sequence_end": True}
    )
    inputs = with_controls("m", controls, kinds, request).inputs
    assert {n: a.tolist() for n, a in inputs.items() if n != "x"} == {
        "S": [[0]],
        "E": [[1]],
        "R": [[1]],
        "C": [[9]],
    }
    assert inputs["C"].dtype == np.uint64
    strings = with_controls(
        "m",
        {"C": None},
        {"C": "correlation_id"},
        InferenceRequest(inputs={}, parameters={"sequence_id": "abc"}),
    )
    assert strings.inputs["C"].tolist() == [["abc"]]
    with pytest.raises(InvalidInput, match="not an unsigned int"):
        with_controls(
            "m",
            {"C": np.dtype(np.uint64)},
            {"C": "correlation_id"},
            InferenceRequest(inputs={}, parameters={"sequence_id": "abc"}),
        )


@pytest.mark.parametrize("params", [{}, {"sequence_id": 0}, {"sequence_id": ""}, {"sequence_id": True}])
def test_controls_need_a_correlation_id(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="must specify a non-zero or non-empty correlation ID"):
        with_controls("m", {"S": None}, {"S": "start"}, InferenceRequest(inputs={}, parameters=params))


def test_a_client_may_not_send_a_control() -> None:
    request = InferenceRequest(inputs={"S": np.ones((1, 1), np.int32)}, parameters={"sequence_id": 1})
    with pytest.raises(InvalidInput, match="unexpected inference input 'S'"):
        with_controls("m", {"S": None}, {"S": "start"}, request)


@pytest.fixture
def key() -> Iterator[str]:
    name = f"prebake-unit-{uuid.uuid4().hex[:12]}"
    (shm.SHM_DIR / name).write_bytes(bytes(range(256)) * 32)  # 8 KiB, more than one page
    yield "/" + name
    (shm.SHM_DIR / name).unlink(missing_ok=True)


def test_registry_reads_writes_and_bounds(key: str) -> None:
    """Bytes at an offset (past a page, so the map starts page-aligned) are read and written where asked;
    anything outside the region is refused."""
    regions = shm.SharedMemoryRegistry(None, allowed=True)
    regions.register("r", key, 4100, 200)
    assert regions.read("r", 0, 4) == bytes([4100 % 256, 4101 % 256, 4102 % 256, 4103 % 256])
    regions.write("r", 10, 20, b"\xff" * 3, "out")
    assert (shm.SHM_DIR / key[1:]).read_bytes()[4110:4114] == b"\xff\xff\xff" + bytes([4113 % 256])
    with pytest.raises(InvalidInput, match="Invalid offset for"):
        regions.read("r", 200, 1)
    with pytest.raises(InvalidInput, match=r"Invalid offset \+ byte size"):
        regions.read("r", 100, 101)
    with pytest.raises(InvalidInput, match="should be at least 30 bytes"):
        regions.write("r", 0, 20, b"x" * 30, "out")
    assert regions.status(None) == [{"name": "r", "key": key, "offset": 4100, "byte_size": 200}]
    regions.unregister("r")
    with pytest.raises(NotFound):
        regions.status("r")


def test_a_shrunk_object_is_refused_not_a_crash(key: str) -> None:
    """A client that truncates its object after registering gets a 400, where reading the map would SIGBUS."""
    regions = shm.SharedMemoryRegistry(None, allowed=True)
    regions.register("r", key, 0, 8192)
    (shm.SHM_DIR / key[1:]).write_bytes(b"small")
    with pytest.raises(InvalidInput, match="smaller than it was registered"):
        regions.read("r", 0, 16)


def test_records_are_shared_through_the_state_directory(key: str, tmp_path: Path) -> None:
    """Two registries over one directory (two workers): what one registers the other reads, and what one
    unregisters the other drops."""
    one = shm.SharedMemoryRegistry(tmp_path, allowed=True)
    two = shm.SharedMemoryRegistry(tmp_path, allowed=True)
    one.register("r", key, 0, 64)
    assert two.read("r", 0, 4) == bytes([0, 1, 2, 3])
    with pytest.raises(InvalidInput, match="already in manager"):
        two.register("r", key, 0, 64)
    two.unregister(None)
    with pytest.raises(InvalidInput, match="Unable to find shared memory region: 'r'"):
        one.read("r", 0, 4)
    assert not one._mapped and not two._mapped


@pytest.mark.parametrize("bad", ["/", "/a/b", "/..", "/../etc/passwd", "/triton_python_backend_shm_region_x"])
def test_keys_are_one_name_in_dev_shm(bad: str) -> None:
    with pytest.raises(InvalidInput, match="cannot register shared memory region 'r'"):
        shm.SharedMemoryRegistry(None, allowed=True).register("r", bad, 0, 1)


def test_registration_is_off_by_default() -> None:
    with pytest.raises(shm.ShmDisabled, match="--allow-client-shm") as info:
        shm.SharedMemoryRegistry(None, allowed=False).register("r", "/k", 0, 1)
    assert info.value.status == 501
