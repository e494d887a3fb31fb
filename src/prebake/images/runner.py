"""Start catalog images the way they should run: model and code mounted read-only, read-only root with a
tmpfs /tmp, no capabilities, uid 1000, the port bound to 127.0.0.1 only.

``run_arguments`` is a pure function (tested as such); ``prebake run`` and the smoke test both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prebake import frameworks
from prebake.errors import ImageError
from prebake.images.catalog import Image

CONTAINER_PORT = 5001
MODEL_MOUNT = "/var/azureml-app/azureml-models"
APP_MOUNT = "/var/azureml-app/src"

# Model files each framework's image can load (frameworks.py); a model of another framework fails early
# with a clear message rather than at init() inside the container.
MODEL_SUFFIXES: dict[str, frozenset[str]] = {
    catalog: frameworks.image_suffixes(catalog) for catalog in frameworks.BY_CATALOG
}
# Suffixes that name one framework for sure (not pickles, which any can be), to say which image instead.
_OWNER = {
    suffix: f.catalog
    for f in frameworks.FRAMEWORKS
    if f.catalog
    for suffix in f.suffixes + f.folder_files
    if suffix not in frameworks.PICKLE_SUFFIXES and suffix not in (".json", ".txt")
}


class ModelMismatch(ImageError):
    """The model file is not one this image's framework loads."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What to start: an image reference plus the user's model and/or entry script."""

    reference: str
    port: int
    model: Path | None = None
    entry_script: Path | None = None
    environment: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    detach: bool = False
    remove: bool = True  # --rm; the smoke test keeps the container to read its exit code


def check_model(image: Image, model: Path) -> None:
    """ModelMismatch when ``model`` (a file, or a folder's files) is not loadable by ``image``'s framework."""
    if not model.exists():
        raise ModelMismatch(f"model {model} does not exist", status=404)
    if model.is_dir():
        if image.framework == "tensorflow" and (model / "saved_model.pb").exists():
            return
        if image.framework == "transformers" and (model / "config.json").exists():
            return  # a save_pretrained directory
        if (model / "MLmodel").is_file():
            return  # an MLflow model: its flavors and requirements are judged by recommend and check
        files = [path for path in model.iterdir() if path.is_file()]
    else:
        files = [model]
    allowed = MODEL_SUFFIXES.get(image.framework, frozenset())
    if image.framework == "minimal":
        return  # the minimal image serves whatever the user's score.py loads
    if any(path.suffix.lower() in allowed for path in files):
        return
    suffixes = sorted({path.suffix.lower() or "(none)" for path in files})
    owners = sorted({_OWNER[s] for s in suffixes if s in _OWNER})
    hint = f" It looks like a {owners[0]} model: use a {owners[0]} image." if owners else ""
    raise ModelMismatch(
        f"{model} does not look like a {image.framework} model (files ending {', '.join(suffixes)}; "
        f"{image.name} loads {', '.join(sorted(allowed))}).{hint}"
    )


def run_arguments(spec: RunSpec) -> list[str]:
    """The engine's ``run`` arguments for ``spec`` (after the engine executable)."""
    args = ["run"]
    if spec.remove:
        args.append("--rm")
    if spec.detach:
        args.append("--detach")
    if spec.name:
        args += ["--name", spec.name]
    args += [
        "--read-only",
        "--tmpfs", "/tmp:rw,nosuid,nodev,size=512m",
        "--cap-drop", "all",
        "--security-opt", "no-new-privileges",
        "--publish", f"127.0.0.1:{spec.port}:{CONTAINER_PORT}",
    ]  # fmt: skip
    command: list[str] = []
    env = dict(spec.environment)
    if spec.model is not None:
        model = spec.model.resolve()
        # A file is mounted as itself inside the model folder; a folder becomes the model folder.
        target = f"{MODEL_MOUNT}/{model.name}" if model.is_file() else MODEL_MOUNT
        args += ["--volume", f"{model}:{target}:ro"]
        env.setdefault("AZUREML_MODEL_DIR", MODEL_MOUNT)
        if spec.entry_script is None:
            command = [target]  # no-code serving: prebake serve MODEL_PATH
    if spec.entry_script is not None:
        script = spec.entry_script.resolve()
        args += ["--volume", f"{script.parent}:{APP_MOUNT}:ro"]
        env.update({"AML_APP_ROOT": APP_MOUNT, "AZUREML_ENTRY_SCRIPT": script.name})
    for key, value in sorted(env.items()):
        args += ["--env", f"{key}={value}"]
    return [*args, spec.reference, *command]
