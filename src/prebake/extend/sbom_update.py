"""Run inside a derived image's build: add what `prebake extend` installed to the image's CycloneDX SBOM.

Standalone (standard library only), so it runs with the image's Python whatever prebake version is there.
Python packages come from the venv's installed distributions, Debian packages from dpkg; components
already listed are kept as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

SBOM = Path("/usr/share/doc/prebake/sbom.json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--apt", default="")
    args = parser.parse_args()
    document: dict[str, Any] = json.loads(SBOM.read_text(encoding="utf-8")) if SBOM.is_file() else {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "metadata": {}, "components": []}  # fmt: skip
    components: list[dict[str, Any]] = document.setdefault("components", [])
    known = {component.get("purl") for component in components}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        purl = f"pkg:pypi/{name}@{dist.version}"
        if name and purl not in known:
            components.append({"type": "library", "bom-ref": purl, "name": name, "version": dist.version, "purl": purl,
                               "properties": [{"name": "prebake:added-by", "value": "prebake extend"}]})  # fmt: skip
            known.add(purl)
    if args.apt.strip():
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package}\t${Version}\n"], capture_output=True, text=True, check=True
        )
        for line in out.stdout.splitlines():
            name, _, version = line.partition("\t")
            purl = f"pkg:deb/debian/{name}@{version}?distro=debian12"
            if purl not in known and not any(
                c.get("purl", "").startswith(f"pkg:deb/debian/{name}@") for c in components
            ):
                components.append({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl,
                                   "properties": [{"name": "prebake:added-by", "value": "prebake extend"}]})  # fmt: skip
    metadata: dict[str, Any] = document.setdefault("metadata", {})
    component: dict[str, Any] = metadata.setdefault("component", {"type": "container"})
    component["bom-ref"] = component["name"] = args.name
    properties = [p for p in component.get("properties", []) if p.get("name") != "prebake:extended-from"]
    component["properties"] = [*properties, {"name": "prebake:extended-from", "value": args.base}]
    body = json.dumps(components, sort_keys=True).encode()
    document["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(body).hexdigest())}"
    document["version"] = int(document.get("version", 1)) + 1
    SBOM.parent.mkdir(parents=True, exist_ok=True)
    SBOM.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
