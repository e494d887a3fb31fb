"""inference-schema support for Azure ML entry scripts: is run() decorated, did its input fail to convert,
and the swagger documents the reference server serves at ``GET /swagger.json?version=2|3|3.1``.

inference-schema is used only when the score.py itself imported it (then it is in ``sys.modules``), so a
script without schema decorators never loads it. Everything here runs once, at load time, except
``conversion_failure``, which runs only when run() raised.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from prebake.errors import NotFound

# inference-schema's names for the swagger versions, and the aliases the reference server answers to.
ALL_VERSIONS = ("2.0", "3.0", "3.1")
_ALIASES: dict[str, tuple[str, ...]] = {"2": ("2", "2.0"), "3": ("3", "3.0"), "3.1": ("3.1",)}
_VALID = {alias for aliases in _ALIASES.values() for alias in aliases}
_DEFAULT_SCHEMA: dict[str, Any] = {"type": "object", "example": {}}


def _schema_util() -> Any:
    return sys.modules.get("inference_schema.schema_util")


def is_schema_decorated(run: Callable[..., Any]) -> bool:
    """True where run() carries @input_schema or @output_schema (then the script imported them)."""
    util = _schema_util()
    return bool(util is not None and util.is_schema_decorated(run))


def conversion_failure(exc: BaseException) -> str | None:
    """The name of the run() parameter whose schema conversion raised ``exc``, or None if the user's code did.

    The inference-schema decorators convert each argument before run()'s body starts. The failure is theirs
    when the traceback, past the caller's frame, passes only through inference-schema (and wrapt) frames
    before it reaches ``_deserialize_input_argument``; that frame's ``param_name`` is the parameter.
    """
    tb: TracebackType | None = exc.__traceback__
    if tb is None:
        return None
    tb = tb.tb_next  # skip the frame that called run()
    while tb is not None:
        code = tb.tb_frame.f_code
        module = tb.tb_frame.f_globals.get("__name__", "")
        if not (module.startswith("inference_schema") or module.startswith("wrapt")):
            return None
        if code.co_name == "_deserialize_input_argument":
            name = tb.tb_frame.f_locals.get("param_name")
            return name if isinstance(name, str) else None
        tb = tb.tb_next
    return None


class SwaggerDocs:
    """The swagger JSON documents for one entry script, serialized once at load.

    Where ``app_root`` holds a user's file (``swagger.json`` or ``swagger2.json`` for version 2,
    ``swagger3.json``, ``swagger3.1.json``) it is served instead, as the reference server does.
    """

    def __init__(self, documents: dict[str, bytes], supported: list[str]) -> None:
        self._documents = documents
        self.supported = supported

    @classmethod
    def build(cls, run: Callable[..., Any], app_root: Path) -> SwaggerDocs:
        service_name = os.environ.get("SERVICE_NAME", "ML service")
        service_version = os.environ.get("SERVICE_VERSION", "1.0")
        prefix = os.environ.get("SERVICE_PATH_PREFIX", "")
        prefix = f"/{prefix.strip('/')}" if prefix else ""

        util = _schema_util()
        if util is not None and util.is_schema_decorated(run):
            input_schema, output_schema = util.get_input_schema(run), util.get_output_schema(run)
            versions = set(util.get_supported_versions(run))
        else:
            input_schema = output_schema = _DEFAULT_SCHEMA
            versions = set(ALL_VERSIONS)

        documents: dict[str, bytes] = {}
        supported: list[str] = []
        for version, aliases in _ALIASES.items():
            spec = _user_swagger(app_root, version)
            if spec is None and versions & set(aliases):
                spec = _generate(version, service_name, service_version, prefix, input_schema, output_schema)
            if spec is None:
                continue
            supported.append(version)
            body = orjson.dumps(spec)
            for alias in aliases:
                documents[alias] = body
        return cls(documents, sorted(supported))

    def get(self, version: str | None) -> bytes:
        """The document for ``version`` (None means "2"); NotFound for versions that are not valid or not
        available for this script, with the reference server's messages."""
        version = "2" if version is None else version
        listed = ", ".join(self.supported)
        if version not in _VALID:
            raise NotFound(f"Swagger version [{version}] is not valid. Supported versions: [{listed}].")
        document = self._documents.get(version)
        if document is None:
            raise NotFound(
                f"Swagger version [{version}] is not supported for the scoring script. "
                f"Supported swagger versions: [{listed}]."
            )
        return document


