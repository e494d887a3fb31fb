"""PyTorch models: TorchScript (``.pt``/``.pth`` saved with ``torch.jit.save``) and ``torch.export``
archives (``.pt2`` saved with ``torch.export.save``), on CPU or CUDA.

Inputs are passed to ``forward`` positionally in the order of its arguments, taken from the request by
those arguments' names (the metadata gives them; unnamed ones are ``input-0``..., taken by any name). A ``.pt2`` archive records each input's dtype and shape,
which are checked and cast to; for TorchScript the settings file's ``inputs`` do that, and otherwise
float64 inputs (what JSON gives) are cast to float32. Outputs: a tensor is ``output-0``, a tuple or list
``output-0``, ``output-1``..., a dict keeps its keys; the settings file's ``outputs`` rename them in order.

Device: ``auto`` is CUDA where ``torch.cuda.is_available()``, else CPU; ``cuda`` without CUDA refuses to
load. Inputs go to the device and outputs come back to host numpy arrays.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from prebake.errors import ModelLoadError
from prebake.runtimes.arrays import (
    InputPlan,
    TensorCheck,
    name_outputs,
    plan_from_settings,
    rejected,
    v2_datatype,
)
from prebake.runtimes.base import Runtime
from prebake.runtimes.registry import missing_framework
from prebake.types import InferenceRequest, InferenceResponse, TensorSpec

log = logging.getLogger("prebake.runtimes")

_FLOAT64 = np.dtype("float64")
_FLOAT32 = np.dtype("float32")


def resolve_device(device: str, cuda_available: bool) -> str:
    """``cpu`` or ``cuda`` for a ``--device`` value; ModelLoadError for ``cuda`` without CUDA.

    >>> resolve_device("auto", False)
    'cpu'
    """
    if device == "cpu":
        return "cpu"
    if device not in ("auto", "cuda"):
        raise ModelLoadError(f"unknown device {device!r}; expected auto, cpu or cuda")
    if cuda_available:
        return "cuda"
    if device == "cuda":
        raise ModelLoadError(
            "device 'cuda' was asked for, but torch sees no CUDA device "
            "(torch.cuda.is_available() is False); use --device auto or cpu, "
            "or a CUDA build of torch on a machine with a GPU"
        )
    return "cpu"


def is_torchscript(path: Path) -> bool:
    """True where ``path`` is a TorchScript archive (a zip holding compiled code), not a torch.save pickle."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


