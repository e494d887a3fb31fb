"""Tiny models of each framework, made on the host, with an Azure-style score.py that serves them.

The smoke test mounts one of these into an image and checks the prediction that comes back against the one
the host computed. Frameworks are imported inside each maker, so only the one asked for must be installed.
A case also names its model file, so a no-code path (``prebake serve MODEL_PATH``) can use the same models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prebake.errors import ImageError

# Four iris-like rows: enough to tell a real prediction from a constant.
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]

# The score.py every case uses: azmlinfsrv's contract (init() once, run(raw body) per request), with the
# framework-specific part in LOAD and PREDICT below.
SCORE_PY = '''"""Smoke-test entry script written by prebake ({kind})."""
import json
import os

model = None


def init():
    global model
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "{model_file}")
{load}


def run(raw_data):
    rows = json.loads(raw_data)["data"]
{predict}
    return {{"predictions": predictions}}
'''


@dataclass(frozen=True, slots=True)
class SmokeCase:
    """A model directory and score.py ready to mount, and the predictions the host expects back."""

    kind: str
    model_dir: Path
    model_file: str
    script_dir: Path
    entry_script: str
    request: dict[str, Any]
    expected: list[Any]
    tolerance: float  # 0 means an exact match (class labels)

    def matches(self, predictions: Any) -> bool:
        """Whether the image's predictions equal the host's (within tolerance for scores)."""
        if not isinstance(predictions, list):
            return False
        if self.tolerance == 0:
            return predictions == self.expected
        flat_got, flat_want = _flatten(predictions), _flatten(self.expected)
        try:
            return len(flat_got) == len(flat_want) and all(
                abs(float(a) - float(b)) <= self.tolerance for a, b in zip(flat_got, flat_want, strict=True)
            )
        except (TypeError, ValueError):
            return False  # not numbers at all


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for element in value for item in _flatten(element)]
    return [value]


def _indent(code: str) -> str:
    return "\n".join(f"    {line}" for line in code.strip().splitlines())


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data.astype("float32"), data.target


def _entry_script(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    w, b = [0.5, -0.25, 1.0, 2.0], 0.125
    (model_dir / "weights.json").write_text(json.dumps({"w": w, "b": b}), encoding="utf-8")
    load = "with open(path) as handle:\n    model = json.load(handle)"
    predict = 'predictions = [sum(w * x for w, x in zip(model["w"], row)) + model["b"] for row in rows]'
    expected = [sum(wi * x for wi, x in zip(w, row, strict=True)) + b for row in ROWS]
    return "weights.json", load, predict, expected, 1e-9


def _sklearn(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    model = LogisticRegression(max_iter=500).fit(x, y)
    joblib.dump(model, model_dir / "model.joblib")
    expected = model.predict(ROWS).tolist()
    load = "import joblib\nmodel = joblib.load(path)"
    predict = "predictions = model.predict(rows).tolist()"
    return "model.joblib", load, predict, expected, 0


def _xgboost(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    import numpy as np
    import xgboost as xgb

    x, y = _iris()
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(x, y), 5)
    booster.save_model(str(model_dir / "model.json"))
    expected = booster.predict(xgb.DMatrix(np.array(ROWS, dtype="float32"))).tolist()
    load = "import xgboost\nmodel = xgboost.Booster()\nmodel.load_model(path)"
    predict = (
        "import numpy, xgboost\n"
        'predictions = model.predict(xgboost.DMatrix(numpy.array(rows, dtype="float32"))).tolist()'
    )
    return "model.json", load, predict, expected, 1e-5


def _lightgbm(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    import lightgbm as lgb
    import numpy as np

    x, y = _iris()
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 4, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y), 5)
    booster.save_model(str(model_dir / "model.txt"))
    expected = np.asarray(booster.predict(ROWS)).tolist()
    load = "import lightgbm\nmodel = lightgbm.Booster(model_file=path)"
    predict = "predictions = model.predict(rows).tolist()"
    return "model.txt", load, predict, expected, 1e-5


def _onnxruntime(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    # y = x @ w + b: the smallest real graph, made with the onnx helper (no converter needed).
    w = np.array([[0.5, -1.0], [0.25, 0.5], [1.0, 0.0], [-0.5, 2.0]], dtype="float32")
    b = np.array([0.1, -0.2], dtype="float32")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "prebake-smoke",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    # An old IR version and opset on purpose: every onnxruntime release of recent years reads them.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    (model_dir / "model.onnx").write_bytes(model.SerializeToString())
    expected = (np.array(ROWS, dtype="float32") @ w + b).tolist()
    load = (
        'import onnxruntime\nmodel = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])'
    )
    predict = (
        'import numpy\npredictions = model.run(None, {"x": numpy.array(rows, dtype="float32")})[0].tolist()'
    )
    return "model.onnx", load, predict, expected, 1e-5


def _pytorch(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    import torch

    torch.manual_seed(0)
    module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval())
    module.save(str(model_dir / "model.pt"))
    with torch.no_grad():
        expected = module(torch.tensor(ROWS)).tolist()
    load = "import torch\nmodel = torch.jit.load(path)\nmodel.eval()"
    predict = "import torch\nwith torch.no_grad():\n    predictions = model(torch.tensor(rows)).tolist()"
    return "model.pt", load, predict, expected, 1e-5


def _tensorflow(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.save(model_dir / "model.keras")
    expected = model.predict(np.array(ROWS, dtype="float32"), verbose=0).tolist()
    load = "import keras\nmodel = keras.saving.load_model(path)"
    predict = (
        'import numpy\npredictions = model.predict(numpy.array(rows, dtype="float32"), verbose=0).tolist()'
    )
    return "model.keras", load, predict, expected, 1e-4


#: The texts the transformers case sends (its "rows"): the request's data, as texts.
TEXTS = ["i love this movie", "the film was terrible and boring", "hello world", "paris is in france"]


def _transformers(model_dir: Path) -> tuple[str, str, str, list[Any], float]:
    """A two-layer BERT classifier with a WordPiece tokenizer trained here, written by save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(TEXTS * 4, trainers.WordPieceTrainer(vocab_size=120, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )  # fmt: skip
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=fast.pad_token_id,
    )  # fmt: skip
    config.num_labels = 3
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(model_dir)
    fast.save_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**fast(TEXTS, padding=True, return_tensors="pt")).logits
    expected = logits.argmax(-1).tolist()
    load = (
        "from transformers import pipeline\n"
        'model = pipeline("text-classification", model=os.environ["AZUREML_MODEL_DIR"], device="cpu")'
    )
    predict = "predictions = [int(r['label'].split('_')[-1]) for r in model(rows)]"
    # "": the model is the directory itself (config.json, model.safetensors, tokenizer), not one file.
    return "", load, predict, expected, 0


