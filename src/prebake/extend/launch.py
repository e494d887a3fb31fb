"""Prepare the extra packages, then run a command with them on its path: the start-up hook for images whose
server does not call ``startup.prepare()`` itself, and for commands other than the server.

    python -m prebake.extend.launch prebake serve --host 0.0.0.0

The layer's folders are added to PYTHONPATH after any already there (the layer holds only packages the
image lacks, so nothing of the image is shadowed). A bad requirement ends the start at once with exit 2
and one line saying what to do, instead of a server that fails later.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prebake.errors import ConfigError
from prebake.extend.startup import PREPARED, prepare

USAGE = 2


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: python -m prebake.extend.launch COMMAND [ARGS...]", file=sys.stderr)
        return USAGE
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    try:
        paths = prepare(
            os.environ,
            app_root=Path(os.environ.get("AML_APP_ROOT") or os.getcwd()),
            model_dir=Path(model_dir) if model_dir else None,
        )
    except ConfigError as error:
        print(f"prebake: {error.message}", file=sys.stderr, flush=True)
        return USAGE
    env = dict(os.environ)
    env[PREPARED] = "1"  # the server's own start-up hook must not prepare (and key) the layer again
    if paths:
        existing = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
        env["PYTHONPATH"] = os.pathsep.join([*existing, *(str(path) for path in paths)])
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main())
