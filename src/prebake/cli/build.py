"""``prebake build NAME|--all``, ``prebake base``, ``prebake push`` and ``prebake verify``: make catalog
images with podman or docker, publish them to a registry, and check what the registry holds."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from prebake import exits
from prebake.cli.images import catalog_image_names, handle_errors
from prebake.cli.options import ENGINE, NO_SIGN, REGISTRY, SIGN_KEY

if TYPE_CHECKING:  # the commands import these when they run, so `prebake --help` stays fast
    from prebake.images.catalog import Image
    from prebake.images.engine import Engine
    from prebake.images.publish import SignWith


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
@REGISTRY
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
@click.option(
    "--cache",
    is_flag=True,
    help="Keep the builder stage (podman) or BuildKit cache (docker) for faster rebuilds; `prebake images prune` removes it.",
)
@click.option("--push", is_flag=True, help="Push each image after it is built (and sign it; see --no-sign).")
@SIGN_KEY
@NO_SIGN
def build(
    names: tuple[str, ...],
    all_images: bool,
    gpu: bool,
    engine: str | None,
    registry: str | None,
    base: str,
    ca_bundle: Path | None,
    output_dir: Path,
    cache: bool,
    push: bool,
    sign_key: Path | None,
    no_sign: bool,
) -> None:
    """Build catalog images: rendered Containerfile, locked packages, SBOM inside and beside the image."""
    from prebake.images.build import build_image, build_prebake_wheel
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine

    with handle_errors():
        catalog = load_catalog(registry=registry)
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
        signer = _signer(sign_key, no_sign) if push else None
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
                    cache=cache,
                )
                click.echo(result.summary())
                if push:
                    _push_one(image, found, signer)


def _signer(sign_key: Path | None, no_sign: bool) -> SignWith | None:
    from prebake.images.publish import SignWith

    return None if no_sign else SignWith.default(sign_key)


def _push_one(image: Image, engine: Engine, signer: SignWith | None) -> None:
    from prebake.images.publish import push_image

    record = push_image(image, engine, sign=signer)
    signed = (
        f"signed, SBOM attested ({record.signature}, {record.attestation})"
        if record.signature
        else "UNSIGNED"
    )
    click.echo(f"pushed {record.reference}\n  digest {record.digest}  ({record.pinned}); {signed}")


@click.command()
@click.argument("names", nargs=-1, shell_complete=catalog_image_names)
@click.option("--all", "all_images", is_flag=True, help="Push every catalog image built here.")
@ENGINE
@REGISTRY
@SIGN_KEY
@NO_SIGN
def push(
    names: tuple[str, ...],
    all_images: bool,
    engine: str | None,
    registry: str | None,
    sign_key: Path | None,
    no_sign: bool,
) -> None:
    """Push built images to their registry (--registry), sign them and attach their SBOM; digests recorded."""
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine

    with handle_errors():
        catalog = load_catalog(registry=registry)
        own = load_catalog()
        found = Engine.find(engine)
        if all_images:
            chosen = [
                image
                for image in catalog.images
                if found.image_exists(image.reference) or found.image_exists(own.get(image.name).reference)
            ]
        elif names:
            chosen = [catalog.get(name) for name in names]
        else:
            raise click.UsageError("name an image, or pass --all")
        signer = _signer(sign_key, no_sign)
        for image in chosen:
            built = own.get(image.name).reference
            if not found.image_exists(image.reference) and found.image_exists(built):
                # Built under the catalog's own name: tag it for the registry it goes to.
                found.run("tag", built, image.reference)
            _push_one(image, found, signer)


@click.command()
@click.argument("reference")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Public key (PEM) [default: ~/.config/prebake/cosign.pub, the default signing key's].",
)
@REGISTRY
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def verify(reference: str, key: Path | None, registry: str | None, fmt: str) -> None:
    """Check an image's signature and signed SBOM attestation in its registry (cosign's layout).

    REFERENCE is HOST[:PORT]/REPO[:TAG|@DIGEST], or a catalog name under --registry.
    """
    from prebake.images.catalog import load_catalog
    from prebake.images.signing import default_key_path, public_key_path, verify

    with handle_errors():
        if "/" not in reference:
            reference = load_catalog(registry=registry).get(reference).reference
        public = key or public_key_path(default_key_path())
        result = verify(reference, key=public)
        click.echo(json.dumps(result.as_json(), indent=2) if fmt == "json" else result.text())
    sys.exit(exits.OK if result.ok else exits.CHECK_FAILED)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False, default=None)
def keygen(path: Path | None) -> None:
    """Make an ECDSA P-256 signing key pair (PATH and PATH.pub; cosign reads both) [default: ~/.config/prebake/cosign.key].

    The private key is encrypted when PREBAKE_SIGNING_PASSWORD is set.
    """
    import os

    from prebake.images.signing import default_key_path, generate_key

    with handle_errors():
        target = path or default_key_path()
        public = generate_key(
            target, password=os.environ.get("PREBAKE_SIGNING_PASSWORD", "").encode() or None
        )
        click.echo(f"wrote {target} (private, mode 0600) and {public} (give this to verifiers)")


@click.command()
@ENGINE
@click.option(
    "--base",
    "base_key",
    default=None,
    help="Which catalog base (debian12-py311, debian13-py313) [default: every base].",
)
@click.option("--tag", default=None, help="Reference for the base image [default: the catalog's local base].")
@click.option("--mirror", default=None, help="Debian mirror for debootstrap [default: deb.debian.org].")
@click.option("--force", is_flag=True, help="Rebuild even if the base image exists.")
def base(engine: str | None, base_key: str | None, tag: str | None, mirror: str | None, force: bool) -> None:
    """Bootstrap Debian bases with Python locally with debootstrap (for hosts without a registry)."""
    from prebake.errors import NotFound
    from prebake.images.base import bootstrap_base
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine

    with handle_errors():
        catalog = load_catalog()
        if base_key is not None and base_key not in catalog.bases:
            raise NotFound(f"unknown base {base_key!r}: choose one of {', '.join(catalog.bases)}")
        if tag is not None and base_key is None:
            raise click.UsageError("--tag needs --base: it names one base image")
        chosen = [catalog.bases[base_key]] if base_key else list(catalog.bases.values())
        found = Engine.find(engine)
        for entry in chosen:
            result = bootstrap_base(found, entry, reference=tag, mirror=mirror, force=force)
            click.echo(
                f"base {result.reference}  {result.size_bytes / 1e6:.0f} MB  in {result.seconds:.1f} s"
            )
    sys.exit(exits.OK)
