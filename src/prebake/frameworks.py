"""The frameworks prebake serves, as data, once: every other place derives its facts from this table.

    runtime     catalog       package        suffixes                            KServe     pickles
    sklearn     sklearn       scikit-learn   .joblib .pkl .pickle .skops         sklearn    yes
    xgboost     xgboost       xgboost        .json .ubj .bst                     xgboost    no
    lightgbm    lightgbm      lightgbm       .txt                                lightgbm   no
    onnx        onnxruntime   onnxruntime    .onnx                               onnx       no
    torch       pytorch       torch          .pt .pth .pt2                       pytorch    no
    tensorflow  tensorflow    tensorflow     .keras .h5 (and SavedModel folders) tensorflow no
    mlflow      mlflow        mlflow-skinny  (an MLmodel folder)                 mlflow     by flavor
    transformers transformers transformers   (a save_pretrained folder: .safetensors) huggingface no
    sagemaker   -             -              (a code/inference.py folder)        -          runs code

``runtime`` is the name in model-settings.json and the server's registry; ``catalog`` the name of the
images that carry it (src/prebake/images/catalog.toml). Discovery (runtimes/discover.py), ``prebake run``
and ``check`` (which files an image loads), ``recommend`` (which package a model needs), ``deploy
kserve`` (the modelFormat) and the runtime registry read it. A leaf: it imports nothing from prebake.
"""

from __future__ import annotations

from typing import NamedTuple


class Framework(NamedTuple):
    runtime: str  # prebake's runtime name
    target: str  # "module:Class" of the runtime, imported only when used
    install: str  # what to pip install where the framework is missing
    catalog: str | None = None  # the catalog's framework name (None: no image of its own)
    package: str | None = None  # the distribution a model of it needs (recommend, check)
    suffixes: tuple[str, ...] = ()  # model files it loads, by suffix
    kserve: str | None = None  # KServe's InferenceService modelFormat name
    pickles: tuple[str, ...] = ()  # the suffixes whose loading runs code (refused unless allowed)
    also_loads: tuple[str, ...] = ()  # other runtimes whose files its image loads too (their wrappers)
    # Files that belong to a folder model of it: its image accepts a folder of them, but alone such a file
    # is no model (a .safetensors file needs its config.json and tokenizer), so discovery does not serve it.
    folder_files: tuple[str, ...] = ()


FRAMEWORKS: tuple[Framework, ...] = (
    Framework(
        "sklearn",
        "prebake.runtimes.sklearn:SklearnRuntime",
        "scikit-learn joblib",
        catalog="sklearn",
        package="scikit-learn",
        suffixes=(".joblib", ".pkl", ".pickle", ".skops"),
        kserve="sklearn",
        pickles=(".joblib", ".pkl", ".pickle"),
    ),
    Framework(
        "xgboost",
        "prebake.runtimes.xgboost:XGBoostRuntime",
        "xgboost",
        catalog="xgboost",
        package="xgboost",
        suffixes=(".json", ".ubj", ".bst"),
        kserve="xgboost",
        also_loads=("sklearn",),  # XGBClassifier pickles: the image has scikit-learn
    ),
    Framework(
        "lightgbm",
        "prebake.runtimes.lightgbm:LightGBMRuntime",
        "lightgbm",
        catalog="lightgbm",
        package="lightgbm",
        suffixes=(".txt",),
        kserve="lightgbm",
        also_loads=("sklearn",),  # LGBMClassifier pickles: the image has scikit-learn
    ),
    Framework(
        "onnx",
        "prebake.runtimes.onnx:OnnxRuntime",
        "onnxruntime (or onnxruntime-gpu)",
        catalog="onnxruntime",
        package="onnxruntime",
        suffixes=(".onnx",),
        kserve="onnx",
    ),
    Framework(
        "torch",
        "prebake.runtimes.torch:TorchRuntime",
        "torch",
        catalog="pytorch",
        package="torch",
        suffixes=(".pt", ".pth", ".pt2"),
        kserve="pytorch",
    ),
    Framework(
        "tensorflow",
        "prebake.runtimes.tensorflow:TensorFlowRuntime",
        "tensorflow (or tensorflow-cpu)",
        catalog="tensorflow",
        package="tensorflow",
        suffixes=(".keras", ".h5"),
        kserve="tensorflow",
    ),
    Framework(
        "mlflow",
        "prebake.runtimes.mlflow:MlflowRuntime",
        "the model's framework (its requirements.txt); mlflow-skinny for python_function models",
        catalog="mlflow",
        package="mlflow-skinny",
        kserve="mlflow",
    ),
    Framework(
        "transformers",
        "prebake.runtimes.transformers:TransformersRuntime",
        "transformers torch",
        catalog="transformers",
        package="transformers",
        kserve="huggingface",
        folder_files=(".safetensors",),
    ),
    Framework(
        "sagemaker",
        "prebake.runtimes.sagemaker:SageMakerScriptRuntime",
        "nothing: it runs your script",
    ),
)

BY_RUNTIME: dict[str, Framework] = {f.runtime: f for f in FRAMEWORKS}
BY_CATALOG: dict[str, Framework] = {f.catalog: f for f in FRAMEWORKS if f.catalog}
#: Model file suffix -> runtime.
SUFFIX_RUNTIMES: dict[str, str] = {suffix: f.runtime for f in FRAMEWORKS for suffix in f.suffixes}
PICKLE_SUFFIXES: frozenset[str] = frozenset(s for f in FRAMEWORKS for s in f.pickles)


def image_suffixes(catalog: str) -> frozenset[str]:
    """The model file suffixes the catalog images of ``catalog`` load (none for the minimal image)."""
    framework = BY_CATALOG.get(catalog)
    if framework is None:
        return frozenset()
    own = set(framework.suffixes) | set(framework.folder_files)
    for other in framework.also_loads:
        own.update(BY_RUNTIME[other].suffixes)
    return frozenset(own)


def supported_text() -> str:
    """The model files prebake serves, for error messages."""
    parts = [f"{f.runtime} {'/'.join(f.suffixes)}" for f in FRAMEWORKS if f.suffixes]
    return ", ".join(parts) + (
        ", a TensorFlow SavedModel folder, an MLflow model folder (MLmodel), "
        "a SageMaker model.tar.gz or code/inference.py folder, "
        "a Hugging Face transformers folder (save_pretrained: config.json, model.safetensors, tokenizer)"
    )
