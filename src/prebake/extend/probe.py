"""The part of ``prebake check`` that runs user code: in a subprocess with the image's environment (inside
the image where an engine exists), so a crash, a hang or a stray ``sys.exit`` cannot take the checker down.

    python -m prebake.extend.probe --entry-script score.py [--model-dir DIR] [--sample request.json]
                                   [--model PATH [--allow-pickle]] [--app-root DIR]

Extra requirements and source folders come from the usual environment variables (startup.py). A pickled
model is refused unless ``--allow-pickle`` is given, as ``prebake serve`` refuses it (the environment's
PREBAKE_ALLOW_PICKLE is not read here: the checker passes the flag, or not). It prints
one JSON line: ``{"steps": [{"step", "ok", "seconds", "message", "fix"}]}`` and exits 0 (the checker
judges the steps).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Failed(Exception):
    """A step failed; the message is complete as it is."""


def _step(steps: list[dict[str, Any]], name: str, action: Callable[[], str], fix: str) -> bool:
    started = time.monotonic()
    try:
        message = action()
        ok = True
    except Failed as exc:
        message, ok = str(exc), False
    except BaseException as exc:  # user code may raise anything, SystemExit included
        message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
        ok = False
    steps.append(
        {
            "step": name,
            "ok": ok,
            "seconds": round(time.monotonic() - started, 3),
            "message": message,
            "fix": "" if ok else fix,
        }
    )
    return ok


def probe(args: argparse.Namespace) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    app_root = Path(args.app_root or (Path(args.entry_script).parent if args.entry_script else "."))
    model_dir = Path(args.model_dir) if args.model_dir else None
    if model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    os.environ.setdefault("AML_APP_ROOT", str(app_root))

    def extras() -> str:
        from prebake.extend.startup import activate, prepare

        paths = prepare(os.environ, app_root=app_root, model_dir=model_dir)
        activate(paths)
        return f"{len(paths)} extra path(s) added" if paths else "no extra packages asked for"

    if not _step(
        steps,
        "extra-packages",
        extras,
        "fix the requirements file, or give a wheelhouse (PREBAKE_WHEELHOUSE)",
    ):
        return steps
    if args.entry_script:
        _entry_script(steps, Path(args.entry_script), args.sample)
    elif args.model:
        _model(steps, Path(args.model), args.sample, allow_pickle=args.allow_pickle)
    return steps


def _entry_script(steps: list[dict[str, Any]], script: Path, sample: str | None) -> None:
    from prebake.runtimes.entry_script import EntryScriptRuntime
    from prebake.types import RawRequest

    runtime = EntryScriptRuntime(script)

    def load() -> str:
        try:
            runtime.load()
        except BaseException as exc:
            # The script's own traceback is the cause of the load error.
            cause = exc.__cause__ or exc
            lines = "".join(traceback.format_exception(cause)).splitlines()
            trace = [line for line in lines if line.strip()][-6:]
            raise Failed(f"{getattr(exc, 'message', None) or exc} | " + " | ".join(trace)) from exc
        return "imported; init() returned"

    if not _step(
        steps, "import-and-init", load, "run the script locally, fix the import or init() error shown"
    ):
        return
    if sample is None:
        steps.append({"step": "sample-request", "ok": True, "seconds": 0.0, "skipped": True,
                      "message": "no sample request given: run() was not called (pass --sample request.json)", "fix": ""})  # fmt: skip
        return
    body = Path(sample).read_bytes()

    def score() -> str:
        request = RawRequest("POST", "/score", b"", {"content-type": "application/json"}, body)
        result = runtime.score(request)
        if result.status >= 400:
            raise RuntimeError(f"run() answered {result.status}: {result.body[:300]!r}")
        return f"run() answered {result.status}: {result.body[:200].decode(errors='replace')}"

    _step(steps, "sample-request", score, "call run() with this sample locally and fix the error shown")


def _model(
    steps: list[dict[str, Any]], model: Path, sample: str | None = None, *, allow_pickle: bool = False
) -> None:
    loaded: list[Any] = []

    def load() -> str:
        from prebake.runtimes.discover import model_from_path
        from prebake.runtimes.registry import create_runtime
        from prebake.runtimes.settings import apply_operator

        settings = model_from_path(model, "cpu")
        # As the server does: the operator's choice (the checker passes --allow-pickle, or not; the
        # environment of the check is not asked), which the model's settings file can only narrow.
        apply_operator(settings.parameters, allow_pickle=allow_pickle)
        runtime = create_runtime(settings)
        runtime.load()
        loaded.append(runtime)
        return f"{model.name} loaded by the {settings.runtime} runtime, as `prebake serve` loads it"

    if not _step(
        steps,
        "load-model",
        load,
        "save the model with the package versions the image holds (see prebake recommend); for a pickle "
        "you trust, pass --allow-pickle",
    ):
        return
    runtime = loaded[0]
    body = Path(sample).read_bytes() if sample else None
    if runtime.name == "mlflow" and body is None and runtime.model is not None:
        body = runtime.model.serving_example()  # the input_example the model was logged with
    if body is None or runtime.name != "mlflow":
        return

    def predict() -> str:
        from prebake import codec
        from prebake.frames import predictions
        from prebake.protocols.mlflow_scoring import decode_json

        response = runtime.predict(decode_json(codec.loads(body)))
        answer = codec.dumps({"predictions": predictions(response)})
        return f"the sample request answered: {answer[:200].decode(errors='replace')}"

    _step(
        steps,
        "sample-request",
        predict,
        "send this request to `prebake serve` locally and fix the error shown",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prebake.extend.probe")
    parser.add_argument("--entry-script")
    parser.add_argument("--model")
    parser.add_argument("--model-dir")
    parser.add_argument("--app-root")
    parser.add_argument("--sample")
    parser.add_argument("--allow-pickle", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    steps = probe(args)
    sys.stdout.flush()
    print("\n" + json.dumps({"steps": steps}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
