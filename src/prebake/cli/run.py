"""``prebake run NAME|REF`` (start an image with a model or score.py mounted) and ``prebake test NAME|REF``
(smoke test). A reference (HOST/PATH/NAME:TAG or ...@sha256:...) is pulled when it is not here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from prebake import exits
from prebake.cli.images import catalog_image_names, handle_errors
from prebake.cli.options import ENGINE, PULL, REGISTRY

if TYPE_CHECKING:
    from prebake.images.catalog import Catalog, Image
    from prebake.images.engine import Engine


def resolve(
    catalog: Catalog, engine: Engine, target: str, reference: str | None, pull: str, *, mirror: bool
) -> tuple[Image, str]:
    """(catalog image, reference to run) for a catalog name or an image reference, pulled when needed.

    A reference is matched to its catalog entry by its last path part (the image name), or, once pulled,
    by its ``ai.prebake.image`` label, so the model checks and smoke test of that image apply. A catalog
    name is pulled from ``--registry`` (``mirror``) when it is not here; without one it must be built here
    unless ``--pull always`` asks for the catalog's own registry.
    """
    from prebake.errors import NotFound
    from prebake.images.publish import ensure_local

    if "/" not in target:
        image = catalog.get(target)
        chosen = reference or image.reference
        if reference is not None or mirror or pull == "always":
            ensure_local(engine, chosen, pull=pull)
        return image, chosen
    ensure_local(engine, target, pull=pull)
    found = catalog.find_reference(target)
    if found is None:
        config = engine.inspect_image(target).get("Config")
        name = config.get("Labels", {}).get("ai.prebake.image") if isinstance(config, dict) else None
        found = catalog.get(name) if isinstance(name, str) else None
    if found is None:
        raise NotFound(f"{target} is not a prebake image (no catalog name, no ai.prebake.image label)")
    return found, target


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
@REGISTRY
@PULL
def run(
    name: str,
    model: Path | None,
    entry_script: Path | None,
    port: int,
    env_pairs: tuple[str, ...],
    detach: bool,
    reference: str | None,
    engine: str | None,
    registry: str | None,
    pull: str,
) -> None:
    """Start a catalog image (NAME, or a pushed reference) with your model or score.py, read-only, on 127.0.0.1:PORT."""
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine, engine_environment
    from prebake.images.runner import RunSpec, check_model, run_arguments

    with handle_errors():
        catalog = load_catalog(registry=registry)
        if model is None and entry_script is None:
            raise click.UsageError("give --model, --entry-script, or both")
        if "/" not in name and model is not None and entry_script is None:
            # Before looking for an engine or pulling: a wrong model fails in milliseconds, anywhere.
            check_model(catalog.get(name), model)
        environment = {}
        for pair in env_pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
            environment[key] = value
        found = Engine.find(engine)
        image, target = resolve(catalog, found, name, reference, pull, mirror=registry is not None)
        if model is not None and entry_script is None:
            check_model(image, model)  # no-code serving: the image's framework must load it
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
            click.echo(f"prebake: serving {image.name} ({target}) on http://127.0.0.1:{port}", err=True)
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
@REGISTRY
@PULL
def test(
    names: tuple[str, ...],
    all_images: bool,
    reference: str | None,
    timeout: float,
    no_code: bool,
    engine: str | None,
    registry: str | None,
    pull: str,
) -> None:
    """Smoke-test images (NAME or a pushed reference): start, wait for health, predict with a tiny model,
    check non-root and read-only."""
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine
    from prebake.images.smoke import smoke_test

    with handle_errors():
        catalog = load_catalog(registry=registry)
        found = Engine.find(engine)
        if all_images:
            chosen = [
                (image, image.reference)
                for image in catalog.images
                if not image.gpu and found.image_exists(image.reference)
            ]
        elif names:
            chosen = [
                resolve(catalog, found, name, reference, pull, mirror=registry is not None) for name in names
            ]
        else:
            raise click.UsageError("name an image, or pass --all")
        for image, target in chosen:
            click.echo(smoke_test(image, found, reference=target, timeout=timeout, no_code=no_code).summary())
    sys.exit(exits.OK)
