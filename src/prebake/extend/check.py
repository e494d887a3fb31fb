"""``prebake check``: validate a deployment in seconds, before it ships.

Steps, each a ``Finding`` (ok, warning or error, with what to do about it):

    inputs          the files named exist
    image           the image is in the catalog; the model is one its framework loads
    model-versions  versions the model records (recommend's evidence) against the image's packages
    requirements    the requirements resolve against the image's pins (pip --dry-run, nothing installed)
    probe           extra packages installed, the script imported, init() and one sample request run, in a
                    subprocess: inside the built image where an engine exists, else with this Python
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from prebake.errors import ConfigError, PrebakeError
from prebake.extend.evidence import gather
from prebake.extend.pins import pins_from_environment, pins_from_lock
from prebake.extend.recommend import image_packages, provided
from prebake.extend.resolve import resolve
from prebake.extend.staging import Stager
from prebake.images.catalog import Catalog, Image

Severity = Literal["ok", "warning", "error"]
APP = "/var/azureml-app/src"
MODELS = "/var/azureml-app/azureml-models"
CHECK = "/var/azureml-app/check"


@dataclass(frozen=True, slots=True)
class Finding:
    step: str
    severity: Severity
    message: str
    fix: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    environment: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(finding.severity == "error" for finding in self.findings)

    def add(self, step: str, severity: Severity, message: str, fix: str = "", seconds: float = 0.0) -> None:
        self.findings.append(Finding(step, severity, message, fix, round(seconds, 3)))

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "environment": self.environment,
            "seconds": round(self.seconds, 2),
            "errors": sum(1 for f in self.findings if f.severity == "error"),
            "warnings": sum(1 for f in self.findings if f.severity == "warning"),
            "findings": [asdict(finding) for finding in self.findings],
        }

    def text(self) -> str:
        marks = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}
        lines = [
            f"{marks[f.severity]}  {f.step}: {f.message}" + (f"\n      fix: {f.fix}" if f.fix else "")
            for f in self.findings
        ]
        verdict = "ready to deploy" if self.ok else "NOT ready to deploy"
        lines.append(f"{verdict} ({self.environment}; {self.seconds:.1f} s)")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CheckRequest:
    entry_script: Path | None = None
    model: Path | None = None
    model_dir: Path | None = None
    image: str | None = None
    requirements: Path | None = None
    sample: Path | None = None
    wheelhouse: Path | None = None
    engine: str | None = None
    where: Literal["auto", "image", "local"] = "auto"
    timeout_s: float = 120.0
    ca_bundle: Path | None = None
    allow_pickle: bool = False  # load a pickled model (it runs code), as prebake serve --allow-pickle


def check(request: CheckRequest, catalog: Catalog) -> CheckReport:
    """Run every step that applies to ``request``; the report says what failed and what to do."""
    started = time.monotonic()
    report = CheckReport()
    if not _inputs(request, report):
        report.seconds = time.monotonic() - started
        return report
    image = _image(request, catalog, report)
    pins = (
        pins_from_lock(image.lock_file.read_text(encoding="utf-8"))
        if image and image.lock_file.is_file()
        else None
    )
    model = request.model or request.model_dir
    if image is not None and model is not None:
        _model_versions(model, image, report)
    scratch_requirements = None
    if (
        image is not None
        and model is not None
        and request.requirements is None
        and (model / "MLmodel").is_file()
    ):
        scratch_requirements = _mlflow_requirements(model, image, report)
        if scratch_requirements is not None:
            request = dataclasses.replace(request, requirements=scratch_requirements)
    if request.requirements is not None:
        step_started = time.monotonic()
        resolution = resolve(request.requirements, pins if pins is not None else pins_from_environment(),
                             wheelhouse=request.wheelhouse, timeout_s=request.timeout_s)  # fmt: skip
        report.add(
            "requirements",
            "ok" if resolution.ok else "error",
            resolution.message,
            ""
            if resolution.ok
            else "change the requirements file, or pick another image (prebake recommend)",
            time.monotonic() - step_started,
        )
    if report.ok:
        _probe(request, image, report)
    if scratch_requirements is not None:
        scratch_requirements.unlink(missing_ok=True)
    report.seconds = time.monotonic() - started
    return report


def _mlflow_requirements(model: Path, image: Image, report: CheckReport) -> Path | None:
    """The requirements an MLflow model was logged with that ``image`` lacks, as a file for the start-time
    layer (None where it lacks none): what the deployment would install at start."""
    from prebake.extend.recommend import recommend_for_image

    lacking = recommend_for_image(model, image).lacking
    if not lacking:
        report.add("mlflow-requirements", "ok", f"{image.name} holds every package the model was logged with")
        return None
    report.add(
        "mlflow-requirements",
        "ok",
        f"the model's requirements that {image.name} lacks are installed through the start-time layer: "
        + ", ".join(lacking),
    )
    handle, name = tempfile.mkstemp(prefix="prebake-mlflow-", suffix=".txt")
    os.close(handle)
    path = Path(name)
    path.write_text("\n".join(lacking) + "\n")
    return path


def _inputs(request: CheckRequest, report: CheckReport) -> bool:
    if request.entry_script is None and request.model is None:
        report.add("inputs", "error", "nothing to check", "give --entry-script score.py, or a model path")
        return False
    named = {
        "entry script": (request.entry_script, False),
        "model": (request.model, None),
        "model folder": (request.model_dir, True),
        "requirements file": (request.requirements, False),
        "sample request": (request.sample, False),
        "wheelhouse": (request.wheelhouse, True),
    }
    ok = True
    for label, (path, is_dir) in named.items():
        if path is None:
            continue
        exists = path.exists() if is_dir is None else (path.is_dir() if is_dir else path.is_file())
        if not exists:
            report.add("inputs", "error", f"{label} {path} does not exist", "fix the path")
            ok = False
    if ok and request.sample is not None:
        try:
            json.loads(request.sample.read_bytes())
        except ValueError as error:
            report.add(
                "inputs", "error", f"sample request {request.sample} is not JSON: {error}", "fix the file"
            )
            ok = False
    return ok


def _image(request: CheckRequest, catalog: Catalog, report: CheckReport) -> Image | None:
    if request.image is None:
        return None
    try:
        image = catalog.get(request.image)
    except PrebakeError as error:
        report.add("image", "error", error.message, "pick a name from `prebake images list`")
        return None
    model = request.model or request.model_dir
    if model is not None and request.entry_script is None:
        from prebake.images.runner import check_model

        try:
            check_model(image, model)
        except PrebakeError as error:
            report.add("image", "error", error.message, "use the image `prebake recommend MODEL` names")
            return image
    report.add("image", "ok", f"{image.name} ({image.framework} {image.version or ''})".replace(" )", ")"))
    return image


def _model_versions(model: Path, image: Image, report: CheckReport) -> None:
    try:
        evidence = gather(model)
    except (OSError, ValueError) as error:
        report.add("model-versions", "warning", f"could not read {model}: {error}")
        return
    packages = image_packages(image)
    for item in evidence:
        have = provided(packages, item.package)
        if item.version and have and have != item.version:
            report.add(
                "model-versions",
                "warning",
                f"{item.source}; {image.name} has {item.package} {have}",
                f"re-save the model with {item.package} {have}, or choose an image with {item.version}",
            )
        elif item.version and have:
            report.add("model-versions", "ok", f"{item.source}; the image has the same version")


def _probe(request: CheckRequest, image: Image | None, report: CheckReport) -> None:
    engine = None
    if image is not None and request.where != "local":
        from prebake.images.engine import Engine, EngineMissing

        try:
            engine = Engine.find(request.engine)
            if not engine.image_exists(image.reference):
                if request.where == "image":
                    report.add(
                        "probe",
                        "error",
                        f"{image.reference} is not built",
                        f"run `prebake build {image.name}`",
                    )
                    return
                engine = None
        except EngineMissing as error:
            if request.where == "image":
                report.add("probe", "error", error.message)
                return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prebake-check-") as scratch:
        if engine is not None and image is not None:
            report.environment = f"inside {image.reference} ({engine.name})"
            stage = Stager(Path(scratch) / "readable")
            try:
                command = [engine.path, *_engine_arguments(request, image.reference, Path(scratch), stage)]
            except ConfigError as error:
                report.add("mounts", "error", error.message)
                return
            for note in stage.notes:
                report.add("mounts", "ok", note)
            env = _engine_env()
        else:
            report.environment = f"this Python ({sys.executable})" + (
                f"; {image.name} is not built or no engine: build it for a check inside the image"
                if image and request.where == "auto"
                else ""
            )
            command, env = _local_command(request, image, Path(scratch))
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=request.timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            report.add("probe", "error", f"import, init() and the sample request took over {request.timeout_s:.0f} s",
                       "make init() faster, or raise --timeout", time.monotonic() - started)  # fmt: skip
            return
    steps = _steps(result.stdout)
    if steps is None:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-4:])
        report.add("probe", "error", f"the check process failed (exit {result.returncode}): {tail}",
                   "run the script with `prebake serve --entry-script` to see the whole error", time.monotonic() - started)  # fmt: skip
        return
    for step in steps:
        severity: Severity = "ok" if step["ok"] else "error"
        if step.get("skipped"):
            severity = "warning"
        report.add(step["step"], severity, step["message"], step.get("fix", ""), step.get("seconds", 0.0))


def _steps(stdout: str) -> list[dict[str, Any]] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"steps"'):
            steps: list[dict[str, Any]] = json.loads(line)["steps"]
            return steps
    return None


def _probe_args(request: CheckRequest, script: str | None, model: str | None, model_dir: str | None,
                sample: str | None) -> list[str]:  # fmt: skip
    args = ["-m", "prebake.extend.probe"]
    for flag, value in (
        ("--entry-script", script),
        ("--model", model),
        ("--model-dir", model_dir),
        ("--sample", sample),
    ):
        if value is not None:
            args += [flag, value]
    if request.allow_pickle and model is not None:
        args.append("--allow-pickle")
    return args


def _local_command(
    request: CheckRequest, image: Image | None, scratch: Path
) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREBAKE_EXTRA", "AZUREML_EXTRA"))}
    env["PREBAKE_CACHE_DIR"] = env.get("PREBAKE_CACHE_DIR") or str(Path.home() / ".cache" / "prebake")
    if request.requirements is not None:
        env["PREBAKE_EXTRA_REQUIREMENTS"] = str(request.requirements.resolve())
    if request.wheelhouse is not None:
        env["PREBAKE_WHEELHOUSE"] = str(request.wheelhouse.resolve())
    model_dir = request.model_dir or (
        request.model.parent if request.model and request.model.is_file() else request.model
    )
    args = _probe_args(
        request,
        str(request.entry_script.resolve()) if request.entry_script else None,
        str(request.model.resolve()) if request.model else None,
        str(model_dir.resolve()) if model_dir else None,
        str(request.sample.resolve()) if request.sample else None,
    )
    return [sys.executable, *args], env


def _engine_env() -> dict[str, str]:
    from prebake.images.engine import engine_environment

    return engine_environment()


def overlay_code(destination: Path) -> Path:
    """Copy this prebake (and its azureml compatibility modules) to ``destination``, to mount over an image's."""
    import importlib.util

    import prebake

    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(prebake.__file__).parent, destination / "prebake", ignore=ignore)
    spec = importlib.util.find_spec("azureml.contrib.services")
    if spec is not None and spec.submodule_search_locations:
        services = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(services.parents[1], destination / "azureml", ignore=ignore)
    return destination