MAKERS: dict[str, Callable[[Path], tuple[str, str, str, list[Any], float]]] = {
    "entry-script": _entry_script,
    "sklearn": _sklearn,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "onnxruntime": _onnxruntime,
    "pytorch": _pytorch,
    "tensorflow": _tensorflow,
    "transformers": _transformers,
}
# The host package each maker needs, for a message the user can act on.
HOST_PACKAGES = {
    "entry-script": "",
    "sklearn": "scikit-learn joblib",
    "xgboost": "xgboost scikit-learn",
    "lightgbm": "lightgbm scikit-learn",
    "onnxruntime": "onnx numpy",
    "pytorch": "torch",
    "tensorflow": "tensorflow-cpu",
    "transformers": "transformers tokenizers torch",
}


def make_case(kind: str, directory: Path) -> SmokeCase:
    """Make the tiny model of ``kind`` and its score.py under ``directory``."""
    if kind not in MAKERS:
        raise ImageError(f"no tiny model for {kind!r}; known: {', '.join(MAKERS)}")
    model_dir, script_dir = directory / "model", directory / "app"
    model_dir.mkdir(parents=True, exist_ok=True)
    script_dir.mkdir(parents=True, exist_ok=True)
    try:
        model_file, load, predict, expected, tolerance = MAKERS[kind](model_dir)
    except ImportError as error:
        raise ImageError(
            f"making the tiny {kind} model needs {HOST_PACKAGES[kind]} on this machine "
            f"(pip install {HOST_PACKAGES[kind]}): {error}"
        ) from error
    script = SCORE_PY.format(kind=kind, model_file=model_file, load=_indent(load), predict=_indent(predict))
    (script_dir / "score.py").write_text(script, encoding="utf-8")
    # Mounted read-only into a container running as uid 1000: make sure that user can read them.
    for path in [model_dir, script_dir, *model_dir.iterdir(), *script_dir.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return SmokeCase(
        kind=kind,
        model_dir=model_dir,
        model_file=model_file,
        script_dir=script_dir,
        entry_script="score.py",
        request={"data": TEXTS if kind == "transformers" else ROWS},
        expected=expected,
        tolerance=tolerance,
    )
