"""Extending the real scikit-learn image: packages added at start (cached by content hash), measured against
the plain image's start; a conflicting requirement stopping the start at once; and `prebake extend`.

Runs where the image tests run (CI=true, or PREBAKE_IMAGE_TESTS=1). The scikit-learn image is built once
per session (conftest.Builds); extend and check run with podman and with docker.
This checkout's prebake is mounted over the image's, so start-up uses the code under test.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prebake.extend.check import overlay_code
from prebake.images.catalog import Image, load_catalog
from prebake.images.engine import Engine
from prebake.images.smoke import free_port

from .conftest import Builds

pytestmark = [pytest.mark.images, pytest.mark.slow]

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"
ROOT = Path(__file__).resolve().parents[2]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EXTRA = "tabulate==0.9.0"  # one small pure-Python wheel with no dependencies
SCORE = """
import json, os
import joblib

def init():
    global model
    if os.environ.get("PREBAKE_EXTRA_REQUIREMENTS"):
        import tabulate  # the extra requirement must be importable in the worker
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))

def run(raw):
    return model.predict(json.loads(raw)["data"]).tolist()
"""
BODY = json.dumps({"data": [[0.5], [2.5]]}).encode()


@pytest.fixture(scope="module")
def engine(podman: Engine) -> Engine:
    return podman


@pytest.fixture(scope="module")
def image(engine: Engine, builds: Builds) -> Image:
    """The catalog's scikit-learn image, built once per session (conftest.Builds)."""
    builds.get("podman", SKLEARN)
    return load_catalog().get(SKLEARN)


@pytest.fixture(scope="module", params=["podman", "docker"])
def any_engine(request: pytest.FixtureRequest, builds: Builds) -> Engine:
    """Each engine with the scikit-learn image built by it: extend and check must work with both."""
    builds.get(request.param, SKLEARN)
    return builds.engine(request.param)


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    """App (score.py, requirements, wheelhouse), model, this prebake: readable by the image's uid 1000."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    root = Path(f"/tmp/prebake-extend-test-{uuid.uuid4().hex[:8]}")
    (root / "app" / "wheels").mkdir(parents=True)
    (root / "model").mkdir()
    joblib.dump(
        LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]), root / "model" / "model.joblib"
    )
    (root / "app" / "score.py").write_text(SCORE)
    (root / "app" / "requirements.txt").write_text(EXTRA + "\n")
    (root / "app" / "conflict.txt").write_text("scikit-learn==1.5.0\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", EXTRA, "-d", str(root / "app" / "wheels")],
                   check=True, capture_output=True)  # fmt: skip
    overlay_code(root / "code")
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _cache(work: Path) -> Path:
    cache = work / f"cache-{uuid.uuid4().hex[:8]}"
    cache.mkdir()
    os.chown(cache, 1000, 1000)
    return cache


def _start(engine: Engine, image: Image, work: Path, cache: Path, env: dict[str, str]) -> tuple[str, int]:
    port = free_port()
    name = f"prebake-extend-{uuid.uuid4().hex[:10]}"
    args = ["run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=512m",
            "--cap-drop", "all", "--security-opt", "no-new-privileges", "--publish", f"127.0.0.1:{port}:5001",
            "--volume", f"{work / 'app'}:/var/azureml-app/src:ro",
            "--volume", f"{work / 'model'}:/var/azureml-app/azureml-models:ro",
            "--volume", f"{work / 'code'}:/opt/prebake-check:ro", "--volume", f"{cache}:/var/cache/prebake",
            "--env", "PYTHONPATH=/opt/prebake-check", "--env", "AML_APP_ROOT=/var/azureml-app/src",
            "--env", "AZUREML_ENTRY_SCRIPT=score.py", "--env", "AZUREML_MODEL_DIR=/var/azureml-app/azureml-models"]  # fmt: skip
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    engine.run(*args, "--entrypoint", "python3", image.reference, "-m", "prebake.extend.launch",
               "prebake", "serve", "--host", "0.0.0.0")  # fmt: skip
    return name, port


def _first_prediction(engine: Engine, image: Image, work: Path, cache: Path, env: dict[str, str]) -> float:
    """Seconds from `podman run` to the first correct prediction."""
    started = time.monotonic()
    name, port = _start(engine, image, work, cache, env)
    try:
        while time.monotonic() - started < 120:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=BODY, method="POST",
                                             headers={"Content-Type": "application/json"})  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        assert json.loads(response.read()) == [0, 1]
                        return time.monotonic() - started
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.02)
        logs = subprocess.run([engine.path, "logs", name], capture_output=True, text=True).stderr[-2000:]
        raise AssertionError(f"no prediction within 120 s:\n{logs}")
    finally:
        engine.run("rm", "--force", name, check=False)


def test_start_time_packages_cached(engine: Engine, image: Image, work: Path) -> None:
    """The first start installs the extra requirement into one cached layer; the second reuses it and serves.

    It also records the three start times for docs/benchmarks.md (the figures, not an assertion: tests check
    behaviour, the benchmark doc reports time).
    """
    extra = {"PREBAKE_EXTRA_REQUIREMENTS": "requirements.txt", "PREBAKE_WHEELHOUSE": "wheels"}
    rounds = int(os.environ.get("PREBAKE_BENCH_ROUNDS", "1"))
    plain, first, cached = [], [], []
    _first_prediction(engine, image, work, _cache(work), {})  # warm-up: page cache, overlay mounts
    for _ in range(rounds):
        plain.append(_first_prediction(engine, image, work, _cache(work), {}))
        cache = _cache(work)
        first.append(_first_prediction(engine, image, work, cache, extra))
        cached.append(_first_prediction(engine, image, work, cache, extra))
        assert len(list((cache / "layers").glob("[0-9a-f]*"))) == 1
    figures = {
        "image": image.name, "extra": EXTRA, "rounds": rounds,
        "plain_s": round(statistics.median(plain), 2), "first_s": round(statistics.median(first), 2),
        "cached_s": round(statistics.median(cached), 2),
        "cached_overhead_s": round(statistics.median(cached) - statistics.median(plain), 2),
        "all": {"plain": [round(x, 2) for x in plain], "first": [round(x, 2) for x in first],
                "cached": [round(x, 2) for x in cached]},
    }  # fmt: skip
    out = ROOT / "out" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "extend-startup.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))


def test_conflicting_requirement_stops_the_start(engine: Engine, image: Image, work: Path) -> None:
    """A requirement that would change the image's scikit-learn ends the container within seconds, exit 2, naming both versions, nothing cached."""
    cache = _cache(work)
    started = time.monotonic()
    name, _ = _start(
        engine,
        image,
        work,
        cache,
        {"PREBAKE_EXTRA_REQUIREMENTS": "conflict.txt", "PREBAKE_WHEELHOUSE": "wheels"},
    )
    try:
        code = engine.run("wait", name, timeout=60).strip()
        seconds = time.monotonic() - started
        logs = subprocess.run([engine.path, "logs", name], capture_output=True, text=True)
    finally:
        engine.run("rm", "--force", name, check=False)
    assert code == "2" and seconds < 15, (code, seconds)
    assert (
        "scikit-learn==1.5.0" in logs.stderr + logs.stdout
        and "scikit-learn==1.9.1" in logs.stderr + logs.stdout
    )
    assert not list((cache / "layers").glob("[0-9a-f]*")) if (cache / "layers").exists() else True