def _engine_arguments(request: CheckRequest, reference: str, scratch: Path, stage: Stager) -> list[str]:
    """``run`` arguments for the probe inside the image: this prebake mounted over the image's, user files
    read-only (readable copies from ``stage`` where uid 1000 could not read the originals)."""
    scratch.chmod(0o755)
    code = overlay_code(scratch / "code")
    args = ["run", "--rm", "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=512m", "--cap-drop", "all",
            "--security-opt", "no-new-privileges", "--entrypoint", "python3",
            "--volume", f"{code}:/opt/prebake-check:ro", "--env", "PYTHONPATH=/opt/prebake-check",
            "--env", "PREBAKE_CACHE_DIR=/tmp/prebake-cache"]  # fmt: skip
    script = model = model_dir = sample = None
    if request.entry_script is not None:
        staged_script = stage.readable_folder_of(request.entry_script, "entry script")
        args += ["--volume", f"{staged_script.parent}:{APP}:ro"]
        script = f"{APP}/{request.entry_script.name}"
    target = request.model or request.model_dir
    if target is not None:
        mount = f"{MODELS}/{target.resolve().name}" if target.is_file() else MODELS
        target = stage.readable(target.resolve(), "model" if request.model is not None else "model folder")
        args += ["--volume", f"{target}:{mount}:ro"]
        model_dir = MODELS
        model = mount if request.model is not None else None
    if request.requirements is not None:
        requirements = stage.readable(request.requirements.resolve(), "requirements file")
        args += ["--volume", f"{requirements}:{CHECK}/requirements.txt:ro",
                 "--env", f"PREBAKE_EXTRA_REQUIREMENTS={CHECK}/requirements.txt"]  # fmt: skip
    if request.wheelhouse is not None:
        wheelhouse = stage.readable(request.wheelhouse.resolve(), "wheelhouse")
        args += ["--volume", f"{wheelhouse}:{CHECK}/wheelhouse:ro", "--network", "none",
                 "--env", f"PREBAKE_WHEELHOUSE={CHECK}/wheelhouse"]  # fmt: skip
    if request.ca_bundle is not None:  # a TLS-inspecting proxy between pip and the index
        ca_bundle = stage.readable(request.ca_bundle.resolve(), "CA bundle")
        args += ["--volume", f"{ca_bundle}:{CHECK}/ca.pem:ro", "--env", f"PIP_CERT={CHECK}/ca.pem"]
    if request.sample is not None:
        sample_file = stage.readable(request.sample.resolve(), "sample request")
        args += ["--volume", f"{sample_file}:{CHECK}/sample.json:ro"]
        sample = f"{CHECK}/sample.json"
    return [*args, reference, *_probe_args(request, script, model, model_dir, sample)]
