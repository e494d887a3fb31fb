"""Open Inference Protocol V2 over REST, with Triton's binary tensor data and model repository extensions.

    GET  /v2                                           server metadata
    GET  /v2/models/{name}[/versions/{version}]        model metadata
    GET  /v2/models/{name}[/versions/{version}]/ready  model readiness (200, or 503 with ready: false)
    GET  /v2/models/{name}[/versions/{version}]/config Triton-style model configuration, from metadata
    POST /v2/models/{name}[/versions/{version}]/infer  inference
    POST /v2/repository/index                          every model and its state
    POST /v2/repository/models/{name}/load | /unload   model repository control
    GET  /v2/systemsharedmemory[/region/{r}]/status    system shared memory regions
    POST /v2/systemsharedmemory/region/{r}/register    (Triton's shared memory extension; the regions
    POST /v2/systemsharedmemory[/region/{r}]/unregister are the server's: see server/shm.py)
    .../v2/cudasharedmemory/...                         answered as a Triton built without GPUs answers

Server liveness and readiness (/v2/health/live, /v2/health/ready) belong to every server, whatever it
speaks, and live in the server core. Errors use the spec's ``{"error": ...}`` body, which
``tritonclient.http`` reads; a malformed request is a 400, as the spec and Triton's clients expect.
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import Any

import numpy as np

import prebake
from prebake import codec, datatypes, v2ext
from prebake.errors import NotFound, PayloadTooLarge, echo
from prebake.http import Request, Response, Route
from prebake.types import Backend, InferenceRequest, TensorSpec

EXTENSIONS = ["binary_tensor_data", *v2ext.EXTENSIONS]
HEADER_LENGTH = "inference-header-content-length"
OCTET_STREAM = "application/octet-stream"
DEFAULT_MAX_INFLATED = 256 * 1024 * 1024


def routes(backend: Backend, *, max_inflated_bytes: int = DEFAULT_MAX_INFLATED) -> list[Route]:
    """The V2 REST routes for ``backend``.

    ``max_inflated_bytes`` caps a gzip or deflate request body once inflated (tritonclient can compress
    requests), so a small compressed body cannot expand past the server's memory.
    """
    server_metadata = codec.dumps(
        {"name": "prebake", "version": prebake.__version__, "extensions": EXTENSIONS}
    )

    async def metadata_server(request: Request) -> Response:
        return Response(server_metadata)

    async def metadata_model(request: Request) -> Response:
        name, version = _model(request)
        meta = backend.metadata(name, version)
        doc: dict[str, Any] = {
            "name": meta.name or name,
            "versions": meta.versions,
            "platform": meta.platform,
            "inputs": [t.to_dict() for t in meta.inputs],
            "outputs": [t.to_dict() for t in meta.outputs],
        }
        return Response(codec.dumps(doc))

    async def model_config(request: Request) -> Response:
        # Triton's configuration extension, which tritonclient's get_model_config and perf_analyzer read;
        # built from the metadata, as prebake has no config.pbtxt.
        name, version = _model(request)
        meta = backend.metadata(name, version)
        batch = backend.max_batch_size(name, version)
        doc = {
            "name": meta.name or name,
            "platform": meta.platform,
            "backend": meta.platform,
            "max_batch_size": batch,
            "input": [{**_config_tensor(t, batch), "format": v2ext.config_format(t)} for t in meta.inputs],
            "output": [_config_tensor(t, batch) for t in meta.outputs],
        }
        return Response(codec.dumps(doc))

    async def model_ready(request: Request) -> Response:
        name, version = _model(request)
        ready = backend.model_ready(name, version)
        if not ready:
            backend.metadata(name, version)  # 404 for a model (or version) this server does not have
        return Response(codec.dumps({"name": name, "ready": ready}), status=200 if ready else 503)

    async def infer(request: Request) -> Response:
        name, version = _model(request)
        size = len(request.body)
        body = await codec.off_loop(size, _inflate, request, max_inflated_bytes)
        header_length = _header_length(request)
        regions = backend.shared_memory()
        if header_length == 0:
            decoded = await codec.off_loop(len(body), _raw_binary_request, backend, name, version, body)
        else:
            decoded = await codec.off_loop(len(body), codec.decode_v2_request, body, header_length, regions)
        response = await backend.infer(name, version, decoded.request)
        encode = functools.partial(
            codec.encode_v2_response,
            binary_outputs=decoded.binary_outputs,
            binary_default=decoded.binary_default,
            shm_outputs=decoded.shm_outputs,
            shared_memory=regions,
        )
        payload, json_length = await codec.off_loop(_output_bytes(response), encode, response)
        if json_length is None:
            return Response(payload)
        return Response(
            payload,
            content_type=OCTET_STREAM,
            headers=[("Inference-Header-Content-Length", str(json_length))],
        )

    async def repository_index(request: Request) -> Response:
        doc = codec.loads(request.body) if request.body.strip() else {}
        if not isinstance(doc, dict):
            raise codec.bad("the repository index request must be a JSON object")
        models = backend.repository_index()
        if doc.get("ready"):
            models = [m for m in models if m.get("state") == "READY"]
        return Response(codec.dumps(models))

    async def statistics(request: Request) -> Response:
        name, version = request.path_params.get("name"), request.path_params.get("version")
        return Response(codec.dumps({"model_stats": backend.statistics(name, version)}))

    async def load(request: Request) -> Response:
        name = request.path_params["name"]
        params = _repository_parameters(request, name, allowed=("config",))
        config = v2ext.load_overrides(name, params["config"]) if "config" in params else None
        await backend.load(name, config)
        return Response(b"", content_type=None)

    async def unload(request: Request) -> Response:
        # unload_dependents only matters for ensembles, which prebake does not have: accepted, no effect.
        _repository_parameters(request, request.path_params["name"], allowed=("unload_dependents",))
        await backend.unload(request.path_params["name"])
        return Response(b"", content_type=None)

    async def shm_status(request: Request) -> Response:
        region = request.path_params.get("region")
        return Response(codec.dumps(backend.shared_memory().status(region)))

    async def shm_register(request: Request) -> Response:
        region = request.path_params["region"]
        doc = codec.loads(request.body) if request.body.strip() else {}
        key, offset, size = v2ext.shm_registration(doc)
        backend.shared_memory().register(region, key, offset, size)
        return Response(b"", content_type=None)

    async def shm_unregister(request: Request) -> Response:
        backend.shared_memory().unregister(request.path_params.get("region"))
        return Response(b"", content_type=None)

    async def cuda_status(request: Request) -> Response:
        # No CUDA shared memory here: no regions, and an unknown one is Triton's 404.
        region = request.path_params.get("region")
        if region is not None:
            raise NotFound(f"Unable to find cuda shared memory region: '{echo(region)}'")
        return Response(b"[]")

    async def cuda_register(request: Request) -> Response:
        raise v2ext.no_cuda_shared_memory(request.path_params["region"])

    async def cuda_unregister(request: Request) -> Response:
        return Response(b"", content_type=None)  # nothing registered: nothing to do, as Triton answers

    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    system = "/v2/systemsharedmemory"
    cuda = "/v2/cudasharedmemory"
    return [
        Route(("GET",), "/v2", metadata_server),
        Route(("POST",), f"{model}/infer", infer),
        Route(("POST",), f"{versioned}/infer", infer),
        Route(("GET",), f"{model}/ready", model_ready),
        Route(("GET",), f"{versioned}/ready", model_ready),
        Route(("GET",), f"{model}/config", model_config),
        Route(("GET",), f"{versioned}/config", model_config),
        Route(("GET",), "/v2/models/stats", statistics),
        Route(("GET",), f"{model}/stats", statistics),
        Route(("GET",), f"{versioned}/stats", statistics),
        Route(("GET",), model, metadata_model),
        Route(("GET",), versioned, metadata_model),
        Route(("POST",), "/v2/repository/index", repository_index),
        Route(("POST",), "/v2/repository/models/{name}/load", load),
        Route(("POST",), "/v2/repository/models/{name}/unload", unload),
        Route(("GET",), f"{system}/status", shm_status),
        Route(("GET",), f"{system}/region/{{region}}/status", shm_status),
        Route(("POST",), f"{system}/region/{{region}}/register", shm_register),
        Route(("POST",), f"{system}/unregister", shm_unregister),
        Route(("POST",), f"{system}/region/{{region}}/unregister", shm_unregister),
        Route(("GET",), f"{cuda}/status", cuda_status),
        Route(("GET",), f"{cuda}/region/{{region}}/status", cuda_status),
        Route(("POST",), f"{cuda}/region/{{region}}/register", cuda_register),
        Route(("POST",), f"{cuda}/unregister", cuda_unregister),
        Route(("POST",), f"{cuda}/region/{{region}}/unregister", cuda_unregister),
    ]


def _output_bytes(response: Any) -> int:
    return sum(getattr(a, "nbytes", 0) for a in response.outputs.values())


def _config_tensor(spec: TensorSpec, max_batch_size: int) -> dict[str, Any]:
    row = datatypes.lookup(spec.datatype)
    data_type = row.config if row is not None else "TYPE_INVALID"
    return {"name": spec.name, "data_type": data_type, "dims": v2ext.config_dims(spec, max_batch_size)}


def _model(request: Request) -> tuple[str, str | None]:
    return request.path_params["name"], request.path_params.get("version") or None


def _header_length(request: Request) -> int | None:
    value = request.header(HEADER_LENGTH)
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise codec.bad(f"Inference-Header-Content-Length must be an integer, got {value!r}") from None
    if length < 0:
        raise codec.bad("Inference-Header-Content-Length must not be negative")
    return length


def _inflate(request: Request, limit: int) -> bytes:
    """The body, inflated where Content-Encoding says gzip or deflate, and refused (400) unless the
    compressed data is whole: a gzip body without its trailer (cut short) or with bytes after its end
    is not the body the client meant. Several gzip members one after another are one body (RFC 1952)."""
    encoding = (request.header("content-encoding") or "identity").strip().lower()
    if encoding == "identity":
        return request.body
    if encoding not in ("gzip", "deflate"):
        raise codec.bad(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    data = request.body
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            inflater = zlib.decompressobj(wbits=wbits)
            part = inflater.decompress(data, limit - size + 1)
            size += len(part)
            if size > limit or inflater.unconsumed_tail:
                raise PayloadTooLarge(f"the request body inflates to more than {limit} bytes")
            parts.append(part)
            if not inflater.eof:
                raise codec.bad(f"the {encoding} request body ends before its compressed data does")
            data = inflater.unused_data
            if not data:
                break
            if encoding != "gzip" or not data.startswith(b"\x1f\x8b"):
                raise codec.bad(f"{len(data)} bytes follow the end of the {encoding} request body")
    except zlib.error as exc:
        raise codec.bad(f"the request body is not valid {encoding} data: {exc}") from None
    return b"".join(parts)


def _raw_binary_request(backend: Backend, name: str, version: str | None, body: bytes) -> codec.V2Request:
    """Inference-Header-Content-Length: 0: the body is one input's raw bytes; the model's metadata
    gives its name, datatype and shape; every output goes back as binary data."""
    meta = backend.metadata(name, version)
    if len(meta.inputs) != 1:
        raise codec.bad(
            f"a request without an inference header needs a model with exactly one input; "
            f"'{name}' describes {len(meta.inputs)}"
        )
    spec = meta.inputs[0]
    shape = list(spec.shape)
    if spec.datatype == "BYTES":
        shape = [1]
    else:
        itemsize = codec.numpy_dtype(spec.datatype, spec.name).itemsize
        known = math.prod(d for d in shape if d >= 0)
        unknown = [i for i, d in enumerate(shape) if d < 0]
        if len(unknown) > 1:
            raise codec.bad(f"input '{spec.name}' has several variable dimensions; send an inference header")
        if unknown:
            if known == 0 or len(body) % (known * itemsize):
                raise codec.bad(
                    f"input '{spec.name}': {len(body)} bytes do not fill whole {spec.datatype} rows of "
                    f"shape {spec.shape}"
                )
            shape[unknown[0]] = len(body) // (known * itemsize)
    array: np.ndarray = codec.decode_binary_tensor(spec.name, spec.datatype, shape, body)
    return codec.V2Request(
        request=InferenceRequest(inputs={spec.name: array}), binary_outputs={}, binary_default=True
    )


def _repository_parameters(request: Request, model: str, *, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    doc = codec.loads(request.body)
    params = doc.get("parameters") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(params, dict | None):
        raise codec.bad("the request must be a JSON object with an optional 'parameters' object")
    v2ext.check_load_parameters(model, params or {}, allowed=allowed)
    return dict(params or {})
