"""The runtime table: lazy imports, unknown names, and a missing framework's message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from prebake.errors import ConfigError, ModelLoadError
from prebake.runtimes.base import ModelSettings, RawRuntime, Runtime
from prebake.runtimes.registry import RUNTIMES, create_runtime, runtime_class

FRAMEWORKS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnx": "onnxruntime",
    "torch": "torch",
    "tensorflow": "tensorflow",
}


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_modules_import_no_framework() -> None:
    """Importing every runtime module (and creating each runtime) imports none of the frameworks."""
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from prebake.runtimes.base import ModelSettings\n"
        "from prebake.runtimes.registry import RUNTIMES, create_runtime\n"
        "from prebake.runtimes import discover\n"
        "for name in RUNTIMES:\n"
        "    create_runtime(ModelSettings(name=name, path=Path('/nowhere'), runtime=name))\n"
        f"loaded = [m for m in {sorted(set(FRAMEWORKS.values()) | {'keras', 'joblib', 'pandas'})!r}"
        " if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("runtime", sorted(FRAMEWORKS))
def test_missing_framework_names_the_package(runtime: str, tmp_path: Path, joblib_file: Path) -> None:
    """Loading a runtime whose framework cannot be imported is ModelLoadError saying what to pip install
    (for sklearn: a real joblib file, whose unpickling needs scikit-learn)."""
    module = FRAMEWORKS[runtime]
    model = joblib_file if runtime == "sklearn" else tmp_path / "model.bin"
    if runtime != "sklearn":
        model.write_bytes(b"")
    code = (
        f"import sys\nsys.modules[{module!r}] = None\n"
        "from pathlib import Path\nfrom prebake.errors import ModelLoadError\n"
        "from prebake.runtimes.base import ModelSettings\n"
        "from prebake.runtimes.registry import create_runtime\n"
        f"s = ModelSettings(name='m', path=Path({str(model)!r}), runtime={runtime!r}, device='cpu',\n"
        "                  parameters={'allow_pickle': True})\n"
        "r = create_runtime(s)\n"
        "try:\n    r.load()\nexcept ModelLoadError as e:\n    print(e.message)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert "pip install" in result.stdout and RUNTIMES[runtime].install.split()[0] in result.stdout


def test_unknown_runtime() -> None:
    """An unknown runtime name is a ConfigError listing the known ones."""
    with pytest.raises(ConfigError, match="unknown runtime 'caffe'.*sklearn"):
        runtime_class("caffe")


def test_every_entry_resolves() -> None:
    """Every table entry names a real Runtime or RawRuntime class with that name."""
    for name in RUNTIMES:
        cls = runtime_class(name)
        assert issubclass(cls, Runtime | RawRuntime) and cls.name == name


def test_create_runtime_does_not_load(tmp_path: Path) -> None:
    """create_runtime builds the runtime without touching the model file (load() does that)."""
    runtime = create_runtime(ModelSettings(name="m", path=tmp_path / "absent.onnx", runtime="onnx"))
    assert isinstance(runtime, Runtime)
    with pytest.raises(ModelLoadError):
        runtime.load()
