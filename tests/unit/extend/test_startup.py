"""prepare(): real pip installs from a local wheelhouse into a cached, atomically renamed layer."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from prebake.errors import ConfigError
from prebake.extend.startup import activate, prepare

from .wheels import make_wheel


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app folder with a wheelhouse, a pins file and a cache folder beside it."""
    root = tmp_path / "app"
    wheels = root / "wheels"
    make_wheel(
        wheels, "tinyextra", "1.2.0", requires=("tinydep>=1",), body="from tinydep import VERSION as DEP\n"
    )
    make_wheel(wheels, "tinydep", "1.0.0")
    make_wheel(wheels, "tinydep", "2.0.0")
    make_wheel(wheels, "needsnew", "1.0.0", requires=("tinydep>=2",))
    (root / "pins.lock").write_text("tinydep==1.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\nnumpy==2.0.0\n")
    return root


def env_for(app: Path, requirements: str, **extra: str) -> dict[str, str]:
    (app / "requirements.txt").write_text(requirements)
    return {
        "PREBAKE_EXTRA_REQUIREMENTS": "requirements.txt",
        "PREBAKE_WHEELHOUSE": "wheels",
        "PREBAKE_PINS_FILE": str(app / "pins.lock"),
        "PREBAKE_CACHE_DIR": str(app.parent / "cache"),
        **extra,
    }


def layers(app: Path) -> list[str]:
    folder = app.parent / "cache" / "layers"
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith(".lock")) if folder.exists() else []
    )


def test_install_then_cached(app: Path) -> None:
    """The first start installs the requirement with its pinned dependency; the second runs no pip and takes milliseconds."""
    env = env_for(app, "tinyextra==1.2.0\n")
    paths = prepare(env, app_root=app, model_dir=None)
    assert len(paths) == 1 and (paths[0] / "tinyextra").is_dir()
    assert (
        (paths[0] / "tinydep" / "__init__.py").read_text().startswith("VERSION = '1.0.0'")
    )  # the pin, not 2.0.0
    out = subprocess.run(
        [sys.executable, "-c", f"import site; site.addsitedir({str(paths[0])!r}); import tinyextra; print(tinyextra.DEP)"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "1.0.0"
    inode = paths[0].stat().st_ino
    started = time.monotonic()
    assert prepare(env, app_root=app, model_dir=None) == paths
    assert time.monotonic() - started < 0.5  # pip alone takes over a second to start
    assert paths[0].stat().st_ino == inode
    assert len(layers(app)) == 1


def test_changed_requirements_make_a_new_layer(app: Path) -> None:
    """Another requirements text gets its own layer, so a cached layer never serves stale requirements."""
    prepare(env_for(app, "tinyextra==1.2.0\n"), app_root=app, model_dir=None)
    prepare(env_for(app, "tinyextra==1.2.0\ntinydep\n"), app_root=app, model_dir=None)
    assert len(layers(app)) == 2


def test_direct_conflict_names_both_versions(app: Path) -> None:
    """A requirement that would change a pinned package fails before pip runs, naming both versions."""
    with pytest.raises(ConfigError) as raised:
        prepare(env_for(app, "tinydep==2.0.0\n"), app_root=app, model_dir=None)
    assert "tinydep==2.0.0" in raised.value.message and "tinydep==1.0.0" in raised.value.message
    assert layers(app) == []


def test_transitive_conflict_is_explained(app: Path) -> None:
    """A dependency that needs another version of a pinned package fails with pip's cause and nothing installed."""
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        prepare(env_for(app, "needsnew\n"), app_root=app, model_dir=None)
    assert time.monotonic() - started < 30
    message = raised.value.message
    assert "cannot be resolved against the image's pinned packages" in message and "tinydep" in message
    assert layers(app) == []


def test_missing_package_in_wheelhouse(app: Path) -> None:
    """A package the wheelhouse lacks fails at once, naming the package and the wheelhouse."""
    with pytest.raises(ConfigError) as raised:
        prepare(env_for(app, "nosuchpackage-prebake==1.0\n"), app_root=app, model_dir=None)
    assert "nosuchpackage-prebake" in raised.value.message and "wheelhouse" in raised.value.message
    assert layers(app) == []


def test_broken_wheel_leaves_nothing(app: Path) -> None:
    """A corrupt wheel fails the install with a 'broken' message and no layer appears."""
    (app / "wheels" / "brokenpkg-1.0.0-py3-none-any.whl").write_bytes(b"not a zip file")
    with pytest.raises(ConfigError) as raised:
        prepare(env_for(app, "brokenpkg==1.0.0\n"), app_root=app, model_dir=None)
    assert "brokenpkg" in raised.value.message
    assert layers(app) == []


def test_no_network_and_no_wheelhouse_fails_fast(app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no index reachable and no wheelhouse, the error says so and suggests a wheelhouse, within seconds."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    env = env_for(app, "tinyextra==1.2.0\n")
    del env["PREBAKE_WHEELHOUSE"]
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        prepare(env, app_root=app, model_dir=None)
    assert time.monotonic() - started < 30
    assert "PREBAKE_WHEELHOUSE" in raised.value.message
    assert layers(app) == []


def test_missing_requirements_file(tmp_path: Path) -> None:
    """A requirements file that is not there is a ConfigError naming the variable and where it looked."""
    with pytest.raises(ConfigError, match="AZUREML_EXTRA_REQUIREMENTS_TXT=nope.txt: no such file"):
        prepare({"AZUREML_EXTRA_REQUIREMENTS_TXT": "nope.txt"}, app_root=tmp_path, model_dir=None)


def test_extra_python_path_from_model_dir(tmp_path: Path) -> None:
    """AZUREML_EXTRA_PYTHON_LIB_PATH is found relative to the model folder and its modules become importable."""
    model = tmp_path / "model"
    (model / "lib" / "mymod_prebake").mkdir(parents=True)
    (model / "lib" / "mymod_prebake" / "__init__.py").write_text("X = 7\n")
    paths = prepare({"AZUREML_EXTRA_PYTHON_LIB_PATH": "lib"}, app_root=tmp_path / "app", model_dir=model)
    assert paths == [(model / "lib").resolve()]
    activate(paths)
    try:
        import mymod_prebake  # type: ignore[import-not-found]

        assert mymod_prebake.X == 7
    finally:
        sys.path.remove(str(paths[0]))
        sys.modules.pop("mymod_prebake", None)


def test_included_file_change_makes_a_new_layer(app: Path) -> None:
    """A change in a file the requirements include with -r gives a new layer, not the stale cached one."""
    (app / "base.txt").write_text("tinyextra==1.2.0\n")
    env = env_for(app, "-r base.txt\n")
    first = prepare(env, app_root=app, model_dir=None)
    (app / "base.txt").write_text("tinyextra==1.2.0\ntinydep==1.0.0\n")
    assert prepare(env, app_root=app, model_dir=None) != first
    assert len(layers(app)) == 2
