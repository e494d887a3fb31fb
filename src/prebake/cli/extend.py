"""``prebake extend`` (a derived image), ``prebake check`` (validate before deploying) and
``prebake recommend`` (which image fits a model). Each forwards to a function in ``prebake.extend``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from prebake import exits
from prebake.cli.images import catalog_image_names, handle_errors
from prebake.cli.options import ENGINE, REGISTRY

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
CA_BUNDLE = click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA bundle for a TLS-inspecting proxy, given to pip and apt; never stored in an image.",
)


@contextmanager
def _errors() -> Iterator[None]:
    from prebake.extend.extend import ExtendFailed

    with handle_errors():
        try:
            yield
        except ExtendFailed as error:
            click.echo(f"prebake: {error.message}", err=True)
            sys.exit(exits.BUILD_FAILED)


@click.command()
@click.argument("name", shell_complete=catalog_image_names)
@click.option(
    "-r", "--requirements", type=click.Path(path_type=Path), help="Python packages to add (pip requirements)."
)
@click.option("--apt", "apt", multiple=True, help="A Debian package to add (repeat for more).")
@click.option("-t", "--tag", required=True, help="Reference for the derived image, e.g. my/model-image:1.")
@click.option(
    "--wheelhouse",
    type=click.Path(path_type=Path),
    help="Install the requirements offline from this folder of wheels.",
)
@click.option(
    "--from", "base", default=None, help="Build FROM this reference instead of the catalog image's."
)
@click.option(
    "--test/--no-test", default=True, show_default=True, help="Smoke-test the result before tagging it."
)
@CA_BUNDLE
@ENGINE
@REGISTRY
def extend(
    name: str,
    requirements: Path | None,
    apt: tuple[str, ...],
    tag: str,
    wheelhouse: Path | None,
    base: str | None,
    test: bool,
    ca_bundle: Path | None,
    engine: str | None,
    registry: str | None,
) -> None:
    """Build a derived image FROM a prebuilt one with more Python and apt packages; non-root, SBOM updated, tested."""
    from prebake.extend.extend import ExtendSpec, extend_image, validate
    from prebake.images.catalog import load_catalog
    from prebake.images.engine import Engine

    with _errors():
        spec = ExtendSpec(
            image=load_catalog(registry=registry).get(name),
            tag=tag,
            requirements=requirements,
            apt=apt,
            wheelhouse=wheelhouse,
            ca_bundle=ca_bundle,
            base=base,
        )
        validate(spec)  # before looking for an engine: a typo fails at once, anywhere
        result = extend_image(spec, Engine.find(engine), test=test)
        click.echo(result.summary())


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option(
    "--entry-script",
    "--entry_script",
    "entry_script",
    type=click.Path(path_type=Path),
    help="Azure ML score.py.",
)
@click.option(
    "--model-dir",
    "--model_dir",
    "model_dir",
    type=click.Path(path_type=Path),
    help="AZUREML_MODEL_DIR for the script.",
)
@click.option(
    "--image",
    "image",
    default=None,
    shell_complete=catalog_image_names,
    help="The catalog image to deploy on.",
)
@click.option(
    "-r",
    "--requirements",
    type=click.Path(path_type=Path),
    help="Extra requirements (PREBAKE_EXTRA_REQUIREMENTS).",
)
@click.option("--sample", type=click.Path(path_type=Path), help="A JSON request body to send to run() once.")
@click.option(
    "--wheelhouse",
    type=click.Path(path_type=Path),
    help="Resolve and install offline from this folder of wheels.",
)
@click.option(
    "--where",
    type=click.Choice(["auto", "image", "local"]),
    default="auto",
    show_default=True,
    help="Run the script inside the built image (image), with this Python (local), or inside where possible (auto).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds for init() and the sample.",
)
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
@click.option(
    "--allow-pickle",
    "allow_pickle",
    is_flag=True,
    envvar="PREBAKE_ALLOW_PICKLE",
    help="Load a pickle/joblib model (it runs code when loaded), as prebake serve --allow-pickle. [default: refuse]",
)
@CA_BUNDLE
@ENGINE
@REGISTRY
@FORMAT
def check(
    model: Path | None,
    entry_script: Path | None,
    model_dir: Path | None,
    image: str | None,
    requirements: Path | None,
    sample: Path | None,
    wheelhouse: Path | None,
    where: str,
    timeout_s: float,
    strict: bool,
    allow_pickle: bool,
    ca_bundle: Path | None,
    engine: str | None,
    registry: str | None,
    fmt: str,
) -> None:
    """Validate a deployment before it ships: requirements against the image's pins, import, init() and a sample request."""
    from prebake.extend.check import CheckRequest
    from prebake.extend.check import check as run_check
    from prebake.images.catalog import load_catalog

    with _errors():
        request = CheckRequest(
            entry_script=entry_script,
            model=model,
            model_dir=model_dir,
            image=image,
            requirements=requirements,
            sample=sample,
            wheelhouse=wheelhouse,
            engine=engine,
            where=where,  # type: ignore[arg-type]
            timeout_s=timeout_s,
            ca_bundle=ca_bundle,
            allow_pickle=allow_pickle,
        )
        report = run_check(request, load_catalog(registry=registry))
    click.echo(json.dumps(report.as_json(), indent=2) if fmt == "json" else report.text())
    failed = not report.ok or (strict and any(f.severity == "warning" for f in report.findings))
    sys.exit(exits.CHECK_FAILED if failed else exits.OK)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--gpu", is_flag=True, help="Choose among the GPU images.")
@FORMAT
def recommend(path: Path, gpu: bool, fmt: str) -> None:
    """Pick the catalog image that matches what a model was saved with (or what a score.py imports), and say why."""
    from prebake.extend.recommend import recommend as pick
    from prebake.images.catalog import load_catalog

    with _errors():
        if not path.exists():
            click.echo(f"prebake: {path} does not exist", err=True)
            sys.exit(exits.NOT_FOUND)
        try:
            result = pick(path, load_catalog(), device="gpu" if gpu else "cpu")
        except ValueError as error:
            click.echo(f"prebake: {error}", err=True)
            sys.exit(exits.USAGE)
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        click.echo(result.image.name)
        for reason in result.reasons:
            click.echo(f"  why:     {reason}")
        for warning in result.warnings:
            click.echo(f"  warning: {warning}")
        if not result.exact:
            click.echo("  no image matches exactly: run `prebake check` with your model before deploying")
