"""ONNX models (``.onnx``) through onnxruntime, on CUDA where asked for and available.

Inputs, outputs, dtypes and shapes come from the graph. Outputs keep the graph's names; a sequence of
maps (a scikit-learn classifier converted with ZipMap) becomes a ``[-1, classes]`` array, columns in the
order of the map's keys. The model is batchable when every input's first dimension is dynamic.

``parameters``: ``threads`` (or ``intra_op_num_threads``) and ``inter_op_num_threads``; onnxruntime's
defaults otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from prebake.errors import ModelLoadError
from prebake.runtimes.arrays import InputPlan, TensorCheck, rejected, v2_datatype
from prebake.runtimes.base import Runtime
from prebake.runtimes.registry import missing_framework
from prebake.types import InferenceRequest, InferenceResponse, TensorSpec

log = logging.getLogger("prebake.runtimes")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

#: onnxruntime's type strings -> numpy dtypes.
ONNX_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype("float32"),
    "tensor(double)": np.dtype("float64"),
    "tensor(float16)": np.dtype("float16"),
    "tensor(int8)": np.dtype("int8"),
    "tensor(int16)": np.dtype("int16"),
    "tensor(int32)": np.dtype("int32"),
    "tensor(int64)": np.dtype("int64"),
    "tensor(uint8)": np.dtype("uint8"),
    "tensor(uint16)": np.dtype("uint16"),
    "tensor(uint32)": np.dtype("uint32"),
    "tensor(uint64)": np.dtype("uint64"),
    "tensor(bool)": np.dtype("bool"),
    "tensor(string)": np.dtype("object"),
}


def select_providers(device: str, available: Sequence[str]) -> list[str]:
    """The execution providers for ``device`` given what onnxruntime offers.

    ``cuda`` needs the CUDA provider (onnxruntime-gpu) and says so where it is missing; ``auto`` takes
    it where offered and falls back to the CPU; ``cpu`` never uses it.

    >>> select_providers("auto", ["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    """
    if device == "cpu":
        return [CPU]
    if device not in ("auto", "cuda"):
        raise ModelLoadError(f"unknown device {device!r}; expected auto, cpu or cuda")
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise ModelLoadError(
            "device 'cuda' was asked for, but this onnxruntime offers only "
            f"{', '.join(available) or 'nothing'}; "
            "install onnxruntime-gpu (and CUDA), or use --device auto or cpu"
        )
    return [CPU]


def _shape(dims: Sequence[Any]) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in dims]


class OnnxRuntime(Runtime):
    name = "onnx"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: Any = None
        self.providers: list[str] = []
        self._input_names: list[str] = []
        self._output_names: list[str] = []
        self._errors: tuple[type[BaseException], ...] = ()

    def load(self) -> None:
        try:
            import onnxruntime as ort
            from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument
        except ImportError as exc:
            raise missing_framework("onnx", exc) from None
        self._errors = (InvalidArgument, Fail)
        self.providers = select_providers(self.settings.device, ort.get_available_providers())
        if CUDA in self.providers and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu[cuda,cudnn] finds CUDA and cuDNN in the nvidia-* wheels only when asked to.
            ort.preload_dlls()
        options = ort.SessionOptions()
        if "threads" in self.settings.parameters:
            options.intra_op_num_threads = int(self.settings.parameters["threads"])
        for key in ("intra_op_num_threads", "inter_op_num_threads"):
            if key in self.settings.parameters:
                setattr(options, key, int(self.settings.parameters[key]))
        try:
            self.session = ort.InferenceSession(
                str(self.settings.path), sess_options=options, providers=self.providers
            )
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.settings.path}: {type(exc).__name__}: {exc}") from exc
        log.info("model %r: onnxruntime providers %s", self.settings.name, self.session.get_providers())
        if CUDA in self.providers and CUDA not in self.session.get_providers():
            # onnxruntime falls back to CPU when its CUDA provider cannot start (no GPU, no driver).
            if self.settings.device == "cuda":
                raise ModelLoadError(
                    "device 'cuda' was asked for, but onnxruntime's CUDA provider did not start (no GPU "
                    "found, or no NVIDIA driver); use --device auto or cpu, or run on a machine with a GPU"
                )
            log.info("model %r: no GPU found (onnxruntime's CUDA provider did not start); serving on CPU",
                     self.settings.name)  # fmt: skip
        graph_inputs = self.session.get_inputs()
        self._input_names = [i.name for i in graph_inputs]
        checks = [TensorCheck(i.name, ONNX_TYPES.get(i.type), _shape(i.shape)) for i in graph_inputs]
        self.plan = InputPlan(checks)
        self.batchable = all(c.shape and c.shape[0] == -1 for c in checks)
        self._output_names = [o.name for o in self.session.get_outputs()]
        self.output_specs = [
            TensorSpec(
                o.name, v2_datatype(ONNX_TYPES[o.type]) if o.type in ONNX_TYPES else "FP32", _shape(o.shape)
            )
            for o in self.session.get_outputs()
        ]

    def unload(self) -> None:
        self.session = None

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        plan = self.plan
        assert plan is not None, "load() first"
        arrays = plan.arrays(request)
        # Compute only what the client asked for where it names outputs the graph has (the server
        # selects, and refuses unknown names, once for every runtime).
        wanted = request.outputs
        names = wanted if wanted and all(n in self._output_names for n in wanted) else self._output_names
        try:
            results = self.session.run(names, dict(zip(self._input_names, arrays, strict=True)))
        except self._errors as exc:
            raise rejected(plan, arrays, exc) from None
        return InferenceResponse(outputs={n: _as_array(r) for n, r in zip(names, results, strict=True)})

    def platform(self) -> str:
        return "onnxruntime_onnx"  # Triton's name for the same backend


def _as_array(result: Any) -> np.ndarray:
    if isinstance(result, list) and result and isinstance(result[0], dict):
        keys = list(result[0])
        return np.array([[row[k] for k in keys] for row in result])
    return np.asarray(result)
