"""`prebake deploy`: write Kubernetes (`k8s`) and KServe (`kserve`) manifests; nothing touches a cluster.

Each subcommand checks every input first; a bad name, image, model source or replica count exits non-zero
with a message, and no manifest is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from prebake import exits
from prebake.cli.options import REGISTRY

CONFIGMAP_LIMIT = 900 * 1024  # a ConfigMap holds at most 1 MiB, metadata included


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"prebake deploy: {message}", err=True)
    sys.exit(code)


def _catalog(registry: str | None) -> Any:
    """The catalog, its references under ``registry`` (--registry) when given."""
    from prebake.errors import ConfigError
    from prebake.images.catalog import load_catalog

    try:
        return load_catalog(registry=registry)
    except ConfigError as error:
        _fail(error.message, exits.USAGE)


def _catalog_image(name: str, registry: str | None = None) -> Any:
    from prebake.errors import NotFound

    try:
        return _catalog(registry).get(name)
    except NotFound as error:
        _fail(error.message, exits.NOT_FOUND)


def _repository(reference: str) -> str:
    """The reference without its digest or tag: ghcr.io/prebake/x:1 and ghcr.io/prebake/x@sha256:... -> ghcr.io/prebake/x."""
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def resolve_image(image: str, registry: str | None = None) -> tuple[str, bool]:
    """(reference, whether it is a GPU image): a catalog name becomes its registry reference (under
    ``registry`` when given); a reference (with '/' or ':') is used as given, and is a CPU image unless
    --gpus says otherwise."""
    catalog = _catalog(registry)
    if "/" in image or ":" in image:
        repository = _repository(image)
        for entry in catalog.images:
            if _repository(entry.reference) == repository:
                return image, entry.gpu  # a catalog image at another tag or digest
        if repository.startswith(f"{catalog.registry}/"):
            # Under prebake's own registry, a name the catalog does not list is a typo, not a custom image.
            _catalog_image(repository.removeprefix(f"{catalog.registry}/"), registry)
        return image, False
    found = _catalog_image(image, registry)
    return str(found.reference), bool(found.gpu)


def recommended_image(model: str | None, entry_script: Path | None, *, gpu: bool) -> str:
    """The catalog image `prebake recommend` picks, said on stderr with its reasons: from the entry script
    (what runs decides), else the model file where it is on this machine, else the model's suffix."""
    from prebake.extend.recommend import recommend, recommend_for_name
    from prebake.images.catalog import load_catalog

    device = "gpu" if gpu else "cpu"
    local = entry_script or (Path(model) if model and Path(model).exists() else None)
    if local is None and model is None:
        _fail("nothing to serve: give --model PATH (no-code serving) or --entry-script score.py", exits.USAGE)
    try:
        if local is not None:
            picked = recommend(local, load_catalog(), device=device)
            how = f"what `prebake recommend {local}` picks"
        else:
            assert model is not None
            picked = recommend_for_name(model, load_catalog(), device=device)
            how = f"from the name {model}: the file is not on this machine to read"
    except (OSError, ValueError) as error:
        _fail(f"{error}: name the image with --image (see `prebake images list`)", exits.USAGE)
    click.echo(f"prebake deploy: image {picked.image.name} ({how})", err=True)
    for reason in picked.reasons:
        click.echo(f"  why:     {reason}", err=True)
    for warning in picked.warnings:
        click.echo(f"  warning: {warning}", err=True)
    return str(picked.image.name)


def _emit(output: str, files: dict[str, str], force: bool) -> None:
    from prebake.deploy.render import write_files
    from prebake.errors import ConfigError

    if output == "-":
        click.echo("---\n".join(files.values()), nl=False)
        return
    try:
        written = write_files(Path(output), files, force=force)
    except ConfigError as error:
        _fail(error.message, exits.FAILURE)
    for path in written:
        click.echo(f"wrote {path}", err=True)


