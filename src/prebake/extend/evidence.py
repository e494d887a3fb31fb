"""What a saved model or a score.py says about the packages it needs, read without loading anything.

Pickles are scanned as bytes (never unpickled: a pickle can run code); ONNX files are read as protobuf by
hand (no onnx package needed); archives are listed, not extracted. Each finding is an ``Evidence``: the PyPI
package needed, the version the file records where it records one, and where that was read.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import json
import lzma
import re
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from prebake import frameworks

# Import names that are not their PyPI names, and packages that stand for a framework image.
IMPORT_TO_PACKAGE = {
    "sklearn": "scikit-learn",
    "keras": "tensorflow",
    "tf_keras": "tensorflow",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skl2onnx": "skl2onnx",
}
IGNORED_IMPORTS = frozenset({"azureml", "inference_schema", "prebake"})
_MAX_FILES = 200
# The pickles prebake loads, and the other names people give them (read for the modules they name).
_PICKLE_SUFFIXES = frameworks.PICKLE_SUFFIXES | {".sav", ".dat"}
_PICKLE_MODULES = re.compile(
    rb"(sklearn|xgboost|lightgbm|torch|tensorflow|keras|catboost|statsmodels)\.[A-Za-z_]"
)
_SKLEARN_VERSION = re.compile(
    rb"_sklearn_version.{0,12}?(\d+\.\d+(?:\.\d+)?(?:(?:a|b|rc|\.post|\.dev)\d+)?)", re.S
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One finding: ``package`` is needed (at ``version`` where recorded); ``source`` says where it was read."""

    package: str
    source: str
    version: str | None = None
    opset: int | None = None
    note: str = ""


def gather(path: Path) -> list[Evidence]:
    """Everything ``path`` (a model file, a folder of them, or a score.py) says it needs."""
    if not path.exists():
        raise FileNotFoundError(path)
    if path.name == "MLmodel" or (path / "MLmodel").is_file():
        return from_mlflow(path if path.is_dir() else path.parent)
    files = [path] if path.is_file() else _files(path)
    found: list[Evidence] = []
    for file in files:
        found.extend(from_file(file))
    return found


#: Set on evidence read from an MLflow model's requirements.txt: what it was logged with, which the image
#: may lack, but not what picks the image (a logging environment's requirements list its every package).
LOGGED_REQUIREMENT = "logged in requirements.txt"
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==\s*([^\s;,]+))?")


def from_mlflow(folder: Path) -> list[Evidence]:
    """An MLflow model's flavors (the framework and the version each recorded) and its requirements.

    A native flavor (sklearn, xgboost, lightgbm, onnx) needs only its framework in prebake; a skops-format
    sklearn model needs skops; any other flavor loads through mlflow (mlflow-skinny) and needs it too."""
    from prebake.runtimes.mlflow import NATIVE, choose_flavor
    from prebake.runtimes.mlflow_model import FLAVOR_PACKAGES, read_mlmodel

    model = read_mlmodel(folder)
    found: list[Evidence] = []
    versions = model.framework_versions()
    for flavor, (package, _) in FLAVOR_PACKAGES.items():
        if flavor in model.flavors:
            version = versions.get(package)
            recorded = f"{package} {version}" if version else package
            found.append(Evidence(package, f"MLmodel (flavor {flavor}) records {recorded}", version))
    try:
        flavor = choose_flavor(model)
    except Exception:  # noqa: BLE001 - the runtime says why at load; here only the packages matter
        flavor = "python_function"
    if model.flavors.get("sklearn", {}).get("serialization_format") == "skops" and flavor == "sklearn":
        found.append(Evidence("skops", "MLmodel: the sklearn model is saved in skops format"))
    if flavor not in NATIVE:
        found.append(
            Evidence(
                "mlflow-skinny", f"MLmodel: the {flavor} flavor loads through mlflow", model.mlflow_version
            )
        )
    named = {item.package for item in found}
    for line in model.requirements():
        match = _REQUIREMENT.match(line)
        if not match or match.group(1).lower() in named:
            continue
        package = "mlflow-skinny" if match.group(1).lower() == "mlflow" else match.group(1).lower()
        if package == "mlflow-skinny" and flavor in NATIVE:
            continue  # prebake loads native flavors without mlflow
        found.append(Evidence(package, f"requirements.txt: {line}", match.group(2), note=LOGGED_REQUIREMENT))
    return found


def _files(folder: Path) -> list[Path]:
    if (folder / "saved_model.pb").is_file():
        return [folder / "saved_model.pb"]
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)
    )
    return files[:_MAX_FILES]


#: discovery's runtime names -> the package that runtime needs.
_RUNTIME_PACKAGE = {f.runtime: f.package for f in frameworks.FRAMEWORKS if f.package and f.suffixes}


def from_name(name: str) -> list[Evidence]:
    """What a model's file name alone says (its suffix, as discovery reads it), for a model not on this
    machine (in a volume, a bucket); empty when the suffix names no framework."""
    suffix = Path(name).suffix.lower()
    package = _RUNTIME_PACKAGE.get(frameworks.SUFFIX_RUNTIMES.get(suffix, ""))
    return [Evidence(package, f"{Path(name).name}: a {suffix} file")] if package else []


def from_file(file: Path) -> list[Evidence]:
    """The evidence one file gives (empty for a file that says nothing about packages)."""
    suffix = file.suffix.lower()
    name = file.name
    if suffix == ".py":
        return from_script(file)
    if suffix == ".onnx":
        return [from_onnx(file)]
    if suffix in _PICKLE_SUFFIXES:
        return from_pickle(file)
    if suffix in (".pt", ".pth", ".pt2", ".ts"):
        return [from_torch(file)]
    if suffix == ".keras":
        return [from_keras(file)]
    if suffix == ".h5" or name == "saved_model.pb":
        return [
            Evidence(
                "tensorflow",
                name,
                note="a TensorFlow/Keras model (the file records no version prebake reads)",
            )
        ]
    if suffix in (".json", ".ubj", ".bst", ".model", ".txt"):
        return from_booster(file)
    return []


