"""``prebake images prune``: remove what builds kept on purpose, and nothing else.

Builds keep nothing by default (see build.py). ``prebake build --cache`` keeps, for the next build of the
same lock, podman's builder-stage images (labelled ``ai.prebake.stage=build`` by the template) or docker's
BuildKit cache records (their ids remembered in prebake's state file, since BuildKit records carry no
labels). This removes exactly those: another project's images and build cache stay.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from prebake.images.engine import Engine, EngineFailed
from prebake.images.state import forget_caches

STAGE_LABEL = "ai.prebake.stage=build"


@dataclass(frozen=True, slots=True)
class Pruned:
    items: int
    bytes: int


def prune_leftovers(engine: Engine) -> Pruned:
    """Remove prebake's builder stages and remembered build cache from ``engine``'s store."""
    before = engine.store_bytes()
    stages = set(
        engine.run("images", "--all", "--quiet", "--no-trunc", "--filter", f"label={STAGE_LABEL}").split()
    )
    for image_id in stages:
        with suppress(EngineFailed):  # still the parent of a kept image's layers: it goes with that image
            engine.run("image", "rm", image_id)
    caches = forget_caches(engine.name) & engine.build_cache_ids()
    engine.prune_build_cache(caches)
    return Pruned(len(stages) + len(caches), max(before - engine.store_bytes(), 0))