@click.group()
def deploy() -> None:
    """Write manifests for Kubernetes or KServe (apply them with kubectl)."""


@deploy.command("k8s", context_settings={"show_default": True})
@click.argument("name")
@click.option(
    "--image",
    default=None,
    help="Catalog image name, or an image reference (e.g. from `prebake extend`). "
    "[default: the image `prebake recommend` picks for the model or entry script]",
)
@click.option(
    "--model",
    help="Model path: relative to the model source, or absolute inside the image (--model-source image).",
)
@click.option(
    "--entry-script",
    "entry_script",
    type=click.Path(path_type=Path, dir_okay=False),
    help="An Azure ML score.py on this machine; shipped in a ConfigMap.",
)
@click.option(
    "--model-source",
    "model_source",
    default="pvc",
    help="pvc[:CLAIM] (default claim NAME-model), hostpath:/DIR, uri:s3://... (init container), or image (baked in).",
)
@click.option("--replicas", type=int, default=2, help="Replicas, and the autoscaler's minimum.")
@click.option(
    "--max-replicas",
    "max_replicas",
    type=int,
    default=None,
    help="Autoscaler maximum. [default: 3 x replicas]",
)
@click.option("--cpu", default="1", help="CPU request and limit per pod.")
@click.option("--memory", default="2Gi", help="Memory request and limit per pod.")
@click.option(
    "--graceful-timeout",
    "graceful_timeout_s",
    type=int,
    default=30,
    help="Seconds the server drains on SIGTERM.",
)
@click.option("--workers", type=int, default=1, help="Server worker processes per pod.")
@click.option(
    "--target-cpu",
    "target_cpu_percent",
    type=int,
    default=70,
    help="Autoscaler target CPU utilisation (percent).",
)
@click.option("--grpc/--no-grpc", default=False, help="Also serve V2 gRPC on 8081.")
@click.option(
    "--gpus", type=int, default=None, help="NVIDIA GPUs per pod. [default: 1 for GPU images, else 0]"
)
@click.option("--namespace", default=None, help="Namespace to put in the manifests.")
@click.option(
    "--storage-initializer",
    "storage_initializer",
    default=None,
    help="Init container image for --model-source uri:. [default: kserve/storage-initializer:v0.20.0]",
)
@click.option("-o", "--output", default="k8s", help="Directory to write NAME.yaml into, or - for stdout.")
@click.option("--force", is_flag=True, help="Overwrite an existing NAME.yaml.")
@click.option(
    "--allow-pickle",
    "allow_pickle",
    is_flag=True,
    help="Let the server load pickle/joblib models (they run code).",
)
@REGISTRY
def k8s(
    name: str,
    image: str | None,
    entry_script: Path | None,
    output: str,
    force: bool,
    registry: str | None,
    **options: Any,
) -> None:
    """Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget for model NAME."""
    from prebake.deploy.kubernetes import manifests
    from prebake.deploy.render import dump_all
    from prebake.deploy.spec import DeployError, check_name, make_spec

    try:
        check_name(name)
    except DeployError as error:
        _fail(error.message, exits.USAGE)
    script_text = None
    if entry_script is not None:
        if not entry_script.is_file():
            _fail(f"entry script {entry_script} not found", exits.NOT_FOUND)
        script_text = entry_script.read_text(encoding="utf-8")
        if len(script_text.encode()) > CONFIGMAP_LIMIT:
            _fail(
                f"{entry_script} is over {CONFIGMAP_LIMIT // 1024} KiB, too large for a ConfigMap: bake it in with `prebake extend`",
                exits.USAGE,
            )
    if image is None:
        image = recommended_image(options.get("model"), entry_script, gpu=bool(options["gpus"]))
    reference, gpu_image = resolve_image(image, registry)
    if options["gpus"] is None:
        options["gpus"] = 1 if gpu_image else 0
    try:
        spec = make_spec(
            name,
            image=reference,
            entry_script=script_text,
            entry_script_name=entry_script.name if entry_script else "score.py",
            source=options.pop("model_source"),
            **options,
        )
    except DeployError as error:
        _fail(error.message, exits.USAGE)
    _emit(output, {f"{name}.yaml": dump_all(manifests(spec))}, force)


