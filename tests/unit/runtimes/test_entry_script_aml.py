"""azureml.contrib.services: AMLRequest, rawhttp and AMLResponse behave as score.py files expect, without Flask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from azureml.contrib.services import aml_request
from azureml.contrib.services.aml_request import AMLRequest, BadRequest, UnsupportedMediaType, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def request(method: str = "POST", body: bytes = b"", query: bytes = b"", **headers: str) -> AMLRequest:
    return AMLRequest(
        method=method,
        path="/score",
        query_string=query,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        body=body,
        root_url="http://svc:5001/",
    )


def test_rawhttp_marks_the_function_and_the_module() -> None:
    """@rawhttp returns the function itself, marked, and sets the module flag the reference has."""
    aml_request._rawHttpRequested = False

    def run(req: AMLRequest) -> None:
        return None

    assert rawhttp(run) is run
    assert getattr(run, "__aml_rawhttp__", None) is True
    assert aml_request._rawHttpRequested is True


def test_url_parts() -> None:
    """method, path, full_path, url, args (repeated values kept) read like Flask's."""
    req = request("get", query=b"a=1&a=2&b=%C3%A9&c")
    assert req.method == "GET"
    assert req.full_path == "/score?a=1&a=2&b=%C3%A9&c"
    assert req.url == "http://svc:5001/score?a=1&a=2&b=é&c"  # an IRI, as Flask gives it
    assert req.base_url == "http://svc:5001/score"
    assert req.args["a"] == "1"
    assert req.args.getlist("a") == ["1", "2"]
    assert req.args.get("b") == "é"
    assert req.args.get("c") == ""
    assert req.args.get("a", type=int) == 1
    assert req.args.to_dict() == {"a": "1", "b": "é", "c": ""}
    assert request("GET").full_path == "/score?"


def test_headers_are_case_insensitive_and_title_cased() -> None:
    """Headers answer any case, and iterate as Title-Cased (name, value) pairs like Flask's."""
    req = request(x_custom_header="v", content_type="application/json; charset=utf-8")
    assert req.headers["X-CUSTOM-HEADER"] == "v"
    assert req.headers.get("x-custom-header") == "v"
    assert "content-type" in req.headers
    assert dict(req.headers) == {"X-Custom-Header": "v", "Content-Type": "application/json; charset=utf-8"}
    assert req.mimetype == "application/json"
    assert req.mimetype_params == {"charset": "utf-8"}
    assert req.is_json


def test_body_access() -> None:
    """get_data(), data, stream and get_data(as_text=True) give the body."""
    req = request(body="héllo".encode())
    assert req.get_data() == req.data == "héllo".encode()
    assert req.get_data(as_text=True) == "héllo"
    assert req.stream.read() == "héllo".encode()
    assert req.content_length is None  # no Content-Length header: None, as in Flask
    assert request(body=b"ab", content_length="2").content_length == 2


def test_get_json_like_flask() -> None:
    """get_json() parses JSON bodies, refuses others with 415/400, and returns None when silent."""
    assert request(body=b'{"a": 1}', content_type="application/json").get_json() == {"a": 1}
    assert request(body=b'{"a": 1}', content_type="application/vnd.api+json").json == {"a": 1}
    assert request(body=b"[1]", content_type="text/plain").get_json(force=True) == [1]
    with pytest.raises(UnsupportedMediaType) as wrong_type:
        request(body=b"[1]", content_type="text/plain").get_json()
    assert wrong_type.value.status == 415
    with pytest.raises(BadRequest) as bad:
        request(body=b"{", content_type="application/json").get_json()
    assert bad.value.status == 400
    assert request(body=b"{", content_type="application/json").get_json(silent=True) is None


def test_urlencoded_form() -> None:
    """A form-urlencoded body reads through form and values."""
    req = request(body=b"x=1&y=two&y=3", query=b"q=z", content_type="application/x-www-form-urlencoded")
    assert req.form.getlist("y") == ["two", "3"]
    assert req.values.to_dict() == {"q": "z", "x": "1", "y": "two"}


def test_multipart_files() -> None:
    """multipart/form-data uploads read through files (filename, stream, read) and form fields."""
    boundary = "XyZ"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
        "\x00\x01binary\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="note"\r\n\r\n'
        "hello\r\n"
        f"--{boundary}--\r\n"
    ).encode("latin-1")
    req = request(body=body, content_type=f"multipart/form-data; boundary={boundary}")
    upload = req.files.getlist("file")[0]
    assert upload.filename == "a.bin"
    assert upload.mimetype == "application/octet-stream"
    assert upload.stream.read() == b"\x00\x01binary"
    assert req.form["note"] == "hello"


