"""Open Inference Protocol V2 over gRPC (``inference.GRPCInferenceService``), on a port of its own.

Health, metadata, ModelInfer (raw_input_contents or typed contents in; raw_output_contents out, which
tritonclient.grpc and KServe's clients read), Triton's ModelStreamInfer and ModelConfig (from metadata)
and the model repository RPCs tritonclient uses. Errors map the PrebakeError status onto gRPC codes
(400 INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE, ...). ModelStatistics, trace, log settings and
shared memory RPCs are not offered: clients get UNIMPLEMENTED.

Every worker process binds the same port: gRPC sets SO_REUSEPORT on Linux, and the kernel spreads
connections across the workers, as it does for the HTTP socket.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf import json_format

import prebake
from prebake import codec
from prebake.errors import PrebakeError, echo
from prebake.protocols.grpc_v2 import grpc_predict_v2_pb2 as pb
from prebake.protocols.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from prebake.types import Backend, InferenceRequest, InferenceResponse

logger = logging.getLogger("prebake.grpc")

EXTENSIONS = ["model_repository"]
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    431: grpc.StatusCode.INVALID_ARGUMENT,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# Which typed field of InferTensorContents holds each datatype (FP16 has none: raw contents only).
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

T = TypeVar("T")


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC status code for an HTTP status carried by a PrebakeError."""
    if status in _CODES:
        return _CODES[status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL


Authorize = Callable[[list[tuple[bytes, bytes]]], None]


async def _guard(
    context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]], authorize: Authorize | None = None
) -> T:
    """Run ``work`` once ``authorize`` accepts the call's metadata; turn a PrebakeError into its gRPC
    status and anything else into INTERNAL."""
    try:
        if authorize is not None:
            authorize(_metadata(context))
        return await work()
    except PrebakeError as error:
        await context.abort(grpc_code(error.status), error.message)
    except Exception:
        logger.exception("gRPC request failed")
        await context.abort(grpc.StatusCode.INTERNAL, "internal server error; the server log has details")
    raise AssertionError("unreachable: abort raises")


def _metadata(context: grpc.aio.ServicerContext) -> list[tuple[bytes, bytes]]:
    # The same (lower-case name, value) byte pairs an HTTP check reads, so one check serves both.
    pairs: list[tuple[bytes, bytes]] = []
    for key, value in context.invocation_metadata() or ():
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        pairs.append((key.lower().encode("latin-1"), raw))
    return pairs


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