class TorchRuntime(Runtime):
    name = "torch"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model: Any = None
        self.device = "cpu"
        self._torch: Any = None
        self._cast_float64 = True
        self._casts: list[Any] = []
        self._output_names = [s.name for s in self.settings.outputs]

    def load(self) -> None:
        try:
            import torch
        except ImportError as exc:
            raise missing_framework("torch", exc) from None
        self._torch = torch
        self.device = resolve_device(self.settings.device, torch.cuda.is_available())
        path = self.settings.path
        try:
            if path.suffix == ".pt2":
                checks = self._load_exported(torch, path)
            else:
                checks = self._load_script(torch, path)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
        settings_plan = plan_from_settings(self.settings.inputs)
        self._cast_float64 = settings_plan is None and all(c.dtype is None for c in checks)
        # "input-0" is no Python argument name: it is ours, for a forward() whose arguments are unnamed.
        self.plan = settings_plan or InputPlan(checks, any_name=[c.name for c in checks] == ["input-0"])
        # Inputs the model takes as bfloat16 arrive as float32 (numpy has no bfloat16): cast on the device.
        self._casts = [torch.bfloat16 if c.datatype == "BF16" else None for c in self.plan.checks]
        card = f" ({torch.cuda.get_device_name()})" if self.device == "cuda" else ""
        log.info("model %r: torch on %s%s", self.settings.name, self.device, card)
        if self.device == "cpu" and self.settings.device == "auto" and torch.version.cuda:
            # A CUDA build (a GPU image) on a machine without a GPU: say so, as it serves on CPU.
            log.info("model %r: no GPU found (torch %s for CUDA %s sees no CUDA device); serving on CPU",
                     self.settings.name, torch.__version__, torch.version.cuda)  # fmt: skip

    def _load_script(self, torch: Any, path: Path) -> list[TensorCheck]:
        if not is_torchscript(path):
            raise ModelLoadError(
                f"{path.name} is not a TorchScript archive (a torch.save pickle or state_dict cannot be "
                "served "
                "without its code): save it with torch.jit.save(torch.jit.script(model)) or torch.export.save"
            )
        self.model = torch.jit.load(str(path), map_location=self.device).eval()
        args = [a for a in self.model.forward.schema.arguments[1:] if a.default_value is None]
        return [TensorCheck(a.name, None, None) for a in args] or [TensorCheck("input-0", None, None)]

    def _load_exported(self, torch: Any, path: Path) -> list[TensorCheck]:
        from torch.export.graph_signature import InputKind

        program = torch.export.load(str(path))
        if self.device != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, self.device)
        placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        checks = []
        for spec in program.graph_signature.input_specs:
            if spec.kind != InputKind.USER_INPUT:
                continue
            value = placeholders[spec.arg.name].meta.get("val")
            dtype = _numpy_dtype(torch, value.dtype) if value is not None else None
            shape = _shape(value.shape) if value is not None else None
            bf16 = value is not None and value.dtype == torch.bfloat16
            checks.append(TensorCheck(spec.arg.name, dtype, shape, "BF16" if bf16 else None))
        output_node = next(n for n in program.graph.nodes if n.op == "output")
        for i, node in enumerate(output_node.args[0]):
            value = getattr(node, "meta", {}).get("val")
            if value is not None and hasattr(value, "dtype"):
                name = self._output_names[i] if i < len(self._output_names) else f"output-{i}"
                spec_dtype = _numpy_dtype(torch, value.dtype)
                # bfloat16 outputs come back as float32 (see _to_host).
                datatype = v2_datatype(spec_dtype) if spec_dtype is not None else "FP32"
                self.output_specs.append(TensorSpec(name, datatype, _shape(value.shape)))
        self.batchable = all(c.shape and c.shape[0] == -1 for c in checks)
        self.model = program.module()
        return checks

    def unload(self) -> None:
        self.model = None
        if self.device == "cuda" and self._torch is not None:
            self._torch.cuda.empty_cache()

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        plan, torch = self.plan, self._torch
        assert plan is not None, "load() first"
        arrays = plan.arrays(request)
        on_cpu = self.device == "cpu"
        try:
            with torch.inference_mode():
                tensors = []
                for a, cast in zip(arrays, self._casts, strict=True):
                    if self._cast_float64 and a.dtype == _FLOAT64:
                        a = a.astype(_FLOAT32)
                    elif not a.flags.writeable:
                        a = a.copy()  # torch refuses to share memory it may not write
                    t = torch.from_numpy(a)
                    if not on_cpu or cast is not None:
                        t = t.to(self.device, dtype=cast, non_blocking=True)
                    tensors.append(t)
                result = self.model(*tensors)
                outputs = name_outputs(_to_host(result), self._output_names)
        except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
            raise rejected(plan, arrays, exc) from None
        return InferenceResponse(outputs=outputs)

    def platform(self) -> str:
        return "pytorch_export" if self.settings.path.suffix == ".pt2" else "pytorch_torchscript"


def _to_host(result: Any) -> Any:
    if hasattr(result, "detach"):
        result = result.detach()
        if str(result.dtype) == "torch.bfloat16":
            result = result.float()  # numpy has no bfloat16; float32 holds every value exactly
        return result.cpu().numpy()
    if isinstance(result, dict):
        return {k: _to_host(v) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return [_to_host(v) for v in result]
    return result


def _numpy_dtype(torch: Any, dtype: Any) -> np.dtype[Any] | None:
    try:
        return np.dtype(torch.empty((), dtype=dtype).numpy().dtype)
    except (TypeError, RuntimeError):
        return None  # bfloat16 and friends have no numpy dtype: send what the client sent


def _shape(dims: Any) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in dims]
