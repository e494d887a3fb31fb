"""Tiny ONNX models for the Triton extension tests, written with the onnx package into a model repository.

simple     INPUT0, INPUT1 INT32 [-1, 16] -> OUTPUT0 = sum, OUTPUT1 = difference (max_batch_size 8)
strings    INPUT0 BYTES [-1, -1] -> OUTPUT0, the same strings
scores     INPUT0 FP32 [-1, 5] -> SCORES, the same numbers, with labels (a batching classifier)
flat       INPUT0 FP32 [5] -> SCORES, the same numbers, no labels, no batching
image      data_0 FP32 [3, 4, 4] (NCHW) -> fc, 2 numbers
seq        INPUT, START, END, READY INT32 [-1, 1], CORRID UINT64 [-1, 1]
           -> OUTPUT = READY * (INPUT + 10 * START + 100 * END) + CORRID
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABELS = ["zero", "one", "two", "three", "four"]


def _save(directory: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: Any = ()) -> None:
    from onnx import helper, save

    graph = helper.make_graph(nodes, directory.name, inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    (directory / "1").mkdir(parents=True)
    save(model, str(directory / "1" / "model.onnx"))


def _settings(directory: Path, **settings: Any) -> None:
    (directory / "model-settings.json").write_text(json.dumps(settings))


def build(root: Path) -> Path:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def t(name: str, elem: int, dims: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, elem, dims)

    i32, f32 = TensorProto.INT32, TensorProto.FLOAT
    _save(
        root / "simple",
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        [t("INPUT0", i32, ["b", 16]), t("INPUT1", i32, ["b", 16])],
        [t("OUTPUT0", i32, ["b", 16]), t("OUTPUT1", i32, ["b", 16])],
    )
    _settings(root / "simple", max_batch_size=8)

    _save(
        root / "strings",
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        [t("INPUT0", TensorProto.STRING, ["b", "n"])],
        [t("OUTPUT0", TensorProto.STRING, ["b", "n"])],
    )
    _settings(root / "strings", max_batch_size=8)

    _save(
        root / "scores",
        [helper.make_node("Identity", ["INPUT0"], ["SCORES"])],
        [t("INPUT0", f32, ["b", 5])],
        [t("SCORES", f32, ["b", 5])],
    )
    (root / "scores" / "labels.txt").write_text("\n".join(LABELS) + "\n")
    _settings(
        root / "scores",
        max_batch_size=8,
        outputs=[{"name": "SCORES", "datatype": "FP32", "shape": [-1, 5], "labels": "labels.txt"}],
    )

    _save(
        root / "flat",
        [helper.make_node("Identity", ["INPUT0"], ["SCORES"])],
        [t("INPUT0", f32, [5])],
        [t("SCORES", f32, [5])],
    )

    _save(
        root / "image",
        [
            helper.make_node("ReduceMean", ["data_0"], ["means"], axes=[1, 2], keepdims=0),
            helper.make_node("Slice", ["means", "zero", "two"], ["fc"]),
        ],
        [t("data_0", f32, [3, 4, 4])],
        [t("fc", f32, [2])],
        [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "two"),
        ],
    )
    _settings(
        root / "image", inputs=[{"name": "data_0", "datatype": "FP32", "shape": [3, 4, 4], "format": "NCHW"}]
    )

    _save(
        root / "seq",
        [
            helper.make_node("Mul", ["START", "ten"], ["s"]),
            helper.make_node("Mul", ["END", "hundred"], ["e"]),
            helper.make_node("Add", ["INPUT", "s"], ["a"]),
            helper.make_node("Add", ["a", "e"], ["b"]),
            helper.make_node("Mul", ["READY", "b"], ["r"]),
            helper.make_node("Cast", ["CORRID"], ["c"], to=i32),
            helper.make_node("Add", ["r", "c"], ["OUTPUT"]),
        ],
        [
            t("INPUT", i32, ["b", 1]),
            t("START", i32, ["b", 1]),
            t("END", i32, ["b", 1]),
            t("READY", i32, ["b", 1]),
            t("CORRID", TensorProto.UINT64, ["b", 1]),
        ],
        [t("OUTPUT", i32, ["b", 1])],
        [
            numpy_helper.from_array(np.array([[10]], dtype=np.int32), "ten"),
            numpy_helper.from_array(np.array([[100]], dtype=np.int32), "hundred"),
        ],
    )
    _settings(
        root / "seq",
        max_batch_size=8,
        sequence={"START": "start", "END": "end", "READY": "ready", "CORRID": "correlation_id"},
    )
    return root