def test_cookies_and_environ() -> None:
    """Cookies parse from the Cookie header; environ offers WSGI names."""
    req = request("GET", query=b"a=1", cookie="s=abc; t=1", x_thing="v")
    assert req.cookies == {"s": "abc", "t": "1"}
    assert req.environ["QUERY_STRING"] == "a=1"
    assert req.environ["HTTP_X_THING"] == "v"


def test_response_text_defaults() -> None:
    """A str message goes out as UTF-8 text/html with x-ms-run-function-failed: False."""
    resp = AMLResponse("héllo", 200)
    assert resp.get_data() == "héllo".encode()
    assert resp.content_type == "text/html; charset=utf-8"
    assert resp.headers["x-ms-run-function-failed"] == "False"
    assert resp.status == "200 OK"


def test_response_json_str_and_none() -> None:
    """json_str=True sends json.dumps(message) as application/json; None sends {}."""
    resp = AMLResponse({"a": [1]}, 400, json_str=True, run_function_failed=True)
    assert resp.get_json() == {"a": [1]}
    assert resp.mimetype == "application/json"
    assert resp.headers["x-ms-run-function-failed"] == "True"
    assert AMLResponse(None, 204).get_data() == b"{}"


def test_response_headers_split_on_commas_and_content_type_replaces() -> None:
    """Comma-separated values become repeated headers; a Content-Type given replaces the default."""
    resp = AMLResponse(b"\x89PNG", 200, {"content-type": "image/png", "Link": "a, b", "X-N": 5})
    assert resp.headers.getlist("Content-Type") == ["image/png"]
    assert resp.headers.getlist("Link") == ["a", "b"]
    assert resp.headers["X-N"] == "5"


def test_response_mimetype_setter_and_keywords() -> None:
    """AMLResponse(message=..., status_code=...) and .mimetype = ... work as in Azure's samples."""
    resp = AMLResponse(message=b"jpeg", status_code=200)
    resp.mimetype = "image/jpg"
    assert resp.content_type == "image/jpg"
    resp.mimetype = "text/csv"
    assert resp.content_type == "text/csv; charset=utf-8"


def test_response_refuses_messages_it_cannot_send() -> None:
    """A dict message without json_str raises TypeError pointing at json_str=True."""
    with pytest.raises(TypeError, match="json_str=True"):
        AMLResponse({"a": 1}, 200)


def test_header_values_cannot_inject_lines() -> None:
    """A header value holding a newline is refused rather than sent."""
    with pytest.raises(ValueError, match="newline"):
        AMLResponse("x", 200, {"X-Bad": "a\r\nSet-Cookie: b"})


def test_importing_the_modules_pulls_in_nothing_heavy() -> None:
    """The compatibility modules import neither Flask, prebake, numpy nor pandas."""
    code = (
        "import sys\n"
        "from azureml.contrib.services.aml_request import AMLRequest, rawhttp\n"
        "from azureml.contrib.services.aml_response import AMLResponse\n"
        "print(sorted(m for m in ('flask', 'werkzeug', 'prebake', 'numpy', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_azureml_is_a_namespace_package() -> None:
    """azureml and azureml.contrib are implicit namespace packages, so other azureml-* portions coexist."""
    import azureml
    import azureml.contrib

    assert getattr(azureml, "__file__", None) is None
    assert getattr(azureml.contrib, "__file__", None) is None


def test_coexists_with_a_pkgutil_style_azureml_package(tmp_path: Path) -> None:
    """With an Azure SDK's pkgutil-style azureml (and azureml.contrib) earlier on sys.path, both its
    modules and ours import."""
    sdk = tmp_path / "site"
    extend = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    (sdk / "azureml" / "core").mkdir(parents=True)
    (sdk / "azureml" / "__init__.py").write_text(extend)
    (sdk / "azureml" / "core" / "__init__.py").write_text("NAME = 'sdk core'\n")
    (sdk / "azureml" / "contrib" / "other").mkdir(parents=True)
    (sdk / "azureml" / "contrib" / "__init__.py").write_text(extend)
    (sdk / "azureml" / "contrib" / "other" / "__init__.py").write_text("NAME = 'sdk contrib'\n")
    code = (
        "import azureml.core, azureml.contrib.other\n"
        "from azureml.contrib.services.aml_request import rawhttp\n"
        "from azureml.contrib.services.aml_response import AMLResponse\n"
        "print(azureml.core.NAME, '|', azureml.contrib.other.NAME, '|', AMLResponse('x', 200).status)\n"
    )
    src = Path(aml_request.__file__).parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sdk), str(src)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sdk core | sdk contrib | 200 OK"