def from_script(file: Path) -> list[Evidence]:
    """The third-party packages a script imports (standard library, local modules and azureml left out)."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (SyntaxError, UnicodeDecodeError) as error:
        raise ValueError(f"{file} is not valid Python: {error}") from error
    local = {p.stem for p in file.parent.glob("*.py")} | {p.name for p in file.parent.iterdir() if p.is_dir()}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    found = []
    for name in sorted(names):
        if name in sys.stdlib_module_names or name in IGNORED_IMPORTS or name in local:
            continue
        found.append(
            Evidence(
                IMPORT_TO_PACKAGE.get(name, name.replace("_", "-").lower()), f"{file.name} imports {name}"
            )
        )
    return found


def _read_pickle_bytes(file: Path) -> bytes:
    data = file.read_bytes()
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(data)
        if data[:1] == b"\x78" and data[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
            return zlib.decompressobj().decompress(data)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return data
    return data


def from_pickle(file: Path) -> list[Evidence]:
    """Frameworks whose classes a pickle/joblib file references, and the scikit-learn version it records."""
    data = _read_pickle_bytes(file)
    modules = {match.group(1).decode() for match in _PICKLE_MODULES.finditer(data)}
    version = match.group(1).decode() if (match := _SKLEARN_VERSION.search(data)) else None
    found: list[Evidence] = []
    for module in sorted(modules - {"sklearn"}):
        package = IMPORT_TO_PACKAGE.get(module, module)
        found.append(Evidence(package, f"{file.name} holds {module} objects"))
    if "sklearn" in modules or version:
        where = (
            f"{file.name} was pickled with scikit-learn {version}"
            if version
            else f"{file.name} holds scikit-learn objects"
        )
        found.append(Evidence("scikit-learn", where, version=version))
    return found


def from_booster(file: Path) -> list[Evidence]:
    """XGBoost JSON models (they record the version that saved them) and LightGBM text models."""
    head = file.read_bytes()[:4096]
    if file.suffix.lower() == ".json":
        try:
            document = json.loads(file.read_bytes())
        except (ValueError, UnicodeDecodeError):
            return []
        if isinstance(document, dict) and "learner" in document:
            version = document.get("version")
            text = ".".join(str(v) for v in version) if isinstance(version, list) else None
            return [Evidence("xgboost", f"{file.name} was saved by XGBoost {text}", version=text)]
        return []
    if head.startswith(b"tree\n") or b"\nversion=v" in head[:200]:
        match = re.search(rb"version=v(\d+)", head)
        major = match.group(1).decode() if match else None
        return [
            Evidence(
                "lightgbm", f"{file.name} is a LightGBM model (format v{major})", note="format version only"
            )
        ]
    if file.suffix.lower() in (".ubj", ".bst") or head[:1] == b"{" and b"learner" in head:
        return [
            Evidence("xgboost", f"{file.name} is an XGBoost model", note="binary format: version not read")
        ]
    return []


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Top-level protobuf fields (number, value) of one message; lengths are skipped, not parsed."""
    fields: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = _varint(data, at)
            fields.append((number, value))
        elif kind == 2:
            length, at = _varint(data, at)
            fields.append((number, data[at : at + length]))
            at += length
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {kind}")
    return fields


def onnx_opset(data: bytes) -> tuple[int | None, str]:
    """(the default-domain opset, the producer) from an ONNX ModelProto's bytes."""
    opset: int | None = None
    producer = ""
    for number, value in _fields(data):
        if number == 2 and isinstance(value, bytes):
            producer = value.decode(errors="replace")
        elif number == 8 and isinstance(value, bytes):
            entry = dict(_fields(value))
            domain = entry.get(1, b"")
            if domain in (b"", b"ai.onnx") and isinstance(entry.get(2), int):
                opset = int(entry[2])
    return opset, producer


def from_onnx(file: Path) -> Evidence:
    """The ONNX model's opset (what decides which onnxruntime can run it)."""
    try:
        opset, producer = onnx_opset(file.read_bytes())
    except ValueError as error:
        raise ValueError(f"{file} is not a valid ONNX model: {error}") from error
    by = f" by {producer}" if producer else ""
    return Evidence("onnxruntime", f"{file.name} uses ONNX opset {opset}{by}", opset=opset)


def from_torch(file: Path) -> Evidence:
    """What kind of torch archive a .pt file is (torch archives record no torch version)."""
    note = "torch archives record no torch version"
    if not zipfile.is_zipfile(file):
        return Evidence("torch", f"{file.name} is a legacy (pre-1.6) torch pickle", note=note)
    names = zipfile.ZipFile(file).namelist()
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        kind = "a TorchScript archive"
    elif file.suffix == ".pt2" or any("/models/" in n or n.endswith("archive_format") for n in names):
        kind = "a torch.export archive"
    else:
        kind = "a torch.save archive"
    return Evidence("torch", f"{file.name} is {kind}", note=note)


def from_keras(file: Path) -> Evidence:
    """The Keras version a .keras archive records in its metadata.json."""
    try:
        with zipfile.ZipFile(file) as archive:
            metadata = json.loads(archive.read("metadata.json"))
        version = str(metadata.get("keras_version")) if metadata.get("keras_version") else None
    except (zipfile.BadZipFile, KeyError, ValueError):
        version = None
    return Evidence("tensorflow", f"{file.name} was saved by Keras {version}", note=f"keras {version}")
