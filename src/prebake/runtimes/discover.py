"""Find the models to serve from paths on the command line or a model repository.

A path may be:

- a model file: ``.joblib .pkl .pickle .skops`` (sklearn), ``.json .ubj .bst`` (XGBoost), ``.txt``
  (LightGBM), ``.onnx``, ``.pt .pth .pt2`` (TorchScript, torch.export), ``.keras .h5`` (Keras);
- a directory holding one model, with an optional ``model-settings.json`` (see ``settings.py``): an
  MLflow model (an ``MLmodel`` file: it wins over the model files inside it), a SavedModel
  (``saved_model.pb``), a Hugging Face ``save_pretrained`` directory (``config.json`` and
  ``model.safetensors``: the transformers runtime), a SageMaker model directory (``code/inference.py`` or
  ``code/$SAGEMAKER_PROGRAM``, or a
  ``model.tar.gz`` inside), a Vertex AI directory (``model.joblib``, ``model.pkl``, ``model.bst``,
  ``saved_model.pb``), or a directory of numbered versions (``1/``, ``2/``: the highest is served);
- a SageMaker ``model.tar.gz``, unpacked once into ``$TMPDIR/prebake-models/`` so a read-only root
  file system works;
- Azure ML's layout of registered models: ``azureml-models/NAME/VERSION/...`` (AZUREML_MODEL_DIR names
  ``azureml-models`` when a deployment has several models: each is served as NAME; or ``NAME/VERSION``
  for one: served as NAME, version VERSION). A folder holding nothing but one folder is looked into, as
  Azure keeps a registered folder's own name (``VERSION/model/model.pkl``).

A model repository is a directory whose subdirectories (and model files) are models. A model's name is
its settings file's ``name``, else the file's stem or the directory's name.

Example::

    find_models([Path("iris.joblib")])   # [ModelSettings(name="iris", runtime="sklearn", ...)]
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prebake import frameworks
from prebake.errors import ConfigError
from prebake.runtimes.base import ModelSettings
from prebake.runtimes.hf_tasks import is_transformers_dir
from prebake.runtimes.mlflow_model import MLMODEL
from prebake.runtimes.registry import RUNTIMES
from prebake.runtimes.sagemaker import script_path
from prebake.runtimes.settings import DEVICES, SETTINGS_FILE, FileSettings, read_settings

SUFFIX_RUNTIMES = frameworks.SUFFIX_RUNTIMES
#: When a directory holds several model files, the Vertex AI names win, in this order.
VERTEX_NAMES = ("model.joblib", "model.pkl", "model.bst", "saved_model.pb")
TAR_SUFFIXES = (".tar.gz", ".tgz")
#: The folder Azure ML mounts registered models in: azureml-models/NAME/VERSION/.
AZUREML_MODELS = "azureml-models"

#: Model names travel in URL paths (/v2/models/NAME/infer): letters, digits, and . _ - only.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

SUPPORTED = frameworks.supported_text()


def find_models(
    paths: Sequence[Path], *, repository: Path | None = None, device: str = "auto"
) -> list[ModelSettings]:
    """Settings for every model in ``paths`` and ``repository``; ConfigError for a path that is missing,
    holds no model prebake can serve, or gives a name another model already has."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    found: list[ModelSettings] = []
    for path in map(Path, paths):
        if path.name == AZUREML_MODELS and path.is_dir():
            found.extend(models_in_repository(path, device))
        else:
            found.append(model_from_path(path, device))
    if repository is not None:
        found.extend(models_in_repository(Path(repository), device))
    seen: dict[str, Path] = {}
    for model in found:
        if model.name in seen:
            raise ConfigError(
                f"two models are named {model.name!r} ({seen[model.name]} and {model.path}); give one a "
                f"different name in its {SETTINGS_FILE}"
            )
        seen[model.name] = model.path
    return found


