"""Which builder-stage images a build may remove afterwards: only those its own podman log says it committed.

The store is shared: a build that removed every new ``ai.prebake.stage=build`` image removed another
build's stage images under its running step (seen here: pip's files vanished mid-install, podman said
"identifier is not a container"). The log lines below are podman 4.3's, as a real build printed them.
"""

from __future__ import annotations

from pathlib import Path

from prebake.images.build import committed_by

LOG = """\
[1/2] STEP 1/9: FROM localhost/prebake-base:bookworm-py3.11 AS build
[1/2] STEP 2/9: ARG EXTRA_INDEX_URL=
--> Using cache 229723afabc6b5cd5cd614ac58711da649742eaf5bfc3e12bd3ef16bfb5cd82f
--> 229723afabc
[1/2] STEP 3/9: LABEL ai.prebake.stage="build" ai.prebake.image="pytorch-2.13.0-debian12-py311-cpu-inference"
--> 2796efc844f
[1/2] STEP 4/9: ENV PIP_NO_CACHE_DIR=1
--> d1d40323c48
No broken requirements found.
[2/2] COMMIT localhost/prebake-building/pytorch-2.13.0-debian12-py311-cpu-inference:8b8953f2d265
--> e8087c9b875
Successfully tagged localhost/prebake-building/pytorch-2.13.0-debian12-py311-cpu-inference:8b8953f2d265
e8087c9b875f16b14393ae575a99e23222dabacc15180cc649d722de005ef8a3
"""


def test_the_steps_a_build_committed_and_not_those_it_reused(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text(LOG)
    assert committed_by(log) == {"2796efc844f", "d1d40323c48", "e8087c9b875"}


def test_no_log_names_nothing(tmp_path: Path) -> None:
    assert committed_by(tmp_path / "missing.log") == set()
