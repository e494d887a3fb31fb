"""Cold start (spawn to first successful prediction of the iris score.py) of prebake from several source
trees and of the floor, interleaved, on this machine: an A/B of a change to the start path.

    .venv/bin/python bench/cold_start.py 7 /tmp/old /work/main floor

Each argument after the count is a checkout (its ``src`` goes first on PYTHONPATH; run from the lean
venv that bench/peers.py makes) or ``floor``. Prints the median and every run, per tree.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import models, servers  # noqa: E402


def main() -> None:
    times, trees = int(sys.argv[1]), sys.argv[2:]
    models.ensure(models.IRIS)
    log_dir = Path(tempfile.mkdtemp(prefix="prebake-cold-"))
    found: dict[str, list[float]] = {tree: [] for tree in trees}
    for tree in trees:
        if tree != "floor":
            servers.compile_sources(Path(tree) / "src")
    for _ in range(times):
        for tree in trees:
            if tree == "floor":
                os.environ.pop("PYTHONPATH", None)
                server = servers.SERVERS["floor"]
            else:
                os.environ["PYTHONPATH"] = str(Path(tree) / "src")
                server = servers.SERVERS["prebake"]
            with servers.Running(server, models.IRIS, log_dir) as running:
                found[tree].append(running.ready_s)
    for tree, seconds in found.items():
        runs = " ".join(f"{s:.2f}" for s in sorted(seconds))
        print(f"{tree}: median {statistics.median(seconds):.3f} s ({runs})")


if __name__ == "__main__":
    main()
