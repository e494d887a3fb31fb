"""``prebake build NAME|--all`` and ``prebake base``: build catalog images with podman or docker."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from prebake import exits
from prebake.cli.images import catalog_image_names, handle_errors

ENGINE = click.option(
    "--engine",
    type=click.Choice(["podman", "docker"]),
    default=None,
    help="Container engine [default: podman, else docker].",
)


@click.command()
@click.argument("names", nargs=-1, shell_complete=catalog_image_names)
@click.option(
    "--all",
    "all_images",
    is_flag=True,
    help="Build every image that can be built here (CPU; GPU with --gpu).",
)
@click.option("--gpu/--no-gpu", default=False, help="With --all, include the GPU images (multi-GB).")
@ENGINE
@click.option(
    "--base",
    default="auto",
    show_default=True,
    help="Base image: auto (the local `prebake base` image if present, else the registry's), local, registry, or a reference.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA bundle for a TLS-inspecting proxy; used by pip during the build, never stored in the image.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/images"),
    show_default=True,
    help="Where each image's Containerfile, sbom.json, build.log and build.json are written.",
)
def build(
    names: tuple[str, ...],
    all_images: bool,
    gpu: bool,
    engine: str | None,
    base: str,
    ca_bundle: Path | None,
    output_dir: Path,
) -> None:
    """Build catalog images: rendered Containerfile, locked packages, SBOM inside and beside the image."""
    from prebake.images.build import build_image, build_prebake_wheel
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine

    with handle_errors():
        catalog = load_catalog()
        if all_images:
            chosen = [image for image in catalog.images if gpu or not image.gpu]
            for image in [image for image in chosen if not image.lock_file.is_file()]:
                # A lock needs the framework's index; where it was unreachable the image cannot be built.
                click.echo(
                    f"prebake: skipping {image.name}: no lock file (prebake images lock {image.name})",
                    err=True,
                )
                chosen.remove(image)
        elif names:
            chosen = [catalog.get(name) for name in names]
        else:
            raise click.UsageError("name an image (prebake images list), or pass --all")
        found = Engine.find(engine)
        with tempfile.TemporaryDirectory(prefix="prebake-wheel-") as wheels:
            wheel = build_prebake_wheel(Path(wheels))
            for image in chosen:
                result = build_image(
                    image,
                    catalog,
                    found,
                    prebake_wheel=wheel,
                    base=base,
                    ca_bundle=ca_bundle,
                    output_root=output_dir,
                )
                click.echo(result.summary())


@click.command()
@ENGINE
@click.option("--tag", default=None, help="Reference for the base image [default: the catalog's local base].")
@click.option("--mirror", default=None, help="Debian mirror for debootstrap [default: deb.debian.org].")
@click.option("--force", is_flag=True, help="Rebuild even if the base image exists.")
def base(engine: str | None, tag: str | None, mirror: str | None, force: bool) -> None:
    """Bootstrap the Debian 12 + Python 3.11 base locally with debootstrap (for hosts without a registry)."""
    from prebake.images.base import LOCAL_BASE, bootstrap_base
    from prebake.images.engine import Engine

    with handle_errors():
        result = bootstrap_base(Engine.find(engine), reference=tag or LOCAL_BASE, mirror=mirror, force=force)
        click.echo(f"base {result.reference}  {result.size_bytes / 1e6:.0f} MB  in {result.seconds:.1f} s")
    sys.exit(exits.OK)
