"""``prebake images list|show|lock`` and ``prebake env export``: the catalog, read from the CLI.

Also home of ``handle_errors``, the one place the image commands turn prebake's errors into exit codes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from prebake import exits
from prebake.cli.options import ENGINE, REGISTRY


def exit_code(error: Exception) -> int:
    """The named exit code for an error raised by the image commands."""
    from prebake.errors import ConfigError, NotFound
    from prebake.images.build import BuildFailed
    from prebake.images.engine import EngineMissing
    from prebake.images.runner import ModelMismatch
    from prebake.images.selfwheel import WheelFailed
    from prebake.images.signing import VerifyFailed
    from prebake.images.smoke import SmokeFailed

    table: list[tuple[type[Exception], int]] = [
        (NotFound, exits.NOT_FOUND),
        (EngineMissing, exits.ENGINE_MISSING),
        (BuildFailed, exits.BUILD_FAILED),
        (WheelFailed, exits.BUILD_FAILED),
        (SmokeFailed, exits.CHECK_FAILED),
        (VerifyFailed, exits.CHECK_FAILED),
        (ModelMismatch, exits.USAGE),
        (ConfigError, exits.USAGE),
    ]
    for kind, code in table:
        if isinstance(error, kind):
            return code
    return exits.FAILURE


@contextmanager
def handle_errors() -> Iterator[None]:
    """Print a PrebakeError as one line on stderr and exit with its named code."""
    from prebake.errors import PrebakeError

    try:
        yield
    except PrebakeError as error:
        click.echo(f"prebake: {error.message}", err=True)
        sys.exit(exit_code(error))


def catalog_image_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from prebake.images.catalog import load_catalog

    return [name for name in load_catalog().names() if name.startswith(incomplete)]


@click.group()
def images() -> None:
    """The prebuilt images: list them, show one, lock their packages."""


@images.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table", show_default=True
)
@REGISTRY
def list_images(fmt: str, registry: str | None) -> None:
    """List every image in the catalog (like Azure ML's table of prebuilt inference images).

    JSON also lists each push made from here: reference, digest, and the signature's tag.
    """
    from prebake.images.catalog import load_catalog
    from prebake.images.state import pushes
    from prebake.images.table import images_json, images_markdown, images_table

    with handle_errors():
        catalog = load_catalog(registry=registry)
        render: Callable[[Any], str] = {
            "table": images_table,
            "markdown": images_markdown,
            "json": lambda c: images_json(c, pushes()),
        }[fmt]
        click.echo(render(catalog))


@images.command("show")
@click.argument("name", shell_complete=catalog_image_names)
@ENGINE
@REGISTRY
@click.option("--layers", is_flag=True, help="List each layer of the built image with its size.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def show_image(name: str, engine: str | None, registry: str | None, layers: bool, fmt: str) -> None:
    """Show one image: packages and versions (the whole lock), labels, pushes, and its size once built."""
    from prebake.images.catalog import load_catalog
    from prebake.images.state import pushes
    from prebake.images.table import image_details, image_details_text

    with handle_errors():
        catalog = load_catalog(registry=registry)
        details = image_details(catalog.get(name), catalog, engine, layers=layers, pushed=pushes())
        click.echo(json.dumps(details, indent=2) if fmt == "json" else image_details_text(details))


@images.command("prune")
@ENGINE
def prune(engine: str | None) -> None:
    """Remove what prebake builds left on purpose (--cache): builder stages and kept BuildKit cache.

    Images prebake built and tagged stay; remove those with the engine (podman rmi / docker rmi).
    """
    from prebake.images.engine import Engine
    from prebake.images.prune import prune_leftovers

    with handle_errors():
        removed = prune_leftovers(Engine.find(engine))
        click.echo(
            f"removed {removed.items} builder stages / cache records, {removed.bytes / 1e6:.0f} MB freed"
        )


@images.command("lock")
@click.argument("names", nargs=-1, shell_complete=catalog_image_names)
@click.option("--all", "all_images", is_flag=True, help="Lock every image in the catalog.")
def lock(names: tuple[str, ...], all_images: bool) -> None:
    """Write locks/NAME.txt with every package pinned and hashed (uv pip compile --generate-hashes)."""
    from prebake.images.catalog import load_catalog
    from prebake.images.lock import lock_image

    with handle_errors():
        catalog = load_catalog()
        chosen = list(catalog.images) if all_images else [catalog.get(name) for name in names]
        if not chosen:
            raise click.UsageError("name an image, or pass --all")
        failed = 0
        for image in chosen:
            try:
                path = lock_image(image)
                click.echo(f"locked {image.name} -> {path}")
            except Exception as error:  # one image's failure should not hide the others' results
                failed += 1
                click.echo(f"prebake: {getattr(error, 'message', error)}", err=True)
        if failed:
            sys.exit(exits.FAILURE)


@click.group()
def env() -> None:
    """The curated environment of each image, usable without the image."""


@env.command("export")
@click.argument("name", shell_complete=catalog_image_names)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout."
)
def export(name: str, output: Path | None) -> None:
    """Write an image's locked requirements (with hashes): pip install --require-hashes -r FILE recreates it."""
    from prebake.images.catalog import load_catalog

    with handle_errors():
        image = load_catalog().get(name)
        if not image.lock_file.is_file():
            from prebake.errors import NotFound

            raise NotFound(f"{image.name} has no lock file yet: run `prebake images lock {image.name}`")
        text = f"# environment {image.environment}\n" + image.lock_file.read_text(encoding="utf-8")
        if image.index:
            text = f"--extra-index-url {image.index}\n" + text
        if output:
            output.write_text(text, encoding="utf-8")
            click.echo(f"wrote {output} ({image.environment})", err=True)
        else:
            click.echo(text, nl=False)
