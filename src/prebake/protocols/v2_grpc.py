"""Open Inference Protocol V2 over gRPC (``inference.GRPCInferenceService``): decode, call, encode.

Health, metadata, ModelInfer (raw_input_contents or typed contents in; raw_output_contents out, which
tritonclient.grpc and KServe's clients read), Triton's ModelStreamInfer, ModelConfig and
ModelStatistics, and the model repository RPCs tritonclient uses. Trace and log settings RPCs are not
offered: clients get UNIMPLEMENTED.

The servicer raises the errors.py family like every protocol; the server's gRPC transport
(server/grpc_transport.py) creates the server, runs every RPC through the request pipeline and maps
errors to gRPC status codes. This module creates no server.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format

import prebake
from prebake import codec, datatypes, v2ext
from prebake.errors import NotFound, PrebakeError, echo
from prebake.protocols.grpc_v2 import grpc_predict_v2_pb2 as pb
from prebake.protocols.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from prebake.types import Backend, InferenceRequest, InferenceResponse, SharedMemory

logger = logging.getLogger("prebake.grpc")

EXTENSIONS = v2ext.EXTENSIONS


def parameter_value(param: pb.InferParameter | pb.ModelRepositoryParameter) -> Any:
    """The Python value of an InferParameter (or repository parameter)."""
    choice = param.WhichOneof("parameter_choice")
    return getattr(param, choice) if choice else None


def set_parameter(param: pb.InferParameter, value: Any) -> None:
    # bool before int: a bool is an int in Python.
    if isinstance(value, bool | np.bool_):
        param.bool_param = bool(value)
    elif isinstance(value, int | np.integer):
        if value < 0 or value < 2**63:
            param.int64_param = int(value)
        else:
            param.uint64_param = int(value)
    elif isinstance(value, float | np.floating):
        param.double_param = float(value)
    elif isinstance(value, str):
        param.string_param = value
    else:
        param.string_param = codec.dumps(value).decode()


def _parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: parameter_value(value) for key, value in params.items()}


def decode_infer_request(
    message: pb.ModelInferRequest, shared_memory: SharedMemory | None = None
) -> tuple[InferenceRequest, dict[str, v2ext.ShmReference]]:
    """A ModelInferRequest as the internal request, and the requested outputs that go to shared memory.

    As in Triton (src/grpc/infer_handler.cc), raw_input_contents hold, in order, the data of the inputs
    that have neither contents nor a shared memory region; the messages are Triton's.
    """
    if not message.inputs:
        raise codec.bad("the inference request has no inputs")
    model = echo(message.model_name)
    raw = message.raw_input_contents
    inputs: dict[str, np.ndarray] = {}
    input_parameters: dict[str, dict[str, Any]] = {}
    next_raw = 0
    for index, tensor in enumerate(message.inputs):
        name = tensor.name
        if not name:
            raise codec.bad(f"input {index} has no name")
        if name in inputs:
            raise codec.bad(f"input '{echo(name)}' is given twice")
        params = _parameters(tensor.parameters)
        shm = v2ext.shm_reference(name, params)
        shape = list(tensor.shape)
        if shm is not None:
            if tensor.HasField("contents"):
                raise codec.bad(
                    f"unexpected 'content' provided when using shared memory for input tensor '{echo(name)}' "
                    f"for model '{model}'"
                )
            if shared_memory is None:
                raise codec.bad(
                    f"input '{echo(name)}' names shared memory region '{shm.region}', but this server has none"
                )
            chunk = shared_memory.read(shm.region, shm.offset, shm.byte_size)
            array = codec.decode_binary_tensor(name, tensor.datatype, shape, chunk)
        elif tensor.HasField("contents"):
            if raw:
                raise codec.bad(
                    f"contents field must not be specified when using raw_input_contents for '{echo(name)}' "
                    f"for model '{model}'"
                )
            array = _from_contents(name, tensor.datatype, shape, tensor.contents)
        elif next_raw < len(raw):
            array = codec.decode_binary_tensor(name, tensor.datatype, shape, raw[next_raw])
            next_raw += 1
        else:
            raise codec.bad(
                f"unable to find data for input tensor '{echo(name)}' for model '{model}' in request."
            )
        inputs[name] = array
        if params:
            input_parameters[name] = params
    if next_raw != len(raw):
        raise codec.bad(f"raw_input_contents has {len(raw)} entries for {next_raw} inputs that take them")
    outputs = None
    classes: dict[str, int] = {}
    shm_outputs: dict[str, v2ext.ShmReference] = {}
    if message.outputs:
        outputs = []
        for requested in message.outputs:
            params = _parameters(requested.parameters)
            count = v2ext.classification_count(requested.name, params)
            where = v2ext.shm_reference(requested.name, params)
            if where is not None:
                if count:
                    raise codec.bad("output can't set both 'shared_memory_region' and 'classification'")
                if shared_memory is None:
                    raise codec.bad(
                        f"output '{echo(requested.name)}' names shared memory region '{where.region}', but this "
                        "server has none"
                    )
                shared_memory.check(where.region, where.offset, where.byte_size)
                shm_outputs[requested.name] = where
            if count:
                classes[requested.name] = count
            outputs.append(requested.name)
    request = InferenceRequest(
        inputs=inputs,
        parameters=_parameters(message.parameters),
        outputs=outputs,
        id=message.id or None,
        input_parameters=input_parameters,
        classification=classes,
    )
    return request, shm_outputs


def _from_contents(
    name: str, datatype: str, shape: list[int], contents: pb.InferTensorContents
) -> np.ndarray:
    dtype = codec.numpy_dtype(datatype, name)
    shape = codec.check_shape(name, shape)
    row = datatypes.lookup(datatype)
    field = row.contents if row is not None else None
    if field is None:
        raise codec.bad(f"input '{echo(name)}': {datatype} data must be sent in raw_input_contents")
    values = getattr(contents, field)
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    else:
        try:
            array = np.array(values, dtype=dtype.newbyteorder("="))
        except OverflowError as exc:
            raise codec.bad(f"input '{echo(name)}': contents do not fit {datatype}: {exc}") from None
    if array.size != math.prod(shape):
        raise codec.bad(
            f"input '{echo(name)}': shape {shape} needs {math.prod(shape)} elements, {field} has {array.size}"
        )
    return array.reshape(shape)


def encode_infer_response(
    response: InferenceResponse,
    shm_outputs: Mapping[str, v2ext.ShmReference] | None = None,
    shared_memory: SharedMemory | None = None,
) -> pb.ModelInferResponse:
    """The internal response (its outputs already selected) as a ModelInferResponse with raw_output_contents;
    outputs in ``shm_outputs`` are written to their regions and get an empty raw entry (every output
    has one, so clients find the others by position, as Triton does)."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
    )
    for key, value in (response.parameters or {}).items():
        set_parameter(message.parameters[key], value)
    for name, array in response.outputs.items():
        array = np.asarray(array)
        if shm_outputs and name in shm_outputs:
            entry = codec.write_shm_output(name, array, shm_outputs[name], shared_memory)
            tensor = message.outputs.add(name=name, datatype=entry["datatype"], shape=entry["shape"])
            for key, value in entry["parameters"].items():
                set_parameter(tensor.parameters[key], value)
            message.raw_output_contents.append(b"")
            continue
        message.outputs.add(name=name, datatype=codec.datatype_of(array), shape=array.shape)
        message.raw_output_contents.append(codec.encode_binary_tensor(array))
    return message


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService backed by a Backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.backend.live())

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.backend.ready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        # A model this server does not have is not ready (no error), as Triton answers.
        return pb.ModelReadyResponse(ready=self.backend.model_ready(request.name, request.version or None))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="prebake", version=prebake.__version__, extensions=EXTENSIONS)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        meta = self.backend.metadata(request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name or request.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        size = sum(len(raw) for raw in request.raw_input_contents) or request.ByteSize()
        regions = self.backend.shared_memory()
        internal, shm_outputs = await codec.off_loop(size, decode_infer_request, request, regions)
        response = await self.backend.infer(request.model_name, request.model_version or None, internal)
        return await codec.off_loop(
            sum(getattr(a, "nbytes", 0) for a in response.outputs.values()),
            encode_infer_response,
            response,
            shm_outputs,
            regions,
        )

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        # One request at a time, in order; a failed request answers with error_message, as Triton's
        # stream does, and the stream goes on.
        async for request in request_iterator:
            try:
                yield pb.ModelStreamInferResponse(infer_response=await self.ModelInfer(request, context))
            except PrebakeError as error:
                yield pb.ModelStreamInferResponse(error_message=error.message)
            except Exception:
                logger.exception("gRPC stream request failed")
                yield pb.ModelStreamInferResponse(
                    error_message="internal server error; the server log has details"
                )

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        # Triton's configuration RPC (tritonclient's get_model_config, perf_analyzer), from metadata.
        version = request.version or None
        meta = self.backend.metadata(request.name, version)
        batch = self.backend.max_batch_size(request.name, version)
        config = pb.ModelConfig(
            name=meta.name or request.name,
            platform=meta.platform,
            backend=meta.platform,
            max_batch_size=batch,
            input=[
                pb.ModelInput(
                    name=t.name,
                    data_type=_config_type(t.datatype),
                    format=v2ext.config_format(t),
                    dims=v2ext.config_dims(t, batch),
                )
                for t in meta.inputs
            ],
            output=[
                pb.ModelOutput(
                    name=t.name, data_type=_config_type(t.datatype), dims=v2ext.config_dims(t, batch)
                )
                for t in meta.outputs
            ],
        )
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        # The same numbers as GET /v2/models/stats; an empty name asks for every model, as in Triton.
        stats = self.backend.statistics(request.name or None, request.version or None)
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        models = self.backend.repository_index()
        if request.ready:
            models = [m for m in models if m.get("state") == "READY"]
        entry = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[
                entry(
                    name=m["name"],
                    version=m.get("version") or "",
                    state=m.get("state") or "",
                    reason=m.get("reason") or "",
                )
                for m in models
            ]
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        v2ext.check_load_parameters(request.model_name, request.parameters, allowed=("config",))
        config = None
        if "config" in request.parameters:
            config = v2ext.load_overrides(request.model_name, parameter_value(request.parameters["config"]))
        await self.backend.load(request.model_name, config)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        # unload_dependents only matters for ensembles, which prebake does not have.
        v2ext.check_load_parameters(request.model_name, request.parameters, allowed=("unload_dependents",))
        await self.backend.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    async def SystemSharedMemoryStatus(
        self, request: pb.SystemSharedMemoryStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryStatusResponse:
        regions = self.backend.shared_memory().status(request.name or None)
        status = pb.SystemSharedMemoryStatusResponse.RegionStatus
        return pb.SystemSharedMemoryStatusResponse(regions={r["name"]: status(**r) for r in regions})

    async def SystemSharedMemoryRegister(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryRegisterResponse:
        self.backend.shared_memory().register(request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    async def SystemSharedMemoryUnregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        self.backend.shared_memory().unregister(request.name or None)
        return pb.SystemSharedMemoryUnregisterResponse()

    # No CUDA shared memory: answered as a Triton built without GPUs answers.
    async def CudaSharedMemoryStatus(
        self, request: pb.CudaSharedMemoryStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.CudaSharedMemoryStatusResponse:
        if request.name:
            raise NotFound(f"Unable to find cuda shared memory region: '{echo(request.name)}'")
        return pb.CudaSharedMemoryStatusResponse()

    async def CudaSharedMemoryRegister(
        self, request: pb.CudaSharedMemoryRegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.CudaSharedMemoryRegisterResponse:
        raise v2ext.no_cuda_shared_memory(request.name)

    async def CudaSharedMemoryUnregister(
        self, request: pb.CudaSharedMemoryUnregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.CudaSharedMemoryUnregisterResponse:
        return pb.CudaSharedMemoryUnregisterResponse()


def _config_type(datatype: str) -> str:
    row = datatypes.lookup(datatype)
    return row.config if row is not None else "TYPE_INVALID"


def register(server: grpc.aio.Server, backend: Backend) -> None:
    """Add the V2 servicer for ``backend`` to ``server`` (created by the server's gRPC transport)."""
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(backend), server)