def _prebake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prebake", *args], capture_output=True, text=True, timeout=600
    )


def test_extend_builds_a_tested_non_root_image(any_engine: Engine, work: Path) -> None:
    """prebake extend adds a Python and an apt package, keeps uid 1000, labels and SBOM name them, passes the smoke test, and leaves no build cache record of its own (podman and docker)."""
    engine = any_engine
    cache_before = engine.build_cache_ids()
    tag = f"localhost/prebake-test/extended:{uuid.uuid4().hex[:8]}"
    ca = ["--ca-bundle", str(CA_BUNDLE)] if CA_BUNDLE.is_file() else []
    result = _prebake("extend", SKLEARN, "-r", str(work / "app" / "requirements.txt"), "--apt", "jq",
                      "--wheelhouse", str(work / "app" / "wheels"), "-t", tag, "--engine", engine.path, *ca)  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        record = engine.inspect_image(tag)
        config = record["Config"]
        assert isinstance(config, dict) and config["User"] == "1000:1000"
        labels = config["Labels"]
        assert labels["ai.prebake.extended-from"] == SKLEARN and labels["ai.prebake.framework"] == "sklearn"
        assert labels["ai.prebake.extra-requirements"] == EXTRA and labels["ai.prebake.extra-apt"] == "jq"
        sbom = json.loads(
            engine.run("run", "--rm", "--entrypoint", "cat", tag, "/usr/share/doc/prebake/sbom.json")
        )
        purls = {component["purl"] for component in sbom["components"]}
        assert "pkg:pypi/tabulate@0.9.0" in purls and any(p.startswith("pkg:deb/debian/jq@") for p in purls)
        assert sbom["metadata"]["component"]["name"] == tag
        assert engine.build_cache_ids() - cache_before == set(), "extend left BuildKit cache records"
    finally:
        engine.remove_image(tag)


def test_extend_unknown_apt_package_tags_nothing(engine: Engine, image: Image) -> None:
    """An apt package that does not exist fails the build with a message naming it, exit 6, and no tag."""
    tag = f"localhost/prebake-test/extended:{uuid.uuid4().hex[:8]}"
    result = _prebake("extend", SKLEARN, "--apt", "no-such-package-prebake", "-t", tag, "--no-test")
    assert result.returncode == 6, result.stderr[-2000:]
    assert "apt package no-such-package-prebake does not exist" in result.stderr
    assert not engine.image_exists(tag)


def test_check_inside_the_image(any_engine: Engine, work: Path) -> None:
    """prebake check --where image installs the extra requirement offline, runs init() and a sample inside the image, and fails a broken script (podman and docker)."""
    engine = any_engine
    model = work / "model"
    (work / "app" / "sample.json").write_text(BODY.decode())
    args = ["check", "--entry-script", str(work / "app" / "score.py"), "--model-dir", str(model), "--image", SKLEARN,
            "-r", str(work / "app" / "requirements.txt"), "--wheelhouse", str(work / "app" / "wheels"),
            "--sample", str(work / "app" / "sample.json"), "--where", "image", "--format", "json",
            "--engine", engine.path]  # fmt: skip
    result = _prebake(*args)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["environment"].startswith("inside "), result.stdout
    assert f"({engine.name})" in report["environment"]
    assert any(f["step"] == "sample-request" and "[0,1]" in f["message"] for f in report["findings"])
    broken = work / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "score.py").write_text(
        "def init():\n    raise RuntimeError('no model here')\n\ndef run(raw):\n    return raw\n"
    )
    subprocess.run(["chmod", "-R", "a+rX", str(broken)], check=True)
    result = _prebake(
        "check",
        "--entry-script",
        str(broken / "score.py"),
        "--image",
        SKLEARN,
        "--where",
        "image",
        "--format",
        "json",
        "--engine",
        engine.path,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 7
    assert any(f["step"] == "import-and-init" and "no model here" in f["message"] for f in report["findings"])
