"""Files only their owner may read, mounted into the real scikit-learn image (uid 1000) by `prebake check`
and `prebake run`: a readable copy is mounted instead, and the output says so.

Runs where the image tests run (CI=true, or PREBAKE_IMAGE_TESTS=1); the image is built once per session
(conftest.Builds).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prebake.images.catalog import Image, load_catalog
from prebake.images.engine import Engine, engine_environment
from prebake.images.smoke import free_port

from .conftest import Builds

pytestmark = [pytest.mark.images, pytest.mark.slow]

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SCORE = """
import json, os
import joblib

def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))

def run(raw):
    return model.predict(json.loads(raw)["data"]).tolist()
"""


@pytest.fixture(scope="module")
def engine(podman: Engine) -> Engine:
    return podman


@pytest.fixture(scope="module")
def image(engine: Engine, builds: Builds) -> Image:
    """The catalog's scikit-learn image, built once per session (conftest.Builds)."""
    builds.get("podman", SKLEARN)
    return load_catalog().get(SKLEARN)


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Path]:
    """A 0700 folder (as mkdtemp makes) holding a 0600 score.py and a model folder of 0600 files."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / f"private-{uuid.uuid4().hex[:6]}"
    (folder / "model").mkdir(parents=True)
    (folder / "score.py").write_text(SCORE)
    joblib.dump(
        LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]),
        folder / "model" / "model.joblib",
    )
    for path in (folder / "score.py", folder / "model" / "model.joblib"):
        path.chmod(0o600)
    (folder / "model").chmod(0o750)
    folder.chmod(0o700)
    yield folder


def test_the_files_are_really_unreadable_in_the_container(
    engine: Engine, image: Image, private: Path
) -> None:
    """The case is real: mounted as they are, uid 1000 gets "Permission denied" for these files."""
    completed = subprocess.run(
        [engine.path, "run", "--rm", "--volume", f"{private}:/mnt/app:ro", "--entrypoint", "cat",
         image.reference, "/mnt/app/score.py"],
        capture_output=True, text=True, env=engine_environment(), check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "Permission denied" in completed.stderr


def test_check_mounts_readable_copies_and_says_so(image: Image, private: Path) -> None:
    """`prebake check` inside the image passes for a 0700 app folder and a 0750 model folder, and reports
    the copies it mounted; the user's files keep their modes."""
    completed = subprocess.run(
        [sys.executable, "-m", "prebake", "check", "--image", image.name, "--where", "image",
         "--entry-script", str(private / "score.py"), "--model-dir", str(private / "model")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Permission denied" not in output
    assert f"mounts: mounted a readable copy of the entry script's folder {private}" in output
    assert f"mounts: mounted a readable copy of the model folder {private / 'model'}" in output
    assert "runs as uid 1000" in output and f"chmod -R o+rX {private}" in output
    assert "ready to deploy" in output
    assert (private.stat().st_mode & 0o777, (private / "score.py").stat().st_mode & 0o777) == (0o700, 0o600)


def test_run_serves_a_model_only_its_owner_can_read(engine: Engine, image: Image, private: Path) -> None:
    """`prebake run --model` with a 0600 model in a 0750 folder: the container serves it from a readable copy;
    detached, the copy is kept where the note says."""
    port = free_port()
    completed = subprocess.run(
        [sys.executable, "-m", "prebake", "run", image.name, "--model", str(private / "model" / "model.joblib"),
         "--port", str(port), "--detach", "-e", "PREBAKE_ALLOW_PICKLE=1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    container = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else ""
    kept = re.search(r"readable copy of the model \S+ at (\S+):", completed.stderr)
    try:
        assert completed.returncode == 0, completed.stderr
        assert kept is not None, completed.stderr
        body = {"inputs": [{"name": "input-0", "shape": [2, 1], "datatype": "FP32", "data": [0.5, 2.5]}]}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/model/infer",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert json.loads(response.read())["outputs"][0]["data"] == [0, 1]
                    break
            except (urllib.error.URLError, ConnectionError) as error:
                if time.monotonic() > deadline:
                    logs = subprocess.run([engine.path, "logs", container], capture_output=True, text=True,
                                          env=engine_environment(), check=False)  # fmt: skip
                    raise AssertionError(f"never served: {error}\n{logs.stdout}{logs.stderr}") from error
                time.sleep(0.5)
    finally:
        if container:
            engine.run("rm", "--force", container, check=False)
        if kept is not None:
            copy = Path(kept[1])
            shutil.rmtree(
                next(p for p in copy.parents if p.name.startswith("prebake-readable-")), ignore_errors=True
            )
