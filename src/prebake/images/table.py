"""Catalog listings: the table, Markdown and JSON of ``prebake images list``, and ``images show`` details.

Pure functions of the catalog (plus, for ``show``, what the engine says about a built image).
"""

from __future__ import annotations

import json
from typing import Any

from prebake.images.catalog import Catalog, Image
from prebake.images.render import labels
from prebake.images.sbom import parse_lock
from prebake.images.state import Pushed

COLUMNS = ("Framework", "Version", "CPU/GPU", "Packages", "Image", "Environment")


def _row(image: Image) -> list[str]:
    device = "CPU" if image.device == "cpu" else f"GPU ({image.device.upper()})"
    packages = ", ".join(f"{name}=={version}" for name, version in image.pins().items()) or "NA"
    return [image.framework, image.version or "NA", device, packages, image.reference, image.environment]


def images_table(catalog: Catalog) -> str:
    """A plain-text table for terminals (columns padded to width)."""
    rows = [list(COLUMNS), *(_row(image)[:5] for image in catalog.images)]
    rows[0] = rows[0][:5]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def images_markdown(catalog: Catalog) -> str:
    """A Markdown table, like the seed's table of prebuilt images."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for image in catalog.images:
        cells = _row(image)
        cells[3] = cells[3].replace(", ", "<br>")
        cells[4] = f"`{cells[4]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def image_record(image: Image, pushed: list[Pushed] | None = None) -> dict[str, Any]:
    """The catalog entry as JSON, with every push of it remembered here (``pushed``) and the digest of
    the one at its current reference."""
    mine = [p for p in pushed or [] if p.image == image.name]
    current = next((p for p in reversed(mine) if p.reference == image.reference), None)
    return {
        "name": image.name,
        "framework": image.framework,
        "version": image.version,
        "device": image.device,
        "os": image.os,
        "python": image.python,
        "packages": list(image.packages),
        "index": image.index,
        "reference": image.reference,
        "environment": image.environment,
        "base": {"registry": image.base.registry, "local": image.base.local},
        "description": image.description,
        "digest": current.digest if current else None,
        "pushed": [
            {"reference": p.reference, "digest": p.digest, "pinned": p.pinned, "pushed_at": p.pushed_at,
             "engine": p.engine, "signature": p.signature or None, "attestation": p.attestation or None}
            for p in mine
        ],
    }  # fmt: skip


def images_json(catalog: Catalog, pushed: list[Pushed] | None = None) -> str:
    return json.dumps([image_record(image, pushed) for image in catalog.images], indent=2)


def image_details(
    image: Image,
    catalog: Catalog,
    engine_name: str | None = None,
    *,
    layers: bool = False,
    pushed: list[Pushed] | None = None,
) -> dict[str, Any]:
    """The catalog record, every locked package, the labels, and the built size if the engine has the
    image (with ``layers``, each layer's size and the instruction that made it)."""
    from prebake.images.engine import Engine, EngineMissing

    record = image_record(image, pushed)
    locked = parse_lock(image.lock_file.read_text(encoding="utf-8")) if image.lock_file.is_file() else []
    record["locked"] = {package.name: package.version for package in locked}
    record["labels"] = labels(image, catalog)
    record["built"] = None
    try:
        engine = Engine.find(engine_name)
        if engine.image_exists(image.reference):
            inspected = engine.inspect_image(image.reference)
            config = inspected.get("Config")
            record["built"] = {
                "size_bytes": inspected.get("Size"),
                "created": inspected.get("Created"),
                "labels": config.get("Labels") if isinstance(config, dict) else None,
            }
            if layers:
                record["built"]["layers"] = [
                    {"size_bytes": layer.size_bytes, "created_by": layer.created_by}
                    for layer in engine.layers(image.reference)
                ]
    except EngineMissing:
        pass  # show works without an engine; only the size is missing
    return record


def image_details_text(details: dict[str, Any]) -> str:
    built = details["built"]
    size = f"{built['size_bytes'] / 1e6:.0f} MB (built {built['created']})" if built else "not built here"
    lines = [
        details["name"],
        f"  {details['description']}",
        f"  framework    {details['framework']} {details['version'] or ''}".rstrip(),
        f"  device       {details['device']}",
        f"  os, python   {details['os']}, {details['python']}",
        f"  reference    {details['reference']}",
        f"  environment  {details['environment']}",
        f"  size         {size}",
        "  packages (locked):",
        *(f"    {name}=={version}" for name, version in details["locked"].items()),
        "  labels:",
        *(f"    {key}={value}" for key, value in (built and built["labels"] or details["labels"]).items()),
    ]
    for push in details["pushed"]:
        lines.append(
            f"  pushed       {push['pinned']} ({push['pushed_at']}, {'signed' if push['signature'] else 'unsigned'})"
        )
    if built and "layers" in built:
        lines.append("  layers (newest first; size, instruction):")
        lines += [_layer_line(layer) for layer in built["layers"]]
    return "\n".join(lines)


def _layer_line(layer: dict[str, Any]) -> str:
    made_by = " ".join(str(layer["created_by"]).replace("/bin/sh -c ", "").split())
    return f"    {layer['size_bytes'] / 1e6:>9.1f} MB  {made_by[:90]}"