def decode_infer_request(message: pb.ModelInferRequest) -> InferenceRequest:
    """A ModelInferRequest as the internal request."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise codec.bad(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs")
    if raw and any(tensor.HasField("contents") for tensor in message.inputs):
        raise codec.bad("send tensor data in raw_input_contents or in contents, not both")
    if not message.inputs:
        raise codec.bad("the inference request has no inputs")
    inputs: dict[str, np.ndarray] = {}
    input_parameters: dict[str, dict[str, Any]] = {}
    for index, tensor in enumerate(message.inputs):
        name = tensor.name
        if not name:
            raise codec.bad(f"input {index} has no name")
        if name in inputs:
            raise codec.bad(f"input '{echo(name)}' is given twice")
        shape = list(tensor.shape)
        if raw:
            array = codec.decode_binary_tensor(name, tensor.datatype, shape, raw[index])
        else:
            array = _from_contents(name, tensor.datatype, shape, tensor.contents)
        inputs[name] = array
        if tensor.parameters:
            input_parameters[name] = _parameters(tensor.parameters)
    outputs = None
    if message.outputs:
        outputs = []
        for requested in message.outputs:
            params = requested.parameters
            if "classification" in params and parameter_value(params["classification"]):
                raise codec.bad(
                    f"output '{echo(requested.name)}': the classification extension is not supported"
                )
            outputs.append(requested.name)
    return InferenceRequest(
        inputs=inputs,
        parameters=_parameters(message.parameters),
        outputs=outputs,
        id=message.id or None,
        input_parameters=input_parameters,
    )


def _from_contents(
    name: str, datatype: str, shape: list[int], contents: pb.InferTensorContents
) -> np.ndarray:
    dtype = codec.numpy_dtype(datatype, name)
    shape = codec.check_shape(name, shape)
    field = _CONTENTS_FIELD.get(datatype)
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


def encode_infer_response(response: InferenceResponse, requested: list[str] | None) -> pb.ModelInferResponse:
    """The internal response as a ModelInferResponse with raw_output_contents."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
    )
    for key, value in (response.parameters or {}).items():
        set_parameter(message.parameters[key], value)
    for name, array in codec.select_outputs(response, requested).items():
        message.outputs.add(name=name, datatype=codec.datatype_of(array), shape=array.shape)
        message.raw_output_contents.append(codec.encode_binary_tensor(array))
    return message


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService backed by a Backend. ``authorize`` (given the call's metadata, raising
    Unauthorized to refuse) guards every RPC except the ServerLive and ServerReady probes."""

    def __init__(self, backend: Backend, authorize: Authorize | None = None) -> None:
        self.backend = backend
        self.authorize = authorize

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
        async def work() -> pb.ModelReadyResponse:
            return pb.ModelReadyResponse(
                ready=self.backend.model_ready(request.name, request.version or None)
            )

        return await _guard(context, work, self.authorize)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        async def work() -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(
                name="prebake", version=prebake.__version__, extensions=EXTENSIONS
            )

        return await _guard(context, work, self.authorize)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        async def work() -> pb.ModelMetadataResponse:
            meta = self.backend.metadata(request.name, request.version or None)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=meta.name or request.name,
                versions=meta.versions,
                platform=meta.platform,
                inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
                outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
            )

        return await _guard(context, work, self.authorize)

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        internal = decode_infer_request(request)
        response = await self.backend.infer(request.model_name, request.model_version or None, internal)
        response.model_name = response.model_name or request.model_name
        if response.id is None:
            response.id = internal.id
        return encode_infer_response(response, internal.outputs)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        return await _guard(context, lambda: self._infer(request), self.authorize)

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        # One request at a time, in order; a failed request answers with error_message, as Triton's
        # stream does, and the stream goes on.
        async def authorized() -> None:
            return None

        await _guard(context, authorized, self.authorize)
        async for request in request_iterator:
            try:
                yield pb.ModelStreamInferResponse(infer_response=await self._infer(request))
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
        async def work() -> pb.ModelConfigResponse:
            meta = self.backend.metadata(request.name, request.version or None)
            config = pb.ModelConfig(
                name=meta.name or request.name,
                platform=meta.platform,
                backend=meta.platform,
                max_batch_size=0,
                input=[
                    pb.ModelInput(name=t.name, data_type=_config_type(t.datatype), dims=t.shape)
                    for t in meta.inputs
                ],
                output=[
                    pb.ModelOutput(name=t.name, data_type=_config_type(t.datatype), dims=t.shape)
                    for t in meta.outputs
                ],
            )
            return pb.ModelConfigResponse(config=config)

        return await _guard(context, work, self.authorize)

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        # The same numbers as GET /v2/models/stats; an empty name asks for every model, as in Triton.
        async def work() -> pb.ModelStatisticsResponse:
            stats = self.backend.statistics(request.name or None, request.version or None)
            return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

        return await _guard(context, work, self.authorize)

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        async def work() -> pb.RepositoryIndexResponse:
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

        return await _guard(context, work, self.authorize)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        async def work() -> pb.RepositoryModelLoadResponse:
            _refuse_parameters(request.parameters, allowed=())
            await self.backend.load(request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await _guard(context, work, self.authorize)

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        async def work() -> pb.RepositoryModelUnloadResponse:
            # unload_dependents only matters for ensembles, which prebake does not have.
            _refuse_parameters(request.parameters, allowed=("unload_dependents",))
            await self.backend.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await _guard(context, work, self.authorize)


def _config_type(datatype: str) -> str:
    # Triton's config names BYTES "TYPE_STRING"; every other V2 datatype is TYPE_ plus its name.
    name = "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"
    try:
        pb.DataType.Value(name)
    except ValueError:
        return "TYPE_INVALID"
    return name


def _refuse_parameters(params: Mapping[str, Any], *, allowed: tuple[str, ...]) -> None:
    unsupported = sorted(set(params) - set(allowed))
    if unsupported:
        raise codec.bad(f"unsupported load/unload parameters: {', '.join(unsupported)}")


async def start(
    backend: Backend,
    *,
    host: str,
    port: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
    authorize: Authorize | None = None,
) -> grpc.aio.Server:
    """Start serving GRPCInferenceService on ``host:port``; the caller stops the returned server.

    ``max_message_bytes`` bounds requests and responses (gRPC's own default, 4 MiB, is small for tensors).
    ``authorize`` gets each call's metadata as (lower-case name, value) byte pairs, as the HTTP API-key
    check reads headers, and raises Unauthorized to refuse; with API keys configured, pass it, or the
    gRPC port is open to anyone who can reach it. Example::

        await start(backend, host="0.0.0.0", port=8081, authorize=lambda md: auth.check(keys, md))
    """
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(backend, authorize), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise PrebakeError(f"cannot listen for gRPC on {address}: {exc}") from None
    if bound == 0:
        raise PrebakeError(f"cannot listen for gRPC on {address}")
    await server.start()
    return server
