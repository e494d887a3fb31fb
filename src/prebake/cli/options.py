"""Options the image commands share, spelled once: the engine, the registry, signing."""

from __future__ import annotations

from pathlib import Path

import click

ENGINE = click.option(
    "--engine",
    envvar="PREBAKE_ENGINE",
    default=None,
    metavar="podman|docker|PATH",
    help="Container engine, or the path of its client [env PREBAKE_ENGINE; default: podman, else docker].",
)
REGISTRY = click.option(
    "--registry",
    envvar="PREBAKE_REGISTRY",
    default=None,
    metavar="HOST[:PORT]/PATH",
    help="Registry path for every image reference, instead of the catalog's ghcr.io/prebake [env PREBAKE_REGISTRY].",
)
SIGN_KEY = click.option(
    "--sign-key",
    envvar="PREBAKE_SIGNING_KEY",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Private key (PEM) to sign pushes with [env PREBAKE_SIGNING_KEY; default: ~/.config/prebake/cosign.key, made on first use; password in PREBAKE_SIGNING_PASSWORD].",
)
NO_SIGN = click.option(
    "--no-sign",
    is_flag=True,
    help="Push without a signature or SBOM attestation (`prebake verify` then fails).",
)
PULL = click.option(
    "--pull",
    type=click.Choice(["missing", "always", "never"]),
    default="missing",
    show_default=True,
    help="Pull the image from its registry when it is not here (missing), every time, or never.",
)
