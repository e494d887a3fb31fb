"""``prebake run NAME`` (start an image with a model or score.py mounted) and ``prebake test NAME`` (smoke test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from prebake import exits
from prebake.cli.images import catalog_image_names, handle_errors

ENGINE = click.option(
    "--engine", type=click.Choice(["podman", "docker"]), default=None, help="Container engine."
)


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("name", shell_complete=catalog_image_names)
@click.option(
    "--model",
    type=click.Path(exists=True, path_type=Path),
    help="Model file or folder, mounted read-only (AZUREML_MODEL_DIR points at it).",
)
@click.option(
    "--entry-script",
    "--entry_script",
    "entry_script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Azure ML score.py; its folder is mounted read-only as the app root.",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=5001, show_default=True, help="Port on 127.0.0.1."
)
@click.option("-e", "--env", "env_pairs", multiple=True, help="KEY=VALUE for the container's environment.")
@click.option("--detach", "-d", is_flag=True, help="Start in the background and print the container id.")
@click.option(
    "--image",
    "reference",
    default=None,
    help="Run this reference instead of the catalog's (e.g. a derived image).",
)
@ENGINE
def run(
    name: str,
    model: Path | None,
    entry_script: Path | None,
    port: int,
    env_pairs: tuple[str, ...],
    detach: bool,
    reference: str | None,
    engine: str | None,
) -> None:
    """Start a catalog image with your model or score.py, read-only, on 127.0.0.1:PORT."""
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine, engine_environment
    from prebake.images.runner import RunSpec, check_model, run_arguments

    with handle_errors():
        image = load_catalog().get(name)
        if model is None and entry_script is None:
            raise click.UsageError("give --model, --entry-script, or both")
        if model is not None and entry_script is None:
            check_model(image, model)  # no-code serving: the image's framework must load it
        environment = {}
        for pair in env_pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
            environment[key] = value
        found = Engine.find(engine)
        target = reference or image.reference
        if not found.image_exists(target):
            from prebake.errors import NotFound

            raise NotFound(f"image {target} is not built here: run `prebake build {image.name}`")
        from prebake.extend.staging import Stager

        # uid 1000 in the container must be able to read what is mounted; a detached container outlives
        # this command, so its copies are kept (the note says where).
        with Stager(keep=detach) as stage:
            if model is not None:
                model = stage.readable(model, "model")
            if entry_script is not None:
                entry_script = stage.readable_folder_of(entry_script, "entry script")
            for note in stage.notes:
                click.echo(f"prebake: {note}", err=True)
            spec = RunSpec(
                target, port, model=model, entry_script=entry_script, environment=environment, detach=detach
            )
            click.echo(f"prebake: serving {image.name} on http://127.0.0.1:{port}", err=True)
            completed = subprocess.run(
                [found.path, *run_arguments(spec)], env=engine_environment(), check=False
            )
        sys.exit(completed.returncode)


@click.command()
@click.argument("names", nargs=-1, shell_complete=catalog_image_names)
@click.option("--all", "all_images", is_flag=True, help="Test every CPU image that is built here.")
@click.option("--image", "reference", default=None, help="Test this reference instead of the catalog's.")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for health.")
@click.option(
    "--no-code", is_flag=True, help="Serve the model file alone (prebake serve MODEL_PATH) and ask over V2."
)
@ENGINE
def test(
    names: tuple[str, ...],
    all_images: bool,
    reference: str | None,
    timeout: float,
    no_code: bool,
    engine: str | None,
) -> None:
    """Smoke-test images: start, wait for health, predict with a tiny model, check non-root and read-only."""
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine
    from prebake.images.smoke import smoke_test

    with handle_errors():
        catalog = load_catalog()
        found = Engine.find(engine)
        if all_images:
            chosen = [
                image for image in catalog.images if not image.gpu and found.image_exists(image.reference)
            ]
        elif names:
            chosen = [catalog.get(name) for name in names]
        else:
            raise click.UsageError("name an image, or pass --all")
        for image in chosen:
            click.echo(
                smoke_test(image, found, reference=reference, timeout=timeout, no_code=no_code).summary()
            )
    sys.exit(exits.OK)
