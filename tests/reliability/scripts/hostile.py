"""An entry script that misbehaves on request: {"kind": ...} picks how (schema-decorated, so a deep body
or query value also reaches inference-schema's path)."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@input_schema("kind", StandardPythonParameterType("ok"))
def run(kind):
    if kind == "keyboard-interrupt":
        raise KeyboardInterrupt()
    if kind == "base-exception":
        raise BaseException("not an Exception")
    if kind == "status-600":
        return AMLResponse("out of range", 600)
    if kind == "non-latin-1-header":
        return AMLResponse("ok", 200, {"X-Name": "snow \u2603"})
    if kind == "bad-header-name":
        return AMLResponse("ok", 200, {"X Bad:Name": "v"})
    return {"kind": kind}