@deploy.command("kserve", context_settings={"show_default": True})
@click.option("--image", "images", multiple=True, help="Catalog images to write runtimes for. [default: all]")
@click.option(
    "--namespaced", is_flag=True, help="ServingRuntime in --namespace instead of a ClusterServingRuntime."
)
@click.option("--namespace", default=None, help="Namespace for ServingRuntimes and InferenceServices.")
@click.option("--grpc/--no-grpc", default=False, help="Also serve V2 gRPC on 8081 (adds grpc-v2).")
@click.option(
    "--isvc", "isvc", default=None, help="Also write an InferenceService of this name (needs --storage-uri)."
)
@click.option("--storage-uri", "storage_uri", default=None, help="Where KServe downloads the model from.")
@click.option(
    "--protocol", type=click.Choice(["v1", "v2"]), default="v2", help="The InferenceService's protocol."
)
@click.option("--replicas", type=int, default=1, help="InferenceService minimum replicas.")
@click.option(
    "--max-replicas", "max_replicas", type=int, default=4, help="InferenceService maximum replicas."
)
@click.option("-o", "--output", default="kserve", help="Directory to write into, or - for stdout.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option(
    "--allow-pickle",
    "allow_pickle",
    is_flag=True,
    help="Let the runtimes load pickle/joblib models (they run code).",
)
@REGISTRY
def kserve(
    images: tuple[str, ...],
    namespaced: bool,
    namespace: str | None,
    grpc: bool,
    isvc: str | None,
    storage_uri: str | None,
    protocol: str,
    replicas: int,
    max_replicas: int,
    output: str,
    force: bool,
    allow_pickle: bool,
    registry: str | None,
) -> None:
    """KServe runtimes for catalog images, and optionally an InferenceService that uses one."""
    from prebake.deploy import kserve as ks
    from prebake.deploy.render import dump_all
    from prebake.deploy.spec import DeployError, check_name

    catalog = _catalog(registry)
    chosen = [_catalog_image(name, registry) for name in images] or list(catalog.images)
    if namespaced and not namespace:
        _fail("--namespaced needs --namespace NS", exits.USAGE)
    if (isvc is None) != (storage_uri is None):
        _fail("--isvc NAME and --storage-uri URI go together", exits.USAGE)
    if isvc is not None and len(images) != 1:
        _fail("--isvc needs exactly one --image: the runtime the InferenceService uses", exits.USAGE)
    files: dict[str, str] = {}
    try:
        if namespace:
            check_name(namespace, "namespace")
        if not ks.servable(chosen):
            raise DeployError(
                f"{', '.join(i.name for i in chosen)}: no framework image, so no KServe runtime"
            )
        kind: ks.RuntimeKind = "ServingRuntime" if namespaced else "ClusterServingRuntime"
        # Auto-selection is decided over the whole catalog, so writing one runtime never changes which wins.
        auto = ks.auto_selected(catalog.images)
        runtimes = [
            ks.serving_runtime(
                image,
                auto_select=image.name in auto,
                kind=kind,
                namespace=namespace,
                grpc=grpc,
                allow_pickle=allow_pickle,
            )
            for image in ks.servable(chosen)
        ]
        files["runtimes.yaml"] = dump_all(runtimes)
        if isvc is not None and storage_uri is not None:
            service = ks.inference_service(
                isvc,
                chosen[0],
                storage_uri=storage_uri,
                namespace=namespace,
                protocol="v1" if protocol == "v1" else "v2",
                min_replicas=replicas,
                max_replicas=max_replicas,
            )
            files[f"{isvc}.yaml"] = dump_all([service])
    except DeployError as error:
        _fail(error.message, exits.USAGE)
    _emit(output, files, force)