def models_in_repository(repository: Path, device: str) -> list[ModelSettings]:
    """One model per subdirectory (and per model file) of ``repository``, in name order."""
    if not repository.is_dir():
        raise ConfigError(f"{repository}: the model repository is not a directory")
    models = []
    for entry in sorted(repository.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.name.endswith(TAR_SUFFIXES) or detect_file(entry):
            models.append(model_from_path(entry, device))
    return models


def model_from_path(path: Path, device: str) -> ModelSettings:
    """Settings for the one model at ``path``: a file, a directory or a tar.gz."""
    if not path.exists():
        raise ConfigError(f"{path}: no such file or directory")
    if path.is_dir():
        return model_from_dir(path, device)
    if path.name.endswith(TAR_SUFFIXES):
        return model_from_dir(unpack(path), device, name=_strip_tar(path.name))
    if path.name in (SETTINGS_FILE, MLMODEL):
        return model_from_dir(path.parent, device)
    runtime = detect_file(path)
    if runtime is None:
        raise ConfigError(f"{path}: not a model file prebake can serve; supported: {SUPPORTED}")
    return _settings(FileSettings(source=path), path.resolve(), runtime, path.stem, None, device)


def model_from_dir(directory: Path, device: str, *, name: str | None = None) -> ModelSettings:
    """Settings for the model in ``directory``, from its settings file where it has one."""
    settings_path = directory / SETTINGS_FILE
    file = read_settings(settings_path) if settings_path.is_file() else FileSettings(source=directory)
    if file.runtime is not None and file.runtime not in RUNTIMES:
        raise ConfigError(f"{file.source}: unknown runtime {file.runtime!r}; known: {', '.join(RUNTIMES)}")
    version = None
    if file.runtime == "sagemaker" and file.uri is None:
        target, runtime = directory, "sagemaker"
    elif file.uri is not None:
        if not file.uri.exists():
            raise ConfigError(f"{file.source}: uri {file.uri} does not exist")
        if file.uri.is_dir():
            target, runtime, version = locate(file.uri)
        else:
            target, runtime = file.uri, file.runtime or detect_file(file.uri) or ""
            if not runtime:
                raise ConfigError(f"{file.source}: cannot tell the format of {file.uri}; set 'runtime'")
    else:
        target, runtime, version = locate(directory, scripts=file.runtime in (None, "sagemaker"))
    resolved = directory.resolve()
    if resolved.parent.parent.name == AZUREML_MODELS and resolved.name.isdigit():
        # AZUREML_MODEL_DIR of a one-model deployment: azureml-models/NAME/VERSION.
        name, version = name or resolved.parent.name, version or resolved.name
    return _settings(file, target, file.runtime or runtime, name or resolved.name, version, device)


def locate(directory: Path, *, scripts: bool = True) -> tuple[Path, str, str | None]:
    """The model file (or directory), runtime and version found in ``directory``."""
    if (directory / MLMODEL).is_file():
        return directory, "mlflow", None
    if scripts and (directory / script_path()).is_file():
        return directory, "sagemaker", None
    if (directory / "saved_model.pb").is_file():
        return directory, "tensorflow", None
    if is_transformers_dir(directory):
        return directory, "transformers", None
    entries = sorted(e for e in directory.iterdir() if not e.name.startswith("."))
    tars = [e for e in entries if e.is_file() and e.name.endswith(TAR_SUFFIXES)]
    candidates = [e for e in entries if e.is_file() and detect_file(e)]
    candidates += [e for e in entries if e.is_dir() and (e / "saved_model.pb").is_file()]
    if not candidates and len(tars) == 1:
        return locate(unpack(tars[0]), scripts=scripts)
    if len(candidates) > 1:
        by_name = {c.name: c for c in candidates}
        preferred = [by_name[n] for n in VERTEX_NAMES if n in by_name]
        named_model = [c for c in candidates if c.stem == "model"]
        candidates = preferred[:1] or (named_model if len(named_model) == 1 else candidates)
    if len(candidates) == 1:
        found = candidates[0]
        runtime = "tensorflow" if found.is_dir() else detect_file(found) or ""
        return found, runtime, None
    if len(candidates) > 1:
        raise ConfigError(
            f"{directory}: holds several models ({', '.join(c.name for c in candidates)}); add a "
            f"{SETTINGS_FILE} whose 'uri' names the one to serve, or serve them as a model repository"
        )
    versions = [e for e in entries if e.is_dir() and e.name.isdigit()]
    if versions:
        newest = max(versions, key=lambda e: int(e.name))
        found, runtime, _ = locate(newest, scripts=scripts)
        return found, runtime, newest.name
    if len(entries) == 1 and entries[0].is_dir():
        return locate(entries[0], scripts=scripts)  # Azure's VERSION/model/, a folder in a folder
    raise ConfigError(f"{directory}: no model found; supported: {SUPPORTED}")


def detect_file(path: Path) -> str | None:
    """The runtime for a model file, from its suffix; ``.json`` and ``.txt`` are checked to be XGBoost
    and LightGBM models (not any JSON or text file). None where it is no model file."""
    runtime = SUFFIX_RUNTIMES.get(path.suffix.lower())
    if runtime is None or not path.is_file() or path.name == SETTINGS_FILE:
        return None
    if path.suffix.lower() in (".json", ".txt"):
        with path.open("rb") as f:
            head = f.read(4096)
        if path.suffix.lower() == ".json" and b'"learner"' not in head:
            return None
        if path.suffix.lower() == ".txt" and not head.startswith(b"tree\n"):
            return None
    return runtime


def unpack(archive: Path) -> Path:
    """Unpack a tar.gz once into ``$TMPDIR/prebake-models/`` (keyed by path, size and mtime) and return
    the directory. Members that would land outside it, links out and device files are refused."""
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "prebake-models"
    target = cache / f"{_strip_tar(archive.name)}-{key}"
    if target.is_dir():
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache))
    except OSError as exc:
        raise ConfigError(
            f"{archive}: cannot unpack into {cache} (set TMPDIR to a writable directory): {exc}"
        ) from None
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter="data")
        os.replace(staging, target)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if target.is_dir():  # another worker unpacked it first
            return target
        raise ConfigError(f"{archive}: cannot unpack: {exc}") from None
    return target


def _strip_tar(name: str) -> str:
    for suffix in TAR_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _settings(
    file: FileSettings, path: Path, runtime: str, name: str, version: str | None, device: str
) -> ModelSettings:
    name = file.name or name
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"{file.source}: model name {name!r} is not usable in a URL; use letters, digits and . _ - "
            f"(set 'name' in {SETTINGS_FILE}, or rename the file)"
        )
    settings = ModelSettings(
        name=name,
        path=path,
        runtime=runtime,
        version=file.version or version,
        predict_method=file.predict_method,
        inputs=file.inputs,
        outputs=file.outputs,
        device=file.device or device,
        parameters=dict(file.parameters),
        labels=dict(file.labels),
        sequence=dict(file.sequence),
    )
    if file.max_batch_size is not None:
        settings.max_batch_size = file.max_batch_size
    if file.max_batch_delay_ms is not None:
        settings.max_batch_delay_ms = file.max_batch_delay_ms
    return settings