def _user_swagger(app_root: Path, version: str) -> dict[str, Any] | None:
    names = ["swagger.json", "swagger2.json"] if version == "2" else [f"swagger{version}.json"]
    for name in names:
        path = app_root / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        try:
            document: dict[str, Any] = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        return document
    return None


def _generate(
    version: str, name: str, service_version: str, prefix: str, input_schema: Any, output_schema: Any
) -> dict[str, Any]:
    spec = (
        _swagger2(name, service_version, prefix)
        if version == "2"
        else _swagger3(name, service_version, prefix)
    )
    if version == "2":
        spec["definitions"]["ServiceInput"] = input_schema
        spec["definitions"]["ServiceOutput"] = output_schema
    else:
        spec["components"]["schemas"]["ServiceInput"] = input_schema
        spec["components"]["schemas"]["ServiceOutput"] = output_schema
        if version == "3.1":
            spec["openapi"] = "3.1.0"
    return spec


# The reference server's templates (swagger2_template.json, swagger3_template.json), as data.
_HEALTH_DESCRIPTION = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTHY_DESCRIPTION = (
    "If service is up and running, this response will be returned with the content 'Healthy'"
)
_SCORE_DESCRIPTION = "Run web service's model and get the prediction output"
_INPUT_DESCRIPTION = "The input payload for executing the real-time machine learning service."
_OUTPUT_DESCRIPTION = (
    "The service processed the input correctly and provided a result prediction, if applicable."
)
_ERROR_DESCRIPTION = "The service failed to execute due to an error."
_BEARER = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "description": "For example: Bearer abc123",
}


def _info(name: str, service_version: str) -> dict[str, str]:
    return {
        "title": name,
        "description": f"API specification for the Azure Machine Learning service {name}",
        "version": service_version,
    }


def _placeholder_schemas() -> dict[str, Any]:
    return {
        "ServiceInput": {
            "type": "object",
            "properties": {"param": {"type": "object", "additionalProperties": {"type": "object"}}},
        },
        "ServiceOutput": {"type": "object", "additionalProperties": {"type": "object"}},
        "ErrorResponse": {"type": "object", "properties": {"message": {"type": "string"}}},
    }


def _swagger2(name: str, service_version: str, prefix: str) -> dict[str, Any]:
    error = {"description": _ERROR_DESCRIPTION, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": _info(name, service_version),
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {"Bearer": dict(_BEARER)},
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESCRIPTION,
                    "responses": {
                        "200": {
                            "description": _HEALTHY_DESCRIPTION,
                            "schema": {"type": "string"},
                            "examples": {"application/json": "Healthy"},
                        },
                        "default": dict(error),
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": _INPUT_DESCRIPTION,
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": _OUTPUT_DESCRIPTION,
                            "schema": {"$ref": "#/definitions/ServiceOutput"},
                        },
                        "default": dict(error),
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "type": "integer",
                            "enum": [2, 3],
                        }
                    ],
                    "responses": {
                        "200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                        "default": dict(error),
                    },
                }
            },
        },
        "definitions": _placeholder_schemas(),
    }


def _swagger3(name: str, service_version: str, prefix: str) -> dict[str, Any]:
    def error() -> dict[str, Any]:
        return {
            "description": _ERROR_DESCRIPTION,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        }

    return {
        "openapi": "3.0.3",
        "info": _info(name, service_version),
        "security": [{"Bearer": []}],
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESCRIPTION,
                    "responses": {
                        "200": {
                            "description": _HEALTHY_DESCRIPTION,
                            "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}},
                        },
                        "default": error(),
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": _INPUT_DESCRIPTION,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ServiceInput"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": _OUTPUT_DESCRIPTION,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}
                            },
                        },
                        "default": error(),
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "enum": [2, 3]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "default": error(),
                    },
                }
            },
        },
        "components": {"schemas": _placeholder_schemas(), "securitySchemes": {"Bearer": dict(_BEARER)}},
    }
