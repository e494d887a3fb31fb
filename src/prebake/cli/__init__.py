"""The ``prebake`` command: a group whose subcommands live one per module and are imported only when used.

Heavy imports (the server, frameworks, the image builder) happen inside the chosen command, so
``prebake --help`` and ``prebake images list`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from prebake import __version__

# name -> "module:attribute"; a module that is not there yet is left out of the listing.
COMMANDS: dict[str, str] = {
    "serve": "prebake.cli.serve:serve",
    "images": "prebake.cli.images:images",
    "env": "prebake.cli.images:env",
    "build": "prebake.cli.build:build",
    "base": "prebake.cli.build:base",
    "push": "prebake.cli.build:push",
    "verify": "prebake.cli.build:verify",
    "keygen": "prebake.cli.build:keygen",
    "run": "prebake.cli.run:run",
    "test": "prebake.cli.run:test",
    "extend": "prebake.cli.extend:extend",
    "check": "prebake.cli.extend:check",
    "recommend": "prebake.cli.extend:recommend",
    "deploy": "prebake.cli.deploy:deploy",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._find(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._find(cmd_name)

    @staticmethod
    def _find(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                return None
            raise
        command: Any = getattr(module, attribute, None)
        return command if isinstance(command, click.Command) else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prebake")
def main() -> None:
    """Prebuilt inference images and one fast inference server."""
